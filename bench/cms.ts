/**
 * npm run bench -- cms [--periods=16,64,256] [--T=1024] [--repeats=3] [--backend=wasm]
 * Tokens/s of a one-level CMS (D=128, hidden 4D, gelu, B=4) driven by NestedTrainer.memorize():
 *   frozen       period 0: the plain MLP, forward only (nothing learns in context)
 *   updates/C    period C, eta 0.01: per segment of C tokens a forward, one backward for the fast
 *                weights, and the Eq. 71 update at every boundary
 *   overhead/C   time(updates/C) / time(frozen)
 * Wall-clock medians on a possibly shared machine: noisy.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/backend';
import { NlContinuumMemorySystem } from '../plugins/cms';
import { NestedModel } from '../core';
import { tokenSquaredError } from '../plugins/scheduler';
import { NestedTrainer } from '../plugins/scheduler';
import { emit, progress, timeMs } from './lib';

const B = 4;
const D = 128;

function flag(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

export async function run(args: string[]): Promise<void> {
  const info = await selectBackend(flag(args, 'backend') ?? process.env.NL_BACKEND ?? 'wasm');
  progress(info.reason);
  const periods = (flag(args, 'periods') ?? '16,64,256').split(',').map(Number);
  const T = Number(flag(args, 'T') ?? 1024);
  const repeats = Number(flag(args, 'repeats') ?? 3);
  const suite = 'cms';
  const x = tf.randomNormal([B, T, D], 0, 1, 'float32', 1);
  const y = tf.randomNormal([B, T, D], 0, 1, 'float32', 2);
  const weights = (() => {
    const probe = new NlContinuumMemorySystem({ levels: [{ period: 0 }] });
    probe.build([null, null, D]);
    return probe.getWeights().map((w) => w.clone());
  })();
  const timeFor = async (period: number): Promise<number> => {
    const cms = new NlContinuumMemorySystem({ levels: [{ period, learningRate: period > 0 ? 0.01 : 0 }], activation: 'gelu', expansion: 4 });
    cms.build([null, null, D]);
    cms.setWeights(weights);
    const tr = new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError });
    const step = (): void => {
      tr.memorize(x, y, { newContext: true }); // reads the loss back at the end: blocks until done
    };
    const ms = await timeMs(step, { warmup: 1, repeats });
    tr.dispose();
    return ms;
  };
  progress(`frozen (period 0), T=${T} ...`);
  const frozen = await timeFor(0);
  emit({ suite, case: `frozen/T=${T}`, metric: 'tokens_per_s', value: (B * T) / (frozen / 1000), unit: 'tok/s', ms: frozen, B, T, D, period: 0, repeats });
  for (const p of periods) {
    progress(`updates (period ${p}), T=${T} ...`);
    const t = await timeFor(p);
    emit({ suite, case: `updates/C=${p}/T=${T}`, metric: 'tokens_per_s', value: (B * T) / (t / 1000), unit: 'tok/s', ms: t, B, T, D, period: p, repeats });
    emit({ suite, case: `overhead/C=${p}/T=${T}`, metric: 'overhead', value: t / frozen, unit: 'x', B, T, D, period: p });
  }
  tf.dispose([x, y, ...weights]);
}
