/**
 * npm run bench -- <suite> [more suites] [--flags]   (also `nl bench <suite> [--flags]`)
 * Each suite is bench/<suite>.ts exporting `run(args: string[]): Promise<void>`; results are JSON
 * lines {"suite","case","metric","value","unit",...} on stdout.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The suite names: bench/*.ts other than run.ts and lib.ts. */
export function availableSuites(): string[] {
  return fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.ts') && !['run.ts', 'lib.ts'].includes(f) && !f.endsWith('.d.ts') && !f.startsWith('.'))
    .map((f) => f.replace(/\.ts$/, ''))
    .sort();
}

/** Runs the suites named in `args` (arguments starting with '-' are passed to every suite); an unknown or missing name throws, listing the suites. */
export async function runBench(args: string[]): Promise<void> {
  const available = availableSuites();
  const suites = args.filter((a) => !a.startsWith('-'));
  if (suites.length === 0) throw new Error(`usage: npm run bench -- <suite>... (or nl bench <suite>...)\navailable suites: ${available.join(', ')}`);
  for (const s of suites) if (!available.includes(s)) throw new Error(`unknown bench suite '${s}'; available: ${available.join(', ')}`);
  for (const s of suites) {
    const mod = require(path.join(__dirname, s)) as { run: (a: string[]) => Promise<void> };
    await mod.run(args.filter((a) => a.startsWith('-')));
  }
}

if (require.main === module) {
  runBench(process.argv.slice(2)).catch((e: Error) => {
    const usage = /^(usage|unknown bench suite)/.test(e.message);
    process.stderr.write(`${usage ? e.message : (e.stack ?? e)}\n`);
    process.exit(usage ? 2 : 1);
  });
}
