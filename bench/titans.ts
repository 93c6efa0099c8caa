/**
 * npm run bench -- titans [--memories=mlp,linear] [--lengths=256,1024,4096] [--naive-max=1024]
 *                         [--chunks=64,32] [--repeats=3] [--checkpoint=on|off] [--backend=wasm]
 * Forward + backward throughput (tokens/s) of NlTitansMemory's computation (projections, conv, norm,
 * gate included; gradients w.r.t. x and every weight), naive (token loop) vs chunked, at B=4, D=128,
 * 4 heads (d = 32). Rows:
 *   tokens_per_s   per memory / impl / T, with peak tf.memory().numBytes of the step (peak_bytes)
 *   speedup        chunked tokens/s / naive tokens/s at T=1024 (same chunk size: same math)
 *   scaling        time(T=4096) / time(T=1024) of the chunked form (4 = linear in T)
 * The naive loop is only run up to --naive-max tokens (default 1024). --checkpoint=off keeps every
 * chunk's intermediates on the tape (the layout before checkpointing; the mlp naive loop then needs
 * ~2.8 GB at T=1024 and aborts the wasm heap, so use --naive-max=512 with it). `speedup` is taken at
 * T=1024, or at the largest T the naive loop ran (the row's T says which). Wall-clock medians on a
 * possibly shared machine.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/backend';
import { resolveTitansConfig } from '../plugins/titans';
import { titansForward, type TitansOptions, type TitansWeights } from '../plugins/titans';
import { memoryMatrixShapes, type MemoryKind } from '../plugins/titans';
import { emit, progress, timeMs } from './lib';

const B = 4;
const D = 128;
const H = 4;
const HD = D / H;

function flag(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

function weightsFor(kind: MemoryKind, expansion: number): TitansWeights {
  const g = (shape: number[], seed: number, std = 1 / Math.sqrt(shape[0])): tf.Tensor => tf.randomNormal(shape, 0, std, 'float32', seed);
  const f = H * HD;
  const w: TitansWeights = {
    qKernel: g([D, f], 1),
    kKernel: g([D, f], 2),
    vKernel: g([D, f], 3),
    convQKernel: g([4, f], 4, 0.1),
    convKKernel: g([4, f], 5, 0.1),
    convVKernel: g([4, f], 6, 0.1),
    thetaKernel: g([D, H], 7),
    thetaBias: tf.zeros([H]),
    etaKernel: g([D, H], 8),
    etaBias: tf.fill([H], 2),
    alphaKernel: g([D, H], 9),
    alphaBias: tf.fill([H], -4),
    outNormScale: tf.ones([f]),
    gateKernel: g([D, f], 10),
    outKernel: g([f, D], 11),
  };
  const shapes = memoryMatrixShapes(kind, HD, expansion * HD);
  if (kind === 'linear') w.memW = g([H, ...shapes[0]], 12, 1 / Math.sqrt(HD));
  else {
    w.memW1 = g([H, ...shapes[0]], 12, 1 / Math.sqrt(shapes[0][1]));
    w.memW2 = g([H, ...shapes[1]], 13, 1 / Math.sqrt(shapes[1][1]));
  }
  return w;
}

/**
 * Peak of tf.memory().numBytes over a function, sampled at every tensor allocation (the engine's
 * trackTensor), so the peak inside the backward pass is seen too.
 */
function peakBytesOf(f: () => void): number {
  const eng = tf.engine() as unknown as { trackTensor: (a: tf.Tensor, b: unknown) => void; state: { numBytes: number } };
  const orig = eng.trackTensor;
  const base = eng.state.numBytes;
  let peak = base;
  eng.trackTensor = function (this: unknown, a: tf.Tensor, b: unknown): void {
    orig.call(eng, a, b);
    if (eng.state.numBytes > peak) peak = eng.state.numBytes;
  };
  try {
    f();
  } finally {
    eng.trackTensor = orig;
  }
  return peak - base;
}

