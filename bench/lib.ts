/** Benchmark helpers: every result is one JSON line on stdout; progress goes to stderr. */
import * as tf from '@tensorflow/tfjs';

export interface BenchRow {
  suite: string;
  case: string;
  metric: string;
  value: number;
  unit: string;
  /** Optional context: backend, shapes, kernels on/off... */
  [extra: string]: unknown;
}

export function emit(row: BenchRow): void {
  process.stdout.write(JSON.stringify({ ...row, backend: row.backend ?? tf.getBackend() }) + '\n');
}

export function progress(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

/**
 * Median wall time in ms of `fn` (which must block until its result is computed, e.g. by reading
 * a value with dataSync at the end), after `warmup` untimed runs.
 */
export async function timeMs(fn: () => unknown | Promise<unknown>, opts: { warmup?: number; repeats?: number } = {}): Promise<number> {
  const warmup = opts.warmup ?? 1;
  const repeats = opts.repeats ?? 3;
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}
