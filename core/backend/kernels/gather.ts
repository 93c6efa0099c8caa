/**
 * GatherV2 for the wasm backend: block copies when each gathered slice is a contiguous run.
 *
 * Why: the built-in wasm GatherV2 walks the output element by element (~35 ns per element: picking
 * one [16, 64, 99] chunk out of a [16, nc, 64, 99] tensor costs ~3.5 ms), and Slice / StridedSlice copy
 * their whole input. With x viewed as [outer, dim, inner] (axis = the gathered axis), every output
 * block out[o, j, :] is the contiguous run x[o, idx[j], :], so a loop of TypedArray.set calls does the
 * whole gather (the chunk pick above: ~20 us). Used when batchDims = 0, the dtype is numeric, every
 * index is in range and inner runs are long enough to beat the built-in; otherwise the built-in kernel
 * runs (same results, same errors). The gradient is unchanged (UnsortedSegmentSum).
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend } from './wasm-internals';

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** Shortest contiguous run (elements) for which block copies beat the built-in loop. */
export const GATHER_MIN_RUN = 8;

export function makeBlockGather(original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = (args.attrs ?? {}) as { axis?: number; batchDims?: number };
    if (x.dtype === 'string' || (batchDims ?? 0) !== 0 || indices.dtype !== 'int32') return original(args);
    const rank = x.shape.length;
    const ax = (axis ?? 0) < 0 ? (axis as number) + rank : (axis ?? 0);
    if (ax < 0 || ax >= rank) return original(args);
    const outer = tf.util.sizeFromShape(x.shape.slice(0, ax));
    const dim = x.shape[ax];
    const inner = tf.util.sizeFromShape(x.shape.slice(ax + 1));
    const nIdx = tf.util.sizeFromShape(indices.shape);
    if (inner < GATHER_MIN_RUN || nIdx === 0 || outer === 0) return original(args);
    const backend = asWasmBackend(args.backend, 'GatherV2');
    const idx = backend.typedArrayFromHeap(indices) as Int32Array;
    for (let j = 0; j < nIdx; j++) if (idx[j] < 0 || idx[j] >= dim) return original(args); // built-in reports the error
    const picks = Int32Array.from(idx); // copied: the allocation below may move the heap
    const out = backend.makeOutput([...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)], x.dtype);
    // Views taken after the allocation (which may grow the heap and detach older views).
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(out);
    let to = 0;
    for (let o = 0; o < outer; o++) {
      const base = o * dim;
      for (let j = 0; j < nIdx; j++) {
        const from = (base + picks[j]) * inner;
        dst.set(src.subarray(from, from + inner), to);
        to += inner;
      }
    }
    return out;
  };
}
