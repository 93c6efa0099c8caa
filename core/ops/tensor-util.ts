/**
 * Small tfjs helpers that work around gradient bugs of @tensorflow/tfjs-core 4.22 and slow wasm
 * kernels (found while building the linear-attention plugin; each has a test in tensor-util.test.ts).
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Cumulative sum along `axis` whose gradient has the right shape for any axis (tfjs 4.22's Cumsum
 * gradient transposes the result wrongly unless the axis is the last one), by moving the axis last.
 */
export function cumsumSafe(x: tf.Tensor, axis: number, exclusive = false): tf.Tensor {
  const rank = x.rank;
  const ax = axis < 0 ? axis + rank : axis;
  if (ax === rank - 1) return tf.cumsum(x, ax, exclusive);
  const perm = [...Array(rank).keys()].filter((i) => i !== ax).concat([ax]); // axis moved last
  const inverse = new Array<number>(rank);
  perm.forEach((p, i) => (inverse[p] = i));
  return tf.tidy(() => tf.cumsum(tf.transpose(x, perm), rank - 1, exclusive).transpose(inverse));
}

/**
 * Splits x along axis 0 into x.shape[0] pieces (axis 0 dropped), like tf.unstack(x, 0), in
 * O(size log n) copying. On wasm every Slice reads its whole input (a heap copy) and Unpack/SplitV
 * slice once per piece, so tf.unstack costs O(size n); halving recursively reads each element once
 * per level. The gradient (pads of the halves, then concats) has the same cost. It also sidesteps a
 * tfjs 4.22 bug: the gradient of tf.unstack over an axis of size 1 throws (Unpack gets a null dy).
 */
export function splitAxis0(x: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => {
    const inner = x.shape.slice(1);
    const out: tf.Tensor[] = [];
    const rec = (t: tf.Tensor, count: number): void => {
      if (count === 1) {
        out.push(t.reshape(inner));
        return;
      }
      const h = Math.floor(count / 2);
      rec(t.slice(0, h), h);
      rec(t.slice(h, count - h), count - h);
    };
    rec(x, x.shape[0]);
    return out;
  });
}

/**
 * Stacks same-shape tensors along a new axis 0, like tf.stack(parts, 0), by concatenating halves
 * recursively: the gradient then splits in O(size log n) on wasm instead of tf.stack's Unpack (O(size n)).
 */
export function stackAxis0(parts: tf.Tensor[]): tf.Tensor {
  if (parts.length === 0) throw new Error('stackAxis0: no tensors');
  const rec = (lo: number, hi: number): tf.Tensor =>
    hi - lo === 1 ? parts[lo].expandDims(0) : tf.concat([rec(lo, lo + Math.floor((hi - lo) / 2)), rec(lo + Math.floor((hi - lo) / 2), hi)], 0);
  return tf.tidy(() => rec(0, parts.length));
}

/**
 * x[begin : begin + size] (per axis) without wasm's Slice kernel, which first copies the WHOLE input
 * into a fresh JS buffer (readSync) and then the rows back: for MB-sized tensors that costs more than the
 * arithmetic around it and feeds the garbage collector. StridedSlice runs in C++ for
 * non-contiguous slices (contiguous ones take the JS path, still correct); its gradient (zero padding of dy) is written by
 * hand, so the tape saves nothing (tfjs-core has no StridedSlice gradient).
 */
export function sliceView(x: tf.Tensor, begin: number[], size: number[]): tf.Tensor {
  const end = begin.map((b, i) => b + size[i]);
  const pads = begin.map((b, i) => [b, x.shape[i] - end[i]] as [number, number]);
  const op = tf.customGrad(((a: tf.Tensor) => ({
    value: tf.stridedSlice(a, begin, end),
    gradFunc: (dy: tf.Tensor) => tf.pad(dy, pads),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x);
}
