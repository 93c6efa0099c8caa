/** Tensors <-> plain data for the data-parallel protocol (copies: the arrays may be transferred). */
import * as tf from '@tensorflow/tfjs';
import type { WireTensor } from './protocol';

/** Reads `t` (a synchronous read: call at step boundaries only) into a fresh typed array. */
export function toWire(key: string, t: tf.Tensor): WireTensor {
  if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new Error(`data-parallel: tensor '${key}' has unsupported dtype ${t.dtype} (float32, int32)`);
  const d = t.dataSync();
  const data = t.dtype === 'int32' ? Int32Array.from(d as Int32Array) : Float32Array.from(d as Float32Array);
  return { key, shape: [...t.shape], dtype: t.dtype, data };
}

export function fromWire(w: WireTensor): tf.Tensor {
  return tf.tensor(w.data, w.shape, w.dtype);
}

/** Sequences [begin, begin + size) of the batch (axis 0) of a tensor already read into `data`, as wire data. */
export function wireSlice(key: string, data: Float32Array | Int32Array, shape: readonly number[], dtype: 'float32' | 'int32', begin: number, size: number): WireTensor {
  const per = shape.slice(1).reduce((a, v) => a * v, 1);
  const part = data.slice(begin * per, (begin + size) * per);
  return { key, shape: [size, ...shape.slice(1)], dtype, data: part };
}
