/**
 * npm run bench -- self-modifying-titans [--lengths=256,1024,4096] [--naive-max=1024] [--chunk=64]
 *                                        [--checkpoint=1] [--repeats=3] [--backend=wasm]
 * Forward + backward throughput (tokens/s) of the self-modifying Titans mixer (default config:
 * momentum, DGD, weight decay, l2 normalisation; sentinel off so no sync is timed) at B=4, D=128,
 * 4 heads (dh = 32, memory hidden 64), naive (token loop inside each chunk) vs chunked. Rows:
 *   tokens_per_s per impl / T (median of --repeats timed steps after one warm-up step),
 *   peak_bytes: peak tf.memory().numBytes above the pre-step baseline during one extra, untimed step
 *     (sampled after every kernel, forward and backward, via tf.profile's per-kernel byte snapshots),
 *   speedup (chunked / naive at T=1024) and scaling (chunked time(T=4096) / time(T=1024)).
 * Both forms run with per-chunk activation checkpointing (the default, --checkpoint=0 turns it off):
 * without it the tape holds ~6 MB per token and T=1024 does not fit in the wasm heap.
 * Both forms compute the same function (Eq. 90: per-token gradients at the chunk-start state), so
 * the naive form is a loop over tokens only inside the recurrence (its reads and inner gradients are
 * batched per chunk, in the memory-major tiled layout); the chunked form shares key/rate-only work
 * across memories and, with chunkSize == memChunkSize (default here), runs M_mem in the same loop as
 * the other memories (plugins/self-modifying-titans/README.md, "Performance design").
 * Single medians on a shared machine swing by up to 2x between runs: compare within one run.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/backend';
import { l2Loss } from '../core/inner-loss';
import { memoryNames, selfModifyingTitansForward, type SmtOptions, type SmtWeights } from '../plugins/self-modifying-titans';
import { emit, progress, timeMs } from './lib';

const B = 4;
const D = 128;
const H = 4;
const DH = D / H;
const DHID = 2 * DH;

/**
 * Peak tf.memory().numBytes above the starting value while fn runs. tf.profile snapshots numBytes
 * after every kernel but keeps a record per kernel and takes Math.max over all of them with a spread,
 * which overflows the call stack beyond ~10^5 kernels (the naive form at T=1024): the record list is
 * replaced by an array whose push only keeps the running maximum.
 */
async function peakBytes(fn: () => void): Promise<number> {
  const base = tf.memory().numBytes;
  let peak = base;
  const eng = tf.engine() as unknown as { state: { activeProfile: { kernels: unknown[] } } };
  await tf.profile(() => {
    const sink: unknown[] = [];
    sink.push = (...ks: unknown[]): number => {
      for (const k of ks) peak = Math.max(peak, (k as { totalBytesSnapshot: number }).totalBytesSnapshot);
      return 0;
    };
    eng.state.activeProfile.kernels = sink;
    fn();
  });
  return peak - base;
}

