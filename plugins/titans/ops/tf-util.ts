/**
 * Small tfjs helpers for the titans ops. splitAxis0 / stackAxis0 (wasm-friendly unstack/stack) live in
 * core/ops/tensor-util.ts and are re-exported here.
 */
import * as tf from '@tensorflow/tfjs';

export { splitAxis0, stackAxis0 } from '../../../core/ops/tensor-util';

/** [C, C] 0/1 lower-triangular mask (diagonal included): entry [t, s] = 1 iff s <= t. */
export function lowerMask(c: number): tf.Tensor2D {
  const m = new Float32Array(c * c);
  for (let i = 0; i < c; i++) for (let j = 0; j <= i; j++) m[i * c + j] = 1;
  return tf.tensor2d(m, [c, c]);
}

/**
 * Products of per-token factors between two positions from their logs, [N, C] -> [N, C, C]:
 * out[t, s] = prod_{u=s+1..t} f_u = exp(L_t - L_s) for s <= t (L = inclusive cumsum of log f),
 * 0 above the diagonal. The difference is masked before exp so nothing overflows.
 */
export function decayMatrix(logF: tf.Tensor2D, lower: tf.Tensor2D): { mat: tf.Tensor3D; cum: tf.Tensor2D } {
  return tf.tidy(() => {
    const cum = tf.cumsum(logF, 1) as tf.Tensor2D; // [N, C] (last axis: tfjs' cumsum grad is right there)
    const diff = cum.expandDims(2).sub(cum.expandDims(1)); // L_t - L_s, [N, C, C]
    const mat = tf.exp(diff.mul(lower)).mul(lower) as tf.Tensor3D;
    return { mat, cum };
  });
}
