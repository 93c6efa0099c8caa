/**
 * `nlearn exp <name> [--smoke] [--out DIR] [--seed N]`: runs an experiment from experiments/ and writes
 * DIR/<name>.json, .md (table, command, date, runtime) and .svg (vega-lite). Full runs write to
 * docs/results/ by default; smoke runs to a new temporary folder (never over the committed full-size
 * results) unless --out is given. Registered on the program by `registerExp(cmd)`; the experiments
 * load only when the command runs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';

/** Where a full-size run writes by default. */
export const RESULTS_DIR = 'docs/results';

/** --out of `exp`: the given folder; else docs/results for a full run, a new temporary folder for --smoke. */
export function expOutDir(name: string, o: { smoke?: boolean; out?: string }): string {
  if (o.out !== undefined) return o.out;
  return o.smoke ? fs.mkdtempSync(path.join(os.tmpdir(), `nlearn-exp-${name}-smoke-`)) : RESULTS_DIR;
}

export function registerExp(cmd: Command): Command {
  cmd
    .command('exp')
    .description(`run an experiment and write <out>/<name>.{md,json,svg}: full size to ${RESULTS_DIR}/, --smoke to a new temporary folder (names: experiments/README.md, or an unknown name lists them)`)
    .argument('<name>', 'experiment name (e.g. mqar, lm, stability)')
    .option('--smoke', 'tiny size: checks the pipeline in seconds, not the claim (writes to a temporary folder unless --out)')
    .option('--out <dir>', `output directory (default: ${RESULTS_DIR} for a full run, a new temporary folder for --smoke)`)
    .option('--seed <n>', 'base seed', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('--seed must be a positive integer');
      return n;
    }, 1)
    .action(async (name: string, o: { smoke?: boolean; out?: string; seed: number }) => {
      const { getExperiment, runExperiment } = require('../experiments') as typeof import('../experiments');
      const { selectBackend } = require('../core/backend') as typeof import('../core/backend');
      const exp = getExperiment(name);
      const info = await selectBackend((cmd.opts() as { backend?: string }).backend ?? process.env.NL_BACKEND ?? 'wasm');
      console.error(`backend: ${info.active} (${info.reason})`);
      const smoke = o.smoke ?? false;
      const out = expOutDir(name, o);
      const command = `${cmd.name()} exp ${name}${smoke ? ' --smoke' : ''}${o.out !== undefined && !(o.out === RESULTS_DIR && !smoke) ? ` --out ${o.out}` : ''}${o.seed !== 1 ? ` --seed ${o.seed}` : ''}`;
      console.error(`writing to ${out}${smoke && o.out === undefined ? ' (a new temporary folder: --smoke never writes over docs/results; give --out to choose)' : ''}`);
      const w = await runExperiment(exp, { smoke, out, seed: o.seed, command, log: (l) => console.error(l) });
      console.error(`wrote ${w.md}, ${w.json}, ${w.svg}`);
      console.log(JSON.stringify({ experiment: name, size: w.result.size, runtimeSeconds: w.result.runtimeSeconds, verdict: w.result.verdict, out, files: [w.md, w.json, w.svg] }));
    });
  return cmd;
}
