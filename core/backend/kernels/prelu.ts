/**
 * Prelu for the wasm backend. The built-in kernel hands alpha to XNNPACK's PReLU as the trailing
 * channels of x (channels = alpha.size), which is wrong for any other broadcast, e.g. alpha [m, 1] on
 * x [m, n] (applied per column). Those alphas go through relu(x) + alpha * (x - relu(x)) on the
 * broadcasting binary kernels; trailing ones keep the built-in path.
 */
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend, disposeIntermediate, runWasmKernel, type WasmBackend } from './wasm-internals';

type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * True when XNNPACK's PReLU (channels = alpha.size, applied over the flat output in rows of that
 * size) equals broadcast semantics: alpha, without leading 1s, must equal the trailing dims of x.
 */
export function preluTrailingCompatible(alphaShape: number[], xShape: number[]): boolean {
  let i = 0;
  while (i < alphaShape.length && alphaShape[i] === 1) i++;
  const core = alphaShape.slice(i);
  if (core.length > xShape.length) return false;
  const tail = xShape.slice(xShape.length - core.length);
  return core.every((d, j) => d === tail[j]);
}

/** Builds the replacement Prelu kernelFunc; `original` keeps trailing alphas and non-float32 alpha. */
export function makePrelu(original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { x, alpha } = args.inputs as { x: tf.TensorInfo; alpha: tf.TensorInfo };
    if (preluTrailingCompatible(alpha.shape, x.shape) || alpha.dtype !== 'float32') return original(args);
    const backend = asWasmBackend(args.backend, 'Prelu');
    if (x.dtype === 'float32') return preluBroadcast(backend, x, alpha);
    const xf = runWasmKernel('Cast', backend, { x }, { dtype: 'float32' });
    try {
      return preluBroadcast(backend, xf, alpha);
    } finally {
      disposeIntermediate(backend, xf);
    }
  };
}

/** prelu with full broadcasting: relu(x) + alpha * min(x, 0), min(x, 0) = x - relu(x). */
export function preluBroadcast(backend: WasmBackend, x: tf.TensorInfo, alpha: tf.TensorInfo): tf.TensorInfo {
  if (preluTrailingCompatible(alpha.shape, x.shape)) return runWasmKernel('Prelu', backend, { x, alpha });
  const pos = runWasmKernel('Relu', backend, { x });
  const neg = runWasmKernel('Sub', backend, { a: x, b: pos });
  const scaled = runWasmKernel('Multiply', backend, { a: neg, b: alpha });
  const out = runWasmKernel('Add', backend, { a: pos, b: scaled });
  for (const t of [pos, neg, scaled]) disposeIntermediate(backend, t);
  return out;
}
