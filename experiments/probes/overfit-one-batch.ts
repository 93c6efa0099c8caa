/**
 * Probe: can a one-block model overfit ONE batch of a MAD task, and what gradient reaches each part at
 * initialisation? (issue 12: HOPE with the 'paper' self-modifying Titans could not fit MAD memorisation.)
 *
 *   node -r ts-node/register/transpile-only experiments/probes/overfit-one-batch.ts [--task memorization] [--steps 100] [--lr 0.003]
 *
 * For each kind (hope-paper, hope, deltanet; the MAD model of experiments/mad.ts): the gradient norm of the
 * masked loss per weight group at initialisation (plain forward, no in-context CMS update), then the
 * trainer's loss on the same batch every 20 steps of Adam (clip 1).
 */
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { selectBackend } from '../../core/backend';
import { buildConvModel, generate, memorizationMap, taskVocab, MAD_EXPERIMENTS, MAD_TASKS, PAD, type MadTask } from '../mad';
import { disposeModel, leftPad, rng, maskedCrossEntropy } from '../models';

(async () => {
  const opts = new Command().option('--task <name>', 'MAD task', 'memorization').option('--steps <n>', 'steps on the batch', '100').option('--lr <x>', 'Adam learning rate', '0.003').parse().opts<{ task: string; steps: string; lr: string }>();
  if (!(MAD_TASKS as readonly string[]).includes(opts.task)) throw new Error(`--task: unknown task '${opts.task}' (known: ${MAD_TASKS.join(', ')})`);
  await selectBackend('wasm');
  const task = opts.task as MadTask;
  const cfg = MAD_EXPERIMENTS[MAD_TASKS.indexOf(task)].config('full') as any;
  const { vocab } = taskVocab(task, cfg.task);
  const memMap = memorizationMap(1, cfg.task);
  const dr = rng(5);
  const b = leftPad(Array.from({ length: 16 }, () => generate(task, dr, cfg.task, memMap)), PAD);
  for (const kind of ['hope-paper', 'hope', 'deltanet'] as const) {
    const m = buildConvModel(kind, vocab, cfg.sizes, Number(opts.lr), 1);
    const T = b.ids[0].length;
    const x = tf.tensor2d(b.ids, [16, T], 'int32');
    const yArr = new Float32Array(16 * T * vocab);
    b.labels.forEach((ls: any, i: number) => ls.forEach((l: any) => { yArr[(i * T + l.pos) * vocab + l.label] = T; }));
    const y = tf.tensor3d(yArr, [16, T, vocab]);
    const vars = m.lm.nested.trainableVariables() as unknown as tf.Variable[];
    const { value, grads } = tf.variableGrads(() => maskedCrossEntropy(m.lm.logits(x), y).mean() as tf.Scalar, vars);
    const groups: Record<string, number> = {};
    for (const [name, g] of Object.entries(grads)) {
      const key = name.split('/').slice(0, 3).join('/').replace(/_\d+$/, '');
      groups[key] = (groups[key] ?? 0) + g.square().sum().dataSync()[0];
    }
    console.log(kind, 'loss', value.dataSync()[0].toFixed(3));
    for (const [k, v] of Object.entries(groups).sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log('   ', k.padEnd(50), Math.sqrt(v).toExponential(2));
    // overfit the one batch with the trainer (Adam, clip 1)
    const losses: number[] = [];
    for (let s = 0; s < Number(opts.steps); s++) { const l = m.trainer.train(x, y).loss; if (s % 20 === 19) losses.push(+l.toFixed(3)); }
    console.log('   overfit one batch, loss every 20 steps:', losses.join(' '));
    tf.dispose([x, y, value, ...Object.values(grads)]);
    disposeModel(m);
  }
})().catch((e: Error) => {
  console.error(`overfit-one-batch: ${e.message}`);
  process.exit(1);
});
