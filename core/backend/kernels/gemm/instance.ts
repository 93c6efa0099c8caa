/**
 * Loads the project's SIMD GEMM module (gemm.c, embedded as base64 in gemm-wasm.ts) into the memory of
 * a tfjs wasm backend, so it computes on tensors in place (pointers are heap byte offsets).
 *
 * Instantiation needs the backend's WebAssembly.Memory (emscripten `Module.asm.memory` in
 * tfjs-backend-wasm 4.22) plus `_malloc`/`_free`; when any is missing, or the engine has no SIMD,
 * `gemmKernel` returns null and the caller keeps the XNNPACK / scalar routes (`gemmUnavailableReason`
 * says why). One instance per backend module; its 16 KiB shadow stack (which the compiled code does
 * not use; the build checks) is malloc'd from tfjs once and lives as long as the module.
 */
import { GEMM_WASM_BASE64 } from './gemm-wasm';
import type { WasmModule } from '../wasm-internals';

/**
 * The slice of the WebAssembly JS API used here. The project's TypeScript lib has no DOM or
 * WebAssembly declarations, so it is typed structurally and read from globalThis.
 */
interface WasmGlobal {
  value: number;
}
interface WasmMemoryObject {
  buffer: ArrayBuffer;
}
interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => WasmMemoryObject;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
}

function webAssembly(): WebAssemblyApi | undefined {
  return (globalThis as unknown as { WebAssembly?: WebAssemblyApi }).WebAssembly;
}

/** Exports of gemm.wasm (see gemm.c for the semantics). */
interface GemmExports {
  gemm_scratch_floats(m: number, k: number, n: number, packA: number): number;
  gemm_batched(
    a: number, b: number, out: number, aIdx: number, bIdx: number, batch: number,
    m: number, k: number, n: number, transA: number, transB: number, packA: number, scratch: number,
  ): void;
  transpose_last2(src: number, dst: number, batch: number, rows: number, cols: number): void;
  __stack_pointer: WasmGlobal;
}

/** The tfjs module members the loader needs (optional in WasmModule's structural type). */
interface HostModule extends WasmModule {
  asm?: { memory?: unknown };
  _malloc?: (bytes: number) => number;
  _free?: (ptr: number) => void;
}

export interface GemmKernel {
  exports: GemmExports;
  malloc(bytes: number): number;
  free(ptr: number): void;
  /** Current heap as Int32 (re-read after every malloc: memory growth replaces the buffer). */
  heap32(): Int32Array;
}

const STACK_BYTES = 16 * 1024;

const instances = new WeakMap<object, GemmKernel | string>();
let compiled: object | string | undefined;

function decodeBase64(b64: string): Uint8Array {
  if (typeof Buffer !== 'undefined') return new Uint8Array(Buffer.from(b64, 'base64'));
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function compiledModule(api: WebAssemblyApi): object | string {
  if (compiled === undefined) {
    try {
      compiled = new api.Module(decodeBase64(GEMM_WASM_BASE64));
    } catch (e) {
      compiled = `compiling gemm.wasm failed (no wasm SIMD in this engine?): ${(e as Error).message}`;
    }
  }
  return compiled;
}

function instantiate(host: HostModule): GemmKernel | string {
  const api = webAssembly();
  if (api === undefined) return 'no WebAssembly global in this engine';
  const memory = host.asm?.memory;
  if (!(memory instanceof api.Memory)) return 'the wasm backend does not expose its WebAssembly.Memory as Module.asm.memory';
  if (typeof host._malloc !== 'function' || typeof host._free !== 'function') return 'the wasm backend does not expose _malloc/_free';
  if (memory.buffer !== host.HEAPU8.buffer) return 'Module.asm.memory is not the memory behind HEAPU8';
  const mod = compiledModule(api);
  if (typeof mod === 'string') return mod;
  let instance: { exports: Record<string, unknown> };
  try {
    instance = new api.Instance(mod, { env: { memory } });
  } catch (e) {
    return `instantiating gemm.wasm over the tfjs memory failed: ${(e as Error).message}`;
  }
  const exports = instance.exports as unknown as GemmExports;
  const malloc = host._malloc.bind(host);
  const free = host._free.bind(host);
  // The linker's default stack would sit at address 0 of tfjs memory: move it to a block we own.
  const stack = malloc(STACK_BYTES);
  if (stack === 0) return 'could not allocate the gemm module stack';
  const top = stack + STACK_BYTES;
  exports.__stack_pointer.value = top - (top % 16);
  return {
    exports,
    malloc,
    free,
    heap32: () => new Int32Array(memory.buffer),
  };
}

/** The GEMM module bound to this backend module's memory, or null when it cannot run here. */
export function gemmKernel(host: WasmModule): GemmKernel | null {
  let inst = instances.get(host);
  if (inst === undefined) {
    inst = instantiate(host as HostModule);
    instances.set(host, inst);
  }
  return typeof inst === 'string' ? null : inst;
}

/** Why gemmKernel returned null (undefined when it works or was not tried yet). */
export function gemmUnavailableReason(host: WasmModule): string | undefined {
  const inst = instances.get(host);
  return typeof inst === 'string' ? inst : undefined;
}
