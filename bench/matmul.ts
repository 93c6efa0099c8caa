/**
 * npm run bench -- matmul [--sizes=256,512,1024] [--repeats=3 (minimum)] [--no-small] [--no-large]
 *
 * GFLOP/s of plain, transposeA, transposeB and batched [8,n,n]x[8,n,n] products on
 *   wasm without the project kernels (built-in), wasm with them (project), cpu (n <= 512 only),
 * plus one ratio row per n and variant: per-product time with project kernels / plain time
 * (target <= 1.5). A second table times small batched products (the HOPE-style many-small-matmuls
 * case, every transpose combination) on the built-in kernel and on each route of the project kernel
 * (auto, xnnpack, gemm = the project SIMD kernel, scalar), with the cost model's estimate per route:
 * what MATMUL_COST_NS in core/backend/kernels/batch-mat-mul.ts was fitted on.
 *
 * wasm and cpu run kernels synchronously inside the op call, so timing the call (then disposing)
 * measures the compute; the machine may be shared, so rows are medians (see bench/lib.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/backend/select';
import { registerProjectKernels, unregisterProjectKernels } from '../core/backend/kernels';
import { estimateRoutes, gemmAvailable, matMulGeometry, setMatMulRoute, type ProductRoute } from '../core/backend/kernels/batch-mat-mul';
import { asWasmBackend } from '../core/backend/kernels/wasm-internals';
import { emit, progress, timeMs } from './lib';

type Variant = 'plain' | 'transposeA' | 'transposeB' | 'batched';
const VARIANTS: readonly Variant[] = ['plain', 'transposeA', 'transposeB', 'batched'];
const BATCH = 8;

function option(args: string[], name: string): string | undefined {
  const hit = args.find((a) => a.startsWith(`--${name}=`));
  return hit?.slice(name.length + 3);
}

/**
 * Median ms per call. The warm-up call (XNNPACK operator creation, JIT) also sizes the sample: at
 * least `minRepeats`, more for fast calls (up to ~1 s of samples, max 25) because the machine may be
 * shared; a call slower than 1.5 s is timed once (the built-in slow paths at n = 1024).
 */
async function measure(fn: () => void, minRepeats: number): Promise<{ ms: number; repeats: number }> {
  const t0 = process.hrtime.bigint();
  fn();
  const first = Number(process.hrtime.bigint() - t0) / 1e6;
  if (first > 1500) return { ms: first, repeats: 1 };
  const repeats = Math.max(minRepeats, Math.min(25, Math.floor(1000 / Math.max(first, 1e-3))));
  return { ms: await timeMs(fn, { warmup: 0, repeats }), repeats };
}

function operands(variant: Variant, n: number): [tf.Tensor, tf.Tensor, boolean, boolean] {
  const shape = variant === 'batched' ? [BATCH, n, n] : [n, n];
  const a = tf.randomNormal(shape, 0, 1, 'float32', 1);
  const b = tf.randomNormal(shape, 0, 1, 'float32', 2);
  return [a, b, variant === 'transposeA', variant === 'transposeB'];
}