export async function run(args: string[]): Promise<void> {
  const info = await selectBackend(flag(args, 'backend') ?? process.env.NL_BACKEND ?? 'wasm');
  progress(`${info.reason}; project kernels: ${info.kernels.length ? info.kernels.join(', ') : 'none'}`);
  const memories = (flag(args, 'memories') ?? 'mlp,linear').split(',') as MemoryKind[];
  const lengths = (flag(args, 'lengths') ?? '256,1024,4096').split(',').map(Number);
  const naiveMaxFlag = flag(args, 'naive-max');
  const chunkSizes = (flag(args, 'chunks') ?? '64,32').split(',').map(Number);
  const repeats = Number(flag(args, 'repeats') ?? 3);
  const checkpoint = (flag(args, 'checkpoint') ?? 'on') !== 'off';
  const suite = 'titans';

  for (const kind of memories) {
    const cfg = resolveTitansConfig({ dModel: D, numHeads: H, memory: kind });
    const w = weightsFor(kind, cfg.expansion);
    const names = Object.keys(w) as Array<keyof TitansWeights>;
    const ms: Record<string, number> = {};
    const naiveMax = Number(naiveMaxFlag ?? 1024);
    const cmpT = Math.max(...lengths.filter((l) => l <= Math.min(1024, naiveMax)));
    for (const t of lengths) {
      const x = tf.randomNormal([B, t, D], 0, 1, 'float32', t);
      const r = tf.randomNormal([B, t, D], 0, 1, 'float32', t + 1);
      const impls = chunkSizes.flatMap((c) => [['naive', c] as const, ['chunked', c] as const]);
      for (const [impl, chunkSize] of impls) {
        const label = `${impl}-C${chunkSize}`;
        if (impl === 'naive' && (t > naiveMax || chunkSize !== chunkSizes[0])) {
          if (t > naiveMax) progress(`${kind}/${label}/T=${t}: skipped (T > --naive-max=${naiveMax})`);
          continue;
        }
        const o: TitansOptions = { ...cfg, impl, chunkSize, checkpoint, dModel: D, headDim: HD, hidden: cfg.expansion * HD };
        const step = (): void => {
          const f = (...a: tf.Tensor[]): tf.Scalar => {
            const ww = Object.fromEntries(names.map((n, i) => [n, a[i + 1]])) as unknown as TitansWeights;
            const out = titansForward(o, ww, a[0], null);
            tf.dispose([out.read, ...Object.values(out.state)]);
            return out.y.mul(r).sum() as tf.Scalar;
          };
          const grads = tf.grads(f)([x, ...names.map((n) => w[n] as tf.Tensor)]);
          grads[0].slice([0, 0, 0], [1, 1, 1]).dataSync();
          tf.dispose(grads);
        };
        progress(`${kind}/${label}/T=${t} ...`);
        const time = await timeMs(step, { warmup: 1, repeats });
        const peak = peakBytesOf(step); // one more (untimed) step: peak numBytes growth, backward pass included
        ms[`${label}/${t}`] = time;
        emit({ suite, case: `${kind}/${label}/T=${t}`, metric: 'tokens_per_s', value: (B * t) / (time / 1000), unit: 'tok/s', ms: time, peak_bytes: peak, B, D, H, T: t, memory: kind, impl, chunkSize, checkpoint, repeats });
      }
      tf.dispose([x, r]);
    }
    const naiveKey = `naive-C${chunkSizes[0]}/${cmpT}`;
    for (const c of chunkSizes) {
      const label = `chunked-C${c}`;
      if (ms[naiveKey] && ms[`${label}/${cmpT}`]) {
        emit({ suite, case: `${kind}/${label}/T=${cmpT}`, metric: 'speedup', value: ms[naiveKey] / ms[`${label}/${cmpT}`], unit: `x (vs naive-C${chunkSizes[0]})`, target: '>= 5 (at T=1024)', memory: kind, chunkSize: c, T: cmpT });
      }
      if (ms[`${label}/4096`] && ms[`${label}/1024`]) {
        emit({ suite, case: `${kind}/${label}`, metric: 'scaling', value: ms[`${label}/4096`] / ms[`${label}/1024`], unit: 'time(4096)/time(1024)', target: '<= 4.5', memory: kind, chunkSize: c });
      }
    }
    tf.dispose(Object.values(w));
  }
}
