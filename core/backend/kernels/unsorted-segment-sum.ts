/**
 * UnsortedSegmentSum for wasm (missing in tfjs-backend-wasm 4.22) and cpu (whose kernel builds one
 * mask tensor per segment: O(numSegments * x.size), ~17 s for a [2048, 128] embedding gradient into
 * 256 rows). tf.gather's gradient (so every Embedding layer's) sums dy rows into parameter rows here:
 *   out[s, ...] = sum_{i : ids[i] = s} x[i, ...],   out: [numSegments, ...x.shape[ids.rank:]]
 * One O(x.size) pass over typed arrays. Ids outside [0, numSegments) are skipped, as on cpu. The
 * output keeps x's dtype (TensorFlow semantics; the built-in cpu kernel returns float32 for int32 x).
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend } from './wasm-internals';

type NumericArray = Float32Array | Int32Array;

/** Validates inputs and returns the output shape plus the row length of x. */
export function segmentSumGeometry(
  xShape: number[],
  xDtype: tf.DataType,
  idsShape: number[],
  idsDtype: tf.DataType,
  numSegments: unknown,
): { outShape: number[]; inner: number; rows: number } {
  if (typeof numSegments !== 'number' || !Number.isInteger(numSegments) || numSegments < 0) {
    throw new Error(`UnsortedSegmentSum: numSegments must be a non-negative integer, got ${String(numSegments)}`);
  }
  if (xDtype !== 'float32' && xDtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum: x must be float32 or int32, got ${xDtype}`);
  }
  if (idsDtype !== 'int32') throw new Error(`UnsortedSegmentSum: segmentIds must be int32, got ${idsDtype}`);
  const r = idsShape.length;
  if (r > xShape.length || idsShape.some((d, i) => d !== xShape[i])) {
    throw new Error(`UnsortedSegmentSum: segmentIds shape [${idsShape}] must be a prefix of x shape [${xShape}]`);
  }
  const inner = tf.util.sizeFromShape(xShape.slice(r));
  return { outShape: [numSegments, ...xShape.slice(r)], inner, rows: tf.util.sizeFromShape(idsShape) };
}

/** out (zero-filled here) += x rows by segment id; the typed-array core shared by the kernels. */
export function segmentSumInto(x: NumericArray, ids: Int32Array, out: NumericArray, rows: number, inner: number, numSegments: number): void {
  out.fill(0);
  for (let i = 0; i < rows; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) out[dst + j] += x[src + j];
  }
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

export function unsortedSegmentSumWasm(args: KernelArgs): tf.TensorInfo {
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (args.attrs ?? {}).numSegments;
  const backend = asWasmBackend(args.backend, 'UnsortedSegmentSum');
  const { outShape, inner, rows } = segmentSumGeometry(x.shape, x.dtype, segmentIds.shape, segmentIds.dtype, numSegments);
  // Allocate first: malloc may grow the wasm heap, which detaches typed arrays taken before it.
  const out = backend.makeOutput(outShape, x.dtype);
  const xs = backend.typedArrayFromHeap(x) as NumericArray;
  const ids = backend.typedArrayFromHeap(segmentIds) as Int32Array;
  const os = backend.typedArrayFromHeap(out) as NumericArray;
  segmentSumInto(xs, ids, os, rows, inner, numSegments as number);
  return out;
}

/** Structural view of the cpu backend (tfjs-backend-cpu MathBackendCPU). */
interface CpuBackend {
  data: { get(dataId: tf.DataId): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: NumericArray): tf.TensorInfo;
}

function asCpuBackend(backend: unknown): CpuBackend {
  const b = backend as Partial<CpuBackend> | null;
  if (b == null || typeof b.makeTensorInfo !== 'function' || b.data == null || typeof b.data.get !== 'function') {
    throw new Error("project kernel UnsortedSegmentSum: the 'cpu' backend does not expose data.get/makeTensorInfo (tfjs-backend-cpu 4.22 expected)");
  }
  return b as CpuBackend;
}

export function unsortedSegmentSumCpu(args: KernelArgs): tf.TensorInfo {
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (args.attrs ?? {}).numSegments;
  const backend = asCpuBackend(args.backend);
  const { outShape, inner, rows } = segmentSumGeometry(x.shape, x.dtype, segmentIds.shape, segmentIds.dtype, numSegments);
  const xs = backend.data.get(x.dataId).values as NumericArray;
  const ids = backend.data.get(segmentIds.dataId).values as Int32Array;
  const size = tf.util.sizeFromShape(outShape);
  const out = x.dtype === 'int32' ? new Int32Array(size) : new Float32Array(size);
  segmentSumInto(xs, ids, out, rows, inner, numSegments as number);
  return backend.makeTensorInfo(outShape, x.dtype, out);
}
