/**
 * npm run bench -- linear-attention [--rules=delta,additive] [--lengths=256,1024,4096] [--naive-max=1024]
 *                                   [--chunks=64,32] [--repeats=3] [--backend=wasm]
 * Forward + backward throughput (tokens/s) of NlLinearAttention's computation (projections included),
 * naive (token loop) vs chunked (C = 64, the default, and 32), at B=4, D=128, 4 heads (dk = dv = 32). Rows:
 *   tokens_per_s  per rule / impl / T
 *   speedup       chunked tokens/s / naive tokens/s at T=1024, per chunk size
 *   scaling       time(T=4096) / time(T=1024) of the chunked form, per chunk size (4 = linear in T), and
 *                 of a control that runs only the q/k/v/out projections (plain matmuls, same sizes): on
 *                 a loaded machine the control scales superlinearly too, which bounds what the
 *                 recurrence itself can show.
 * The naive loop is only run up to --naive-max tokens (default 1024: at 4096 one fwd+bwd takes tens of
 * seconds on wasm). Timings are wall-clock medians; the machine may be shared, so they are noisy.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/backend';
import { linearAttentionForward, type LinearAttentionOptions, type LinearAttentionWeights } from '../plugins/linear-attention';
import type { LinearAttentionRule } from '../plugins/linear-attention';
import { emit, progress, timeMs } from './lib';

const B = 4;
const D = 128;
const H = 4;
const DK = D / H;
const DV = D / H;

function flag(args: string[], name: string): string | undefined {
  const hit = args.find((a) => a.startsWith(`--${name}=`));
  return hit?.slice(name.length + 3);
}

function weightsFor(rule: LinearAttentionRule): LinearAttentionWeights {
  const g = (shape: number[], seed: number): tf.Tensor => tf.randomNormal(shape, 0, 1 / Math.sqrt(shape[0]), 'float32', seed);
  const w: LinearAttentionWeights = {
    qKernel: g([D, H * DK], 1),
    kKernel: g([D, H * DK], 2),
    vKernel: g([D, H * DV], 3),
    outKernel: g([H * DV, D], 4),
  };
  if (rule !== 'additive') {
    w.betaKernel = g([D, H], 5);
    w.betaBias = tf.zeros([H]);
  }
  if (rule === 'gated-delta') {
    w.gateKernel = g([D, H], 6);
    w.gateBias = tf.fill([H], 5);
  }
  return w;
}

export async function run(args: string[]): Promise<void> {
  const info = await selectBackend(flag(args, 'backend') ?? process.env.NL_BACKEND ?? 'wasm');
  progress(`${info.reason}; project kernels: ${info.kernels.length ? info.kernels.join(', ') : 'none'}`);
  const rules = (flag(args, 'rules') ?? 'delta,additive').split(',') as LinearAttentionRule[];
  const lengths = (flag(args, 'lengths') ?? '256,1024,4096').split(',').map(Number);
  const naiveMax = Number(flag(args, 'naive-max') ?? 1024);
  const chunkSizes = (flag(args, 'chunks') ?? '64,32').split(',').map(Number);
  const repeats = Number(flag(args, 'repeats') ?? 3);
  const suite = 'linear-attention';

  for (const rule of rules) {
    const w = weightsFor(rule);
    const names = Object.keys(w) as Array<keyof LinearAttentionWeights>;
    const ms: Record<string, number> = {};
    for (const t of lengths) {
      const x = tf.randomNormal([B, t, D], 0, 1, 'float32', t);
      const r = tf.randomNormal([B, t, D], 0, 1, 'float32', t + 1);
      const impls = [['naive', 64] as const, ...chunkSizes.map((c) => ['chunked', c] as const)];
      for (const [impl, chunkSize] of impls) {
        const label = impl === 'naive' ? 'naive' : `chunked-C${chunkSize}`;
        if (impl === 'naive' && t > naiveMax) {
          progress(`${rule}/naive/T=${t}: skipped (T > --naive-max=${naiveMax})`);
          continue;
        }
        const opts: LinearAttentionOptions = {
          numHeads: H,
          keyDim: DK,
          valueDim: DV,
          rule,
          qkNorm: rule === 'additive' ? 'none' : 'l2',
          queryScale: 'rsqrt-dk',
          impl,
          chunkSize,
          inverse: 'blocked',
        };
        // forward + backward w.r.t. x and every weight; reading one gradient value blocks until done
        const step = (): void => {
          const f = (...a: tf.Tensor[]): tf.Scalar => {
            const ww = Object.fromEntries(names.map((n, i) => [n, a[i + 1]])) as unknown as LinearAttentionWeights;
            return linearAttentionForward(opts, ww, a[0], null).y.mul(r).sum() as tf.Scalar;
          };
          const grads = tf.grads(f)([x, ...names.map((n) => w[n] as tf.Tensor)]);
          grads[0].slice([0, 0, 0], [1, 1, 1]).dataSync();
          tf.dispose(grads);
        };
        progress(`${rule}/${label}/T=${t} ...`);
        const time = await timeMs(step, { warmup: 1, repeats });
        ms[`${label}/${t}`] = time;
        emit({ suite, case: `${rule}/${label}/T=${t}`, metric: 'tokens_per_s', value: (B * t) / (time / 1000), unit: 'tok/s', ms: time, B, D, H, T: t, rule, impl, chunkSize: impl === 'naive' ? null : chunkSize, repeats });
      }
      tf.dispose([x, r]);
    }
    // control: forward + backward of the projections alone (x Wq, x Wk, x Wv, o Wo), no recurrence
    for (const t of lengths.filter((l) => l === 1024 || l === 4096)) {
      const x = tf.randomNormal([B, t, D], 0, 1, 'float32', t);
      const kernels = [w.qKernel, w.kKernel, w.vKernel, w.outKernel];
      const step = (): void => {
        const f = (...a: tf.Tensor[]): tf.Scalar =>
          tf.addN(a.slice(1).map((k) => tf.matMul(a[0].reshape([B * t, D]), k as tf.Tensor2D).sum())) as tf.Scalar;
        const grads = tf.grads(f)([x, ...kernels]);
        grads[0].slice([0, 0, 0], [1, 1, 1]).dataSync();
        tf.dispose(grads);
      };
      progress(`${rule}/projections-only/T=${t} ...`);
      const time = await timeMs(step, { warmup: 1, repeats });
      ms[`projections-only/${t}`] = time;
      emit({ suite, case: `${rule}/projections-only/T=${t}`, metric: 'tokens_per_s', value: (B * t) / (time / 1000), unit: 'tok/s', ms: time, B, D, H, T: t, rule, impl: 'control', repeats });
      x.dispose();
    }
    if (ms['projections-only/4096'] && ms['projections-only/1024']) {
      emit({ suite, case: `${rule}/projections-only`, metric: 'scaling', value: ms['projections-only/4096'] / ms['projections-only/1024'], unit: 'time(4096)/time(1024)', target: 'control', rule });
    }
    for (const c of chunkSizes) {
      const label = `chunked-C${c}`;
      if (ms['naive/1024'] && ms[`${label}/1024`]) {
        emit({ suite, case: `${rule}/${label}/T=1024`, metric: 'speedup', value: ms['naive/1024'] / ms[`${label}/1024`], unit: 'x (vs naive)', target: '>= 5', rule, chunkSize: c });
      }
      if (ms[`${label}/4096`] && ms[`${label}/1024`]) {
        emit({ suite, case: `${rule}/${label}`, metric: 'scaling', value: ms[`${label}/4096`] / ms[`${label}/1024`], unit: 'time(4096)/time(1024)', target: '~4 (linear)', rule, chunkSize: c });
      }
    }
    tf.dispose(Object.values(w));
  }
}
