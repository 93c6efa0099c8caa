/**
 * MAD budget calibration: trains the given kinds on the given tasks with the full MAD config and prints
 * one JSON line per run with the test-accuracy learning curve (every `--every` steps), so the smallest
 * budget at which a baseline learns each task can be read off one run per kind.
 *
 *   node -r ts-node/register/transpile-only experiments/probes/mad-calibrate.ts \
 *     --kinds deltanet,transformer --tasks all --steps 3000 --every 250 [--seed 1] [--lr 0.003]
 */
import { selectBackend } from '../../core/backend';
import { MAD_TASKS, madExperiment, runTask, type MadConfig, type MadTask } from '../mad';
import type { ModelKind } from '../models';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt;
}

async function main(): Promise<void> {
  await selectBackend('wasm');
  const tasksArg = arg('tasks', 'all');
  const tasks = (tasksArg === 'all' ? [...MAD_TASKS] : tasksArg.split(',')) as MadTask[];
  for (const t of tasks) if (!MAD_TASKS.includes(t)) throw new Error(`--tasks: unknown task '${t}' (one of ${MAD_TASKS.join(', ')})`);
  const kinds = arg('kinds', 'deltanet,transformer').split(',') as ModelKind[];
  const steps = Number(arg('steps', '3000'));
  const every = Number(arg('every', '250'));
  const seed = Number(arg('seed', '1'));
  const lr = Number(arg('lr', '0.003'));
  for (const [name, v] of Object.entries({ steps, every, seed, lr })) if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: expected a positive number`);
  for (const task of tasks) {
    const base = madExperiment(task).config('full');
    const cfg: MadConfig = { ...base, steps, stepsByTask: {}, evalEvery: every, learningRate: lr, learningRateByKind: {} };
    for (const kind of kinds) {
      const row = await runTask(task, kind, cfg, seed, (l) => process.stderr.write(`${l}\n`));
      console.log(JSON.stringify({ ...row, lr, date: new Date().toISOString() }));
    }
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
