/**
 * The wasm kernel `NlNewtonSchulz` (core/transforms/newton-schulz-kernel.ts states the contract): the whole
 * Newton-Schulz iteration of each matrix in one call of gemm.wasm's `newton_schulz` on the tfjs heap (the
 * symmetric Gram products computed on their upper tiles only, the element-wise steps fused), instead of
 * 3 BatchMatMul + 5 element-wise kernels per step. Reads the inputs in place, writes new tensors.
 */
import * as tf from '@tensorflow/tfjs';
import { NEWTON_SCHULZ_KERNEL, type NewtonSchulzAttrs } from '../../transforms/newton-schulz-kernel';
import { asWasmBackend } from './wasm-internals';
import { gemmKernel } from './gemm/instance';

function fail(msg: string): never {
  throw new Error(`${NEWTON_SCHULZ_KERNEL}: ${msg}`);
}

/** Off when NL_WASM_GEMM=off (the gemm escape hatch, batch-mat-mul.ts): the kernel runs on gemm.wasm too. */
export function newtonSchulzEnabledFromEnv(): boolean {
  return !(typeof process !== 'undefined' && process.env?.NL_WASM_GEMM === 'off');
}

/** True when gemm.wasm (with its newton_schulz export) loads into this wasm backend instance. */
export function newtonSchulzLoads(backend: unknown): boolean {
  const k = gemmKernel(asWasmBackend(backend, NEWTON_SCHULZ_KERNEL).wasm);
  return k !== null && typeof k.exports.newton_schulz === 'function';
}

export function newtonSchulzWasm({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo[] {
  const be = asWasmBackend(backend, NEWTON_SCHULZ_KERNEL);
  const kernel = gemmKernel(be.wasm);
  if (kernel === null) fail('gemm.wasm is not available in this backend');
  const { steps, a, b, c, eps } = attrs as unknown as NewtonSchulzAttrs;
  if (!Number.isInteger(steps) || steps < 0) fail(`steps must be an integer >= 0, got ${steps}`);
  const xs = Object.values(inputs).filter((x): x is tf.TensorInfo => x !== undefined);
  const dims = xs.map((x, i) => {
    if (x.dtype !== 'float32') fail(`input ${i} must be float32, got ${x.dtype}`);
    if (x.shape.length !== 2 && x.shape.length !== 3) fail(`input ${i} must be [r, c] or [n, r, c], got [${x.shape}]`);
    const [n, r, cols] = x.shape.length === 2 ? [1, x.shape[0], x.shape[1]] : x.shape;
    return { n, r, c: cols };
  });
  const outs = xs.map((x) => be.makeOutput([...x.shape], 'float32'));
  let floats = 0;
  for (const d of dims) if (d.n * d.r * d.c > 0) floats = Math.max(floats, kernel.exports.ns_scratch_floats(d.r, d.c));
  if (floats === 0) return outs;
  const bytes = floats * 4 + 16;
  const ptr = kernel.malloc(bytes);
  if (ptr === 0) {
    outs.forEach((o) => be.disposeData(o.dataId));
    fail(`could not allocate ${bytes} bytes of scratch`);
  }
  try {
    const scratch = ptr + ((16 - (ptr % 16)) % 16);
    // Offsets read after every allocation above (outputs and scratch may have grown the heap; offsets stay valid).
    const offset = (t: tf.TensorInfo): number => be.dataIdMap.get(t.dataId).memoryOffset;
    xs.forEach((x, i) => {
      const { n, r, c: cols } = dims[i];
      const slice = r * cols * 4;
      const xo = offset(x);
      const oo = offset(outs[i]);
      for (let j = 0; j < n && slice > 0; j++) kernel.exports.newton_schulz(xo + j * slice, oo + j * slice, r, cols, steps, a, b, c, eps, scratch);
    });
  } catch (e) {
    outs.forEach((o) => be.disposeData(o.dataId));
    throw e;
  } finally {
    kernel.free(ptr);
  }
  return outs;
}