async function largeProducts(sizes: number[], repeats: number): Promise<void> {
  const configs: Array<{ backend: 'wasm' | 'cpu'; kernels: 'builtin' | 'project' }> = [
    { backend: 'wasm', kernels: 'builtin' },
    { backend: 'wasm', kernels: 'project' },
    { backend: 'cpu', kernels: 'builtin' },
  ];
  const projectMs = new Map<string, number>();
  for (const { backend, kernels } of configs) {
    await selectBackend(backend);
    if (backend === 'wasm' && kernels === 'builtin') unregisterProjectKernels();
    for (const n of sizes) {
      if (backend === 'cpu' && n > 512) continue;
      for (const variant of VARIANTS) {
        const [a, b, ta, tb] = operands(variant, n);
        progress(`${backend}/${kernels} ${variant} n=${n}`);
        const { ms, repeats: used } = await measure(() => tf.matMul(a, b, ta, tb).dispose(), repeats);
        const products = variant === 'batched' ? BATCH : 1;
        const gflops = (2 * n * n * n * products) / (ms * 1e6);
        emit({ suite: 'matmul', case: `${variant} n=${n}`, metric: 'gflops', value: +gflops.toFixed(3), unit: 'GFLOP/s', backend, kernels, n, variant, ms: +ms.toFixed(3), repeats: used });
        if (backend === 'wasm' && kernels === 'project') projectMs.set(`${variant} ${n}`, ms / products);
        tf.dispose([a, b]);
      }
    }
    if (backend === 'wasm' && kernels === 'builtin') registerProjectKernels('wasm');
  }
  // Ratios from interleaved samples (plain, variant, plain, variant, ...): load from other processes
  // then hits both sides alike, unlike medians taken minutes apart.
  await selectBackend('wasm');
  for (const n of sizes) {
    const [a, b] = operands('plain', n);
    const plainFn = (): void => tf.matMul(a, b).dispose();
    for (const variant of VARIANTS.filter((v) => v !== 'plain')) {
      const [va, vb, ta, tb] = operands(variant, n);
      const variantFn = (): void => tf.matMul(va, vb, ta, tb).dispose();
      const products = variant === 'batched' ? BATCH : 1;
      const perPair = (projectMs.get(`plain ${n}`) ?? 1) + (projectMs.get(`${variant} ${n}`) ?? 1) * products;
      const pairs = Math.max(repeats, Math.min(15, Math.floor(3000 / perPair)));
      progress(`ratio ${variant}/plain n=${n} (${pairs} interleaved pairs)`);
      const { first, second, firstMin, secondMin } = interleavedMedians(plainFn, variantFn, pairs);
      emit({
        suite: 'matmul',
        case: `ratio ${variant}/plain n=${n}`,
        metric: 'time_ratio',
        value: +(second / products / first).toFixed(3),
        unit: 'x',
        backend: 'wasm',
        kernels: 'project',
        n,
        variant,
        definition: 'per-product time with project kernels / plain per-product time (medians of interleaved calls)',
        target: 1.5,
        pairs,
        // Less sensitive to bursts of load from other processes than the medians.
        ratio_of_mins: +(secondMin / products / firstMin).toFixed(3),
      });
      tf.dispose([va, vb]);
    }
    tf.dispose([a, b]);
  }
}

