/** Small helpers shared by the memories and the layer (not part of the public surface). */
import * as tf from '@tensorflow/tfjs';

/** Throws `${name}: must be [..], got [..]` unless shape matches (-1 = any). */
export function checkShape(t: tf.Tensor, expected: number[], name: string, hint: string): void {
  if (!(t instanceof tf.Tensor)) throw new Error(`${name}: must be a tf.Tensor ${hint}`);
  const ok = t.shape.length === expected.length && t.shape.every((d, i) => expected[i] < 0 || expected[i] === d);
  if (!ok) throw new Error(`${name}: must be ${hint}, got shape [${t.shape}]`);
}

const NORM_EPS = 1e-6;
/** x / sqrt(sum x^2 + eps) over the last axis; eps keeps the zero vector finite (and its gradient). */
export function l2Normalize(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => x.mul(tf.rsqrt(x.square().sum(-1, true).add(NORM_EPS))));
}
