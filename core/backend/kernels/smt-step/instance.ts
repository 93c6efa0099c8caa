/**
 * Loads smt-step.wasm (smt-step.c, embedded as base64 in smt-step-wasm.ts) into the memory of a tfjs wasm
 * backend through the shared loader (../heap-module.ts), as for the GEMM: pointers are heap byte offsets of
 * tensors, no copies. Returns null with a reason (`smtStepUnavailableReason`) when the backend does not
 * expose its memory, _malloc/_free, or the engine lacks SIMD; the caller then does not register the kernel.
 */
import { SMT_STEP_WASM_BASE64 } from './smt-step-wasm';
import { heapModuleLoader, type HeapModule } from '../heap-module';
import type { WasmModule } from '../wasm-internals';

/** Exports of smt-step.wasm (see smt-step.c). */
export interface SmtStepExports {
  smt_step_scratch_floats(b: number, d: number, dh: number, dz: number, nm: number): number;
  smt_stable_step(...args: number[]): number;
  __stack_pointer: { value: number };
}

export type SmtStepModule = HeapModule<SmtStepExports>;

const loader = heapModuleLoader<SmtStepExports>('smt-step.wasm', SMT_STEP_WASM_BASE64);

/** The module bound to this backend module's memory, or null when it cannot run here. */
export function smtStepModule(host: WasmModule): SmtStepModule | null {
  return loader.get(host);
}

/** Why smtStepModule returned null (undefined when it works or was not tried yet). */
export function smtStepUnavailableReason(host: WasmModule): string | undefined {
  return loader.reason(host);
}
