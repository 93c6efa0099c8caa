import * as tf from '@tensorflow/tfjs';

export interface LeakOptions {
  /** Calls before the baseline is taken (lets lazily-created variables and caches appear). Default 2. */
  warmup?: number;
  /** Calls measured against the baseline. Default 5. */
  iterations?: number;
  /** Name shown in the failure message. */
  name?: string;
}

/**
 * Runs `step` warmup + iterations times and throws if tf.memory().numTensors grows after the
 * warmup. Works for sync and async steps; whatever `step` returns is ignored (dispose it inside).
 */
export async function expectNoLeakedTensors(
  step: (i: number) => unknown | Promise<unknown>,
  opts: LeakOptions = {},
): Promise<void> {
  const warmup = opts.warmup ?? 2;
  const iterations = opts.iterations ?? 5;
  let i = 0;
  for (; i < warmup; i++) await step(i);
  const before = tf.memory().numTensors;
  const counts: number[] = [];
  for (let j = 0; j < iterations; j++, i++) {
    await step(i);
    counts.push(tf.memory().numTensors);
  }
  const after = counts[counts.length - 1];
  if (after !== before) {
    throw new Error(
      `${opts.name ? opts.name + ': ' : ''}leaked tensors: numTensors ${before} after warmup, then ${counts.join(', ')} ` +
        `over ${iterations} more steps (+${((after - before) / iterations).toFixed(2)} per step)`,
    );
  }
}
