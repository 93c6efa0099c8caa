/**
 * Layouts of memory groups (see recurrence.ts SharedSegmentWrites): memory-minor batches N1 = (n, memory)
 * and "wide" stacks with the memory on the feature axis. Both are views of the same numbers; converting
 * is one Transpose (a copy), converting weights [N1, p, q] -> [N2, nm p, q] is a free reshape.
 */
import * as tf from '@tensorflow/tfjs';
import { sliceView } from '../../../core/ops/tensor-util';

export { sliceView };

/** [N2, R, nm X] (memory on the feature axis) <-> [N2 nm, R, X] (memory-minor batch). */
export function wideToBatched(a: tf.Tensor, nm: number): tf.Tensor3D {
  const [n2, r, f] = a.shape as [number, number, number];
  if (nm === 1) return a as tf.Tensor3D;
  return a.reshape([n2, r, nm, f / nm]).transpose([0, 2, 1, 3]).reshape([n2 * nm, r, f / nm]) as tf.Tensor3D;
}
export function batchedToWide(a: tf.Tensor, nm: number): tf.Tensor3D {
  const [n1, r, x] = a.shape as [number, number, number];
  if (nm === 1) return a as tf.Tensor3D;
  return a.reshape([n1 / nm, nm, r, x]).transpose([0, 2, 1, 3]).reshape([n1 / nm, r, nm * x]) as tf.Tensor3D;
}


/** Block i of nb equal blocks along axis 1 of [N, R, X] -> [N, R / nb, X] (sliceView of contiguous rows per n). */
export function rowBlock(a: tf.Tensor, nb: number, i: number): tf.Tensor3D {
  const [n, r, x] = a.shape as [number, number, number];
  const m = (r / nb) * x;
  if (nb === 1) return a as tf.Tensor3D;
  return sliceView(a.reshape([n, nb, m]), [0, i, 0], [n, 1, m]).reshape([n, r / nb, x]) as tf.Tensor3D;
}
