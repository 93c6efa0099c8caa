/**
 * Identity and same-dtype Cast for the wasm backend that share the input's buffer (reference counted,
 * exactly like the wasm Reshape kernel and the cpu backend's Identity) instead of copying it.
 *
 * Why: tfjs-core records every tensor a gradient needs through `tf.clone`/Identity (engine
 * saveTensorsForBackwardMode, `keep` of saved inputs, tf.customGrad's saved values). On wasm the
 * built-in Identity copies the whole buffer, so a long chunked step spends its time copying tape
 * entries (14.7k Identity calls in one self-modifying-Titans step at T = 1024). No tfjs kernel writes
 * into its inputs, and variables change by `assign` (a new buffer), so a shared buffer is never
 * modified behind a tensor's back. Strings and other dtype-changing casts keep the built-in kernels.
 */
import type * as tf from '@tensorflow/tfjs';
import { asWasmBackend } from './wasm-internals';

type KernelArgs = Parameters<tf.KernelFunc>[0];

interface RefCounted {
  incRef(dataId: object): void;
}

function share(args: KernelArgs, kernelName: string): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const backend = asWasmBackend(args.backend, kernelName) as unknown as RefCounted;
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Identity: shares x's buffer (strings: the built-in kernel). */
export function makeSharedIdentity(original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype === 'string') return original(args);
    return share(args, 'Identity');
  };
}

/**
 * Cast: shares x's buffer when the dtype does not change. A cast to 'bool' is x != 0, as on the cpu
 * backend (the built-in wasm kernel copies the numbers into a Uint8Array: -2.2 -> 254, 3.9 -> 3).
 * Other conversions: the built-in kernel.
 */
export function makeSharedCast(original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { dtype } = (args.attrs ?? {}) as { dtype?: string };
    if (x.dtype === 'string') return original(args);
    if (dtype === x.dtype) return share(args, 'Cast');
    if (dtype === 'bool') {
      const backend = asWasmBackend(args.backend, 'Cast');
      const out = backend.makeOutput(x.shape, 'bool');
      // Views taken after the allocation (which may grow the heap and detach older views).
      const src = backend.typedArrayFromHeap(x);
      const dst = backend.typedArrayFromHeap(out);
      for (let i = 0; i < src.length; i++) dst[i] = src[i] !== 0 ? 1 : 0;
      return out;
    }
    return original(args);
  };
}
