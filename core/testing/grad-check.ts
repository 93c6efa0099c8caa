import * as tf from '@tensorflow/tfjs';
import { assertClose } from './assert-close';

export interface GradCheckOptions {
  /** Finite-difference step. float32 arithmetic: keep it around 1e-2..1e-3. Default 5e-3. */
  eps?: number;
  rtol?: number;
  atol?: number;
  name?: string;
}

/**
 * Compares tf.grads of a scalar function with central finite differences, entry by entry.
 * Meant for tiny shapes (cost: 2 evaluations per input element). Inputs are not modified.
 */
export function gradCheck(
  f: (...xs: tf.Tensor[]) => tf.Scalar,
  xs: tf.Tensor[],
  opts: GradCheckOptions = {},
): void {
  const eps = opts.eps ?? 5e-3;
  const analytic = tf.tidy(() => tf.grads((...a: tf.Tensor[]) => f(...a))(xs));
  try {
    xs.forEach((x, which) => {
      const base = Float32Array.from(x.dataSync() as Float32Array);
      const numeric = new Float64Array(base.length);
      for (let i = 0; i < base.length; i++) {
        const evalAt = (delta: number): number =>
          tf.tidy(() => {
            const v = Float32Array.from(base);
            v[i] += delta;
            const args = xs.map((y, j) => (j === which ? tf.tensor(v, x.shape) : y));
            return f(...args).dataSync()[0];
          });
        numeric[i] = (evalAt(eps) - evalAt(-eps)) / (2 * eps);
      }
      assertClose(analytic[which].dataSync(), numeric, {
        rtol: opts.rtol ?? 2e-2,
        atol: opts.atol ?? 2e-3,
        name: `${opts.name ?? 'gradCheck'} d/dx[${which}]`,
      });
    });
  } finally {
    tf.dispose(analytic);
  }
}
