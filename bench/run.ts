/**
 * npm run bench -- <suite> [more suites]
 * Each suite is bench/<suite>.ts exporting `run(args: string[]): Promise<void>`; results are JSON
 * lines {"suite","case","metric","value","unit",...} on stdout.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const available = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.ts') && !['run.ts', 'lib.ts'].includes(f) && !f.endsWith('.d.ts'))
    .map((f) => f.replace(/\.ts$/, ''))
    .sort();
  const suites = args.filter((a) => !a.startsWith('-'));
  if (suites.length === 0) {
    process.stderr.write(`usage: npm run bench -- <suite>...\navailable suites: ${available.join(', ')}\n`);
    process.exit(2);
  }
  for (const s of suites) {
    if (!available.includes(s)) {
      process.stderr.write(`unknown bench suite '${s}'; available: ${available.join(', ')}\n`);
      process.exit(2);
    }
  }
  for (const s of suites) {
    const mod = require(path.join(__dirname, s)) as { run: (a: string[]) => Promise<void> };
    await mod.run(args.filter((a) => a.startsWith('-')));
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
