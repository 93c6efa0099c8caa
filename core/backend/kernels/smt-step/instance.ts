/**
 * Loads smt-step.wasm (smt-step.c, embedded as base64 in smt-step-wasm.ts) into the memory of a tfjs wasm
 * backend, as gemm/instance.ts does for the GEMM: pointers are heap byte offsets of tensors, no copies.
 * Returns null with a reason (`smtStepUnavailableReason`) when the backend does not expose its memory,
 * _malloc/_free, or the engine lacks SIMD; the caller then does not register the kernel.
 */
import { SMT_STEP_WASM_BASE64 } from './smt-step-wasm';
import type { WasmModule } from '../wasm-internals';

interface WasmMemoryObject {
  buffer: ArrayBuffer;
}
interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => WasmMemoryObject;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
}

/** Exports of smt-step.wasm (see smt-step.c). */
export interface SmtStepExports {
  smt_step_scratch_floats(b: number, d: number, dh: number, dz: number, nm: number): number;
  smt_stable_step(...args: number[]): number;
  __stack_pointer: { value: number };
}

interface HostModule extends WasmModule {
  asm?: { memory?: unknown };
  _malloc?: (bytes: number) => number;
  _free?: (ptr: number) => void;
}

export interface SmtStepModule {
  exports: SmtStepExports;
  malloc(bytes: number): number;
  free(ptr: number): void;
}

const STACK_BYTES = 16 * 1024;
const instances = new WeakMap<object, SmtStepModule | string>();
let compiled: object | string | undefined;

function decodeBase64(b64: string): Uint8Array {
  if (typeof Buffer !== 'undefined') return new Uint8Array(Buffer.from(b64, 'base64'));
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function instantiate(host: HostModule): SmtStepModule | string {
  const api = (globalThis as unknown as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  if (api === undefined) return 'no WebAssembly global in this engine';
  const memory = host.asm?.memory;
  if (!(memory instanceof api.Memory)) return 'the wasm backend does not expose its WebAssembly.Memory as Module.asm.memory';
  if (typeof host._malloc !== 'function' || typeof host._free !== 'function') return 'the wasm backend does not expose _malloc/_free';
  if (memory.buffer !== host.HEAPU8.buffer) return 'Module.asm.memory is not the memory behind HEAPU8';
  if (compiled === undefined) {
    try {
      compiled = new api.Module(decodeBase64(SMT_STEP_WASM_BASE64));
    } catch (e) {
      compiled = `compiling smt-step.wasm failed (no wasm SIMD in this engine?): ${(e as Error).message}`;
    }
  }
  if (typeof compiled === 'string') return compiled;
  let instance: { exports: Record<string, unknown> };
  try {
    instance = new api.Instance(compiled, { env: { memory } });
  } catch (e) {
    return `instantiating smt-step.wasm over the tfjs memory failed: ${(e as Error).message}`;
  }
  const exports = instance.exports as unknown as SmtStepExports;
  const malloc = host._malloc.bind(host);
  const free = host._free.bind(host);
  // The linker's default stack would sit at address 0 of tfjs memory: move it to a block we own (unused: the build checks).
  const stack = malloc(STACK_BYTES);
  if (stack === 0) return 'could not allocate the smt-step module stack';
  const top = stack + STACK_BYTES;
  exports.__stack_pointer.value = top - (top % 16);
  return { exports, malloc, free };
}

/** The module bound to this backend module's memory, or null when it cannot run here. */
export function smtStepModule(host: WasmModule): SmtStepModule | null {
  let inst = instances.get(host);
  if (inst === undefined) {
    inst = instantiate(host as HostModule);
    instances.set(host, inst);
  }
  return typeof inst === 'string' ? null : inst;
}

/** Why smtStepModule returned null (undefined when it works or was not tried yet). */
export function smtStepUnavailableReason(host: WasmModule): string | undefined {
  const inst = instances.get(host);
  return typeof inst === 'string' ? inst : undefined;
}
