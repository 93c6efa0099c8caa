/**
 * Loads the project's SIMD GEMM module (gemm.c, embedded as base64 in gemm-wasm.ts) into the memory of
 * a tfjs wasm backend through the shared loader (../heap-module.ts), so it computes on tensors in place.
 * When it cannot load, `gemmKernel` returns null and the caller keeps the XNNPACK / scalar routes
 * (`gemmUnavailableReason` says why).
 */
import { GEMM_WASM_BASE64 } from './gemm-wasm';
import { heapModuleLoader } from '../heap-module';
import type { WasmModule } from '../wasm-internals';

/** Exports of gemm.wasm (see gemm.c for the semantics). */
interface GemmExports {
  gemm_scratch_floats(m: number, k: number, n: number, packA: number): number;
  gemm_batched(
    a: number, b: number, out: number, aIdx: number, bIdx: number, batch: number,
    m: number, k: number, n: number, transA: number, transB: number, packA: number, scratch: number,
  ): void;
  transpose_last2(src: number, dst: number, batch: number, rows: number, cols: number): void;
  ns_scratch_floats(r: number, c: number): number;
  newton_schulz(x: number, out: number, r: number, c: number, steps: number, a: number, b: number, cc: number, eps: number, scratch: number): void;
  __stack_pointer: { value: number };
}

export interface GemmKernel {
  exports: GemmExports;
  malloc(bytes: number): number;
  free(ptr: number): void;
  /** Current heap as Int32 (re-read after every malloc: memory growth replaces the buffer). */
  heap32(): Int32Array;
}

const loader = heapModuleLoader<GemmExports>('gemm.wasm', GEMM_WASM_BASE64);
const kernels = new WeakMap<object, GemmKernel>();

/** The GEMM module bound to this backend module's memory, or null when it cannot run here. */
export function gemmKernel(host: WasmModule): GemmKernel | null {
  const cached = kernels.get(host);
  if (cached) return cached;
  const m = loader.get(host);
  if (m === null) return null;
  const kernel: GemmKernel = { exports: m.exports, malloc: m.malloc, free: m.free, heap32: () => new Int32Array(m.memory.buffer) };
  kernels.set(host, kernel);
  return kernel;
}

/** Why gemmKernel returned null (undefined when it works or was not tried yet). */
export function gemmUnavailableReason(host: WasmModule): string | undefined {
  return loader.reason(host);
}