function flag(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

export async function run(args: string[]): Promise<void> {
  const info = await selectBackend(flag(args, 'backend') ?? process.env.NL_BACKEND ?? 'wasm');
  progress(`${info.reason}; project kernels: ${info.kernels.length ? info.kernels.join(', ') : 'none'}`);
  const lengths = (flag(args, 'lengths') ?? '256,1024,4096').split(',').map(Number);
  const naiveMax = Number(flag(args, 'naive-max') ?? 1024);
  const chunk = Number(flag(args, 'chunk') ?? 64);
  const ckpt = (flag(args, 'checkpoint') ?? '1') !== '0';
  const repeats = Number(flag(args, 'repeats') ?? 3);
  const suite = 'self-modifying-titans';
  const base: SmtOptions = {
    numHeads: H, headDim: DH, hiddenDim: DHID, act: 'silu', innerLoss: l2Loss, momentum: 0.5, dgd: true,
    weightDecay: true, staticK: false, staticV: false, adaptiveQ: false, normalize: 'l2', chunkSize: chunk,
    memChunkSize: chunk, etaMax: 0.1, alphaMin: 0.5, gradClip: 1, impl: 'chunked', gradientMode: 'full',
    sentinel: false, layerName: 'bench', checkpoint: ckpt, parameterization: 'paper', slowRate: 0.1,
  };
  const nm = memoryNames(base).length;
  const g = (shape: number[], seed: number, std: number): tf.Tensor => tf.randomNormal(shape, 0, std, 'float32', seed);
  const w: SmtWeights = {
    w1Init: g([nm, H, DH, DHID], 1, 0.5 / Math.sqrt(DHID)),
    w2Init: g([nm, H, DHID, DH], 2, 0.5 / Math.sqrt(DH)),
    memW1Init: g([H, DH, DHID], 3, 0.5 / Math.sqrt(DHID)),
    memW2Init: g([H, DHID, DH], 4, 0.5 / Math.sqrt(DH)),
    etaBias: tf.zeros([H]),
    alphaBias: tf.fill([H], 4),
    qKernel: g([D, D], 5, 1 / Math.sqrt(D)),
    outKernel: g([D, D], 6, 1 / Math.sqrt(D)),
  };
  const names = Object.keys(w) as Array<keyof SmtWeights>;
  const ms: Record<string, number> = {};
  for (const t of lengths) {
    const x = tf.randomNormal([B, t, D], 0, 1, 'float32', t);
    const r = tf.randomNormal([B, t, D], 0, 1, 'float32', t + 1);
    for (const impl of ['naive', 'chunked'] as const) {
      if (impl === 'naive' && t > naiveMax) {
        progress(`naive/T=${t}: skipped (T > --naive-max=${naiveMax})`);
        continue;
      }
      const opts = { ...base, impl };
      const step = (): void => {
        const f = (...a: tf.Tensor[]): tf.Scalar => {
          const ww = Object.fromEntries(names.map((n, i) => [n, a[i + 1]])) as unknown as SmtWeights;
          const out = selfModifyingTitansForward(opts, ww, a[0], null);
          tf.dispose(Object.values(out.state));
          return out.y.mul(r).sum() as tf.Scalar;
        };
        const grads = tf.grads(f)([x, ...names.map((n) => w[n] as tf.Tensor)]);
        grads[0].slice([0, 0, 0], [1, 1, 1]).dataSync();
        tf.dispose(grads);
      };
      progress(`${impl}/T=${t} ...`);
      const time = await timeMs(step, { warmup: 1, repeats });
      const peak = await peakBytes(step);
      ms[`${impl}/${t}`] = time;
      emit({ suite, case: `${impl}/T=${t}`, metric: 'tokens_per_s', value: (B * t) / (time / 1000), unit: 'tok/s', ms: time, B, D, H, T: t, impl, chunkSize: chunk, checkpoint: ckpt, repeats });
      emit({ suite, case: `${impl}/T=${t}`, metric: 'peak_bytes', value: peak, unit: 'bytes (peak numBytes above baseline, forward + backward)', T: t, impl, chunkSize: chunk, checkpoint: ckpt });
    }
    tf.dispose([x, r]);
  }
  if (ms['naive/1024'] && ms['chunked/1024']) {
    emit({ suite, case: 'T=1024', metric: 'speedup', value: ms['naive/1024'] / ms['chunked/1024'], unit: 'x (vs naive)', target: '>= 5', chunkSize: chunk });
  }
  if (ms['chunked/4096'] && ms['chunked/1024']) {
    emit({ suite, case: 'chunked', metric: 'scaling', value: ms['chunked/4096'] / ms['chunked/1024'], unit: 'time(4096)/time(1024)', target: '<= 4.5', chunkSize: chunk });
  }
  tf.dispose(Object.values(w));
}