/** Medians and minima (ms) of two functions timed alternately, after one untimed call of each. */
function interleavedMedians(
  f: () => void,
  g: () => void,
  pairs: number,
): { first: number; second: number; firstMin: number; secondMin: number } {
  f();
  g();
  const tf1: number[] = [];
  const tf2: number[] = [];
  const time = (fn: () => void, into: number[]): void => {
    const t0 = process.hrtime.bigint();
    fn();
    into.push(Number(process.hrtime.bigint() - t0) / 1e6);
  };
  for (let i = 0; i < pairs; i++) {
    time(f, tf1);
    time(g, tf2);
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  return { first: median(tf1), second: median(tf2), firstMin: Math.min(...tf1), secondMin: Math.min(...tf2) };
}

/**
 * [batch, m, k, n] products small enough that per-call overheads decide the winner; the first rows
 * are the per-chunk products of the chunked linear-attention / Titans plugins (C = 64, head dim 32).
 */
const SMALL: ReadonlyArray<[number, number, number, number]> = [
  [16, 64, 32, 64],
  [16, 64, 64, 32],
  [16, 32, 64, 32],
  [16, 64, 32, 32],
  [64, 8, 8, 8],
  [64, 16, 16, 16],
  [64, 16, 32, 16],
  [64, 32, 32, 32],
  [32, 64, 16, 64],
  [64, 1, 64, 64],
  [64, 64, 64, 1],
  [16, 128, 32, 128],
  [4, 128, 128, 128],
  [1, 256, 256, 256],
];

const TRANSPOSES: ReadonlyArray<[boolean, boolean]> = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

/**
 * Small batched products, every transpose combination, on the built-in kernel and on each route of
 * the project kernel (auto, xnnpack, gemm, scalar). Settings are timed round-robin (one sample of
 * each per round) so load from other processes hits them alike; each row also carries the cost
 * model's estimate for its route (est_us), the numbers MATMUL_COST_NS was fitted to.
 */
async function smallProducts(repeats: number): Promise<void> {
  await selectBackend('wasm');
  const settings: Array<{ kernels: 'builtin' | 'project'; route: ProductRoute }> = [
    { kernels: 'builtin', route: 'auto' },
    { kernels: 'project', route: 'auto' },
    { kernels: 'project', route: 'xnnpack' },
    { kernels: 'project', route: 'gemm' },
    { kernels: 'project', route: 'scalar' },
  ];
  const gemmHere = gemmAvailable(asWasmBackend(tf.backend(), 'bench'));
  for (const [batch, m, k, n] of SMALL) {
    for (const [ta, tb] of TRANSPOSES) {
      const a = tf.randomNormal(ta ? [batch, k, m] : [batch, m, k], 0, 1, 'float32', 3);
      const b = tf.randomNormal(tb ? [batch, n, k] : [batch, k, n], 0, 1, 'float32', 4);
      const g = matMulGeometry(a.shape, b.shape, ta, tb, 'bench');
      const est = estimateRoutes(g, ta, tb, gemmHere);
      const macs = batch * m * k * n;
      // Calls per sample: about 2 ms of the fastest route.
      const calls = Math.max(1, Math.min(50, Math.round(2e6 / (macs * 0.12 + 2000))));
      const label = `small [${batch},${m},${k}]x[${batch},${k},${n}]${ta ? ' tA' : ''}${tb ? ' tB' : ''}`;
      progress(label);
      const samples = settings.map(() => [] as number[]);
      for (let round = 0; round <= repeats; round++) {
        settings.forEach(({ kernels, route }, si) => {
          if (route === 'gemm' && !gemmHere) return;
          if (kernels === 'builtin') unregisterProjectKernels();
          setMatMulRoute(route);
          try {
            const t0 = process.hrtime.bigint();
            for (let i = 0; i < calls; i++) tf.matMul(a, b, ta, tb).dispose();
            const us = Number(process.hrtime.bigint() - t0) / 1e3 / calls;
            if (round > 0) samples[si].push(us); // round 0 warms up (operator caches, JIT)
          } finally {
            setMatMulRoute('auto');
            if (kernels === 'builtin') registerProjectKernels('wasm');
          }
        });
      }
      settings.forEach(({ kernels, route }, si) => {
        if (samples[si].length === 0) return;
        const us = [...samples[si]].sort((x, y) => x - y)[Math.floor(samples[si].length / 2)];
        const estimate = route === 'xnnpack' || route === 'gemm' || route === 'scalar' ? est[route] / 1e3 : undefined;
        emit({
          suite: 'matmul',
          case: label,
          metric: 'us_per_call',
          value: +us.toFixed(1),
          unit: 'us',
          backend: 'wasm',
          kernels,
          route,
          gflops: +((2 * macs) / (us * 1e3)).toFixed(3),
          ...(estimate === undefined ? {} : { est_us: +estimate.toFixed(1) }),
        });
      });
      tf.dispose([a, b]);
    }
  }
}

export async function run(args: string[]): Promise<void> {
  const sizes = (option(args, 'sizes') ?? '256,512,1024').split(',').map((s) => Number(s));
  if (sizes.some((s) => !Number.isInteger(s) || s <= 0)) throw new Error(`matmul bench: --sizes must be positive integers, got ${option(args, 'sizes')}`);
  const repeats = Number(option(args, 'repeats') ?? '3');
  if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`matmul bench: --repeats must be a positive integer, got ${option(args, 'repeats')}`);
  const previous = tf.getBackend();
  try {
    if (!args.includes('--no-large')) await largeProducts(sizes, repeats);
    if (!args.includes('--no-small')) await smallProducts(Math.max(repeats, 5));
  } finally {
    if (tf.findBackend('wasm') != null) registerProjectKernels('wasm');
    if (previous) await selectBackend(previous);
  }
}
