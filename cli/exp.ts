/**
 * `nl exp <name> [--smoke] [--out DIR] [--seed N]`: runs an experiment from experiments/ and writes
 * DIR/<name>.json, .md (table, command, date, runtime) and .svg (vega-lite). Registered on the `nl`
 * program by `registerExp(cmd)`.
 */
import { Command, InvalidArgumentError } from 'commander';
import { selectBackend } from '../core/backend';
import { EXPERIMENT_NAMES, getExperiment, runExperiment } from '../experiments';

export function registerExp(cmd: Command): Command {
  cmd
    .command('exp')
    .description(`run an experiment and write docs/results/<name>.{md,json,svg} (${EXPERIMENT_NAMES.join(', ')})`)
    .argument('<name>', `experiment: ${EXPERIMENT_NAMES.join(' | ')}`)
    .option('--smoke', 'tiny size: checks the pipeline in seconds, not the claim')
    .option('--out <dir>', 'output directory', 'docs/results')
    .option('--seed <n>', 'base seed', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('--seed must be a positive integer');
      return n;
    }, 1)
    .action(async (name: string, o: { smoke?: boolean; out: string; seed: number }) => {
      const exp = getExperiment(name);
      const info = await selectBackend((cmd.opts() as { backend?: string }).backend ?? process.env.NL_BACKEND ?? 'wasm');
      console.error(`backend: ${info.active} (${info.reason})`);
      const smoke = o.smoke ?? false;
      const command = `nl exp ${name}${smoke ? ' --smoke' : ''}${o.out !== 'docs/results' ? ` --out ${o.out}` : ''}${o.seed !== 1 ? ` --seed ${o.seed}` : ''}`;
      const w = await runExperiment(exp, { smoke, out: o.out, seed: o.seed, command, log: (l) => console.error(l) });
      console.log(JSON.stringify({ experiment: name, size: w.result.size, runtimeSeconds: w.result.runtimeSeconds, verdict: w.result.verdict, files: [w.md, w.json, w.svg] }));
    });
  return cmd;
}
