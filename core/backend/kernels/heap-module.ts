/**
 * Loads a project wasm module (C built with clang, embedded as base64) into the memory of a tfjs wasm
 * backend, so it computes on tensors in place (pointers are heap byte offsets). Shared by gemm/ and
 * smt-step/: one compiled module per loader, one instance per backend module, a 16 KiB shadow stack (the
 * compiled code does not use it; the builds check) malloc'd from tfjs once and kept for the module's life.
 *
 * Instantiation needs the backend's WebAssembly.Memory (emscripten `Module.asm.memory` in
 * tfjs-backend-wasm 4.22) plus `_malloc`/`_free`; when any is missing, or the engine has no SIMD, `get`
 * returns null and `reason` says why.
 */
import type { WasmModule } from './wasm-internals';

/**
 * The slice of the WebAssembly JS API used here. The project's TypeScript lib has no DOM or
 * WebAssembly declarations, so it is typed structurally and read from globalThis.
 */
interface WasmMemoryObject {
  buffer: ArrayBuffer;
}
interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => WasmMemoryObject;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
}

/** The tfjs module members the loader needs (optional in WasmModule's structural type). */
interface HostModule extends WasmModule {
  asm?: { memory?: unknown };
  _malloc?: (bytes: number) => number;
  _free?: (ptr: number) => void;
}

/** A module instance over the tfjs heap. */
export interface HeapModule<E> {
  exports: E;
  malloc(bytes: number): number;
  free(ptr: number): void;
  /** The tfjs memory (re-read .buffer after every malloc: growth replaces it). */
  memory: { buffer: ArrayBuffer };
}

export interface HeapModuleLoader<E> {
  /** The module bound to this backend module's memory, or null when it cannot run here. */
  get(host: WasmModule): HeapModule<E> | null;
  /** Why get returned null (undefined when it works or was not tried yet). */
  reason(host: WasmModule): string | undefined;
}

const STACK_BYTES = 16 * 1024;

function decodeBase64(b64: string): Uint8Array {
  if (typeof Buffer !== 'undefined') return new Uint8Array(Buffer.from(b64, 'base64'));
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A loader for the module `file` (for messages) whose bytes are `base64`; it must export __stack_pointer. */
export function heapModuleLoader<E extends { __stack_pointer: { value: number } }>(file: string, base64: string): HeapModuleLoader<E> {
  const instances = new WeakMap<object, HeapModule<E> | string>();
  let compiled: object | string | undefined;

  const instantiate = (host: HostModule): HeapModule<E> | string => {
    const api = (globalThis as unknown as { WebAssembly?: WebAssemblyApi }).WebAssembly;
    if (api === undefined) return 'no WebAssembly global in this engine';
    const memory = host.asm?.memory;
    if (!(memory instanceof api.Memory)) return 'the wasm backend does not expose its WebAssembly.Memory as Module.asm.memory';
    if (typeof host._malloc !== 'function' || typeof host._free !== 'function') return 'the wasm backend does not expose _malloc/_free';
    if (memory.buffer !== host.HEAPU8.buffer) return 'Module.asm.memory is not the memory behind HEAPU8';
    if (compiled === undefined) {
      try {
        compiled = new api.Module(decodeBase64(base64));
      } catch (e) {
        compiled = `compiling ${file} failed (no wasm SIMD in this engine?): ${(e as Error).message}`;
      }
    }
    if (typeof compiled === 'string') return compiled;
    let instance: { exports: Record<string, unknown> };
    try {
      instance = new api.Instance(compiled, { env: { memory } });
    } catch (e) {
      return `instantiating ${file} over the tfjs memory failed: ${(e as Error).message}`;
    }
    const exports = instance.exports as unknown as E;
    const malloc = host._malloc.bind(host);
    const free = host._free.bind(host);
    // The linker's default stack would sit at address 0 of tfjs memory: move it to a block we own.
    const stack = malloc(STACK_BYTES);
    if (stack === 0) return `could not allocate the ${file} module stack`;
    const top = stack + STACK_BYTES;
    exports.__stack_pointer.value = top - (top % 16);
    return { exports, malloc, free, memory };
  };

  return {
    get(host) {
      let inst = instances.get(host);
      if (inst === undefined) {
        inst = instantiate(host as HostModule);
        instances.set(host, inst);
      }
      return typeof inst === 'string' ? null : inst;
    },
    reason(host) {
      const inst = instances.get(host);
      return typeof inst === 'string' ? inst : undefined;
    },
  };
}
