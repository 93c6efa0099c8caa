import { expect } from 'chai';
import * as path from 'node:path';

// cli/bin.js is plain JavaScript (it must run before dist/ exists); its helpers are exported for this test.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const bin = require(path.join(__dirname, 'bin.js')) as {
  missingCliPeers: (pkg: { peerDependencies?: Record<string, string> }, resolve: (name: string) => string) => string[];
  CLI_PEERS: string[];
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pkg = require(path.join(__dirname, '..', 'package.json')) as { peerDependencies: Record<string, string>; peerDependenciesMeta: Record<string, { optional?: boolean }> };

describe('cli/bin.js: a library-only install gets an install command, not "Cannot find module"', () => {
  it('lists the CLI peers that do not resolve, with their ranges from package.json', () => {
    const absent = new Set(['commander', 'vega-lite']);
    const missing = bin.missingCliPeers(pkg, (name) => {
      if (absent.has(name)) throw new Error(`Cannot find module '${name}'`);
      return name;
    });
    expect(missing).to.deep.equal([`commander@${pkg.peerDependencies.commander}`, `vega-lite@${pkg.peerDependencies['vega-lite']}`]);
  });

  it('finds nothing missing in this repository (dev install), and every CLI peer is a declared optional peer', () => {
    expect(bin.missingCliPeers(pkg, (name) => require.resolve(name))).to.deep.equal([]);
    for (const name of bin.CLI_PEERS) {
      expect(pkg.peerDependencies, name).to.have.property(name);
      expect(pkg.peerDependenciesMeta[name]?.optional, name).to.equal(true);
    }
  });
});
