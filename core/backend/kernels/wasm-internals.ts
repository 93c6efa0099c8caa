/**
 * The few internals of tfjs-backend-wasm 4.22 that the project kernels rely on, typed structurally so
 * library code never imports the backend package. Everything here is checked at first use
 * (`asWasmBackend`), so a future backend version that changes them fails loudly instead of corrupting
 * memory.
 *
 * Memory model of the wasm backend: every tensor is one malloc'd block on the wasm heap, registered in
 * C++ under a numeric id (`registerTensor(id, size, memoryOffset)`); kernels address tensors by id.
 * `makeOutput(shape, dtype, memoryOffset)` registers a new id over memory that already exists, which
 * lets us make zero-copy views of batch slices; such views must be released with `releaseView`, never
 * `disposeData` (which would free() the middle of someone else's block).
 */
import * as tf from '@tensorflow/tfjs';

type TypedArray = Float32Array | Int32Array | Uint8Array;

/** Per-tensor record in the wasm backend's data map. */
export interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

/** The Emscripten module plus the tfjs C++ entry points used here. */
export interface WasmModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: unknown[]) => unknown;
  HEAPU8: Uint8Array;
  tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void;
    disposeData(id: number): void;
  };
}

/** Structural view of BackendWasm (tfjs-backend-wasm/dist/backend_wasm.js). */
export interface WasmBackend {
  wasm: WasmModule;
  dataIdMap: {
    get(dataId: tf.DataId): WasmTensorData;
    has(dataId: tf.DataId): boolean;
    delete(dataId: tf.DataId): boolean;
  };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): tf.TensorInfo;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
  typedArrayFromHeap(info: tf.TensorInfo): TypedArray;
}

const checked = new WeakSet<object>();

/** Narrows the `backend` a kernel receives; throws naming the missing member when it does not fit. */
export function asWasmBackend(backend: unknown, kernelName: string): WasmBackend {
  const b = backend as Partial<WasmBackend> | null;
  if (b != null && checked.has(b)) return b as WasmBackend;
  const missing: string[] = [];
  if (b == null || typeof b !== 'object') missing.push('backend object');
  else {
    if (typeof b.makeOutput !== 'function') missing.push('makeOutput');
    if (typeof b.disposeData !== 'function') missing.push('disposeData');
    if (typeof b.typedArrayFromHeap !== 'function') missing.push('typedArrayFromHeap');
    if (b.dataIdMap == null || typeof b.dataIdMap.get !== 'function') missing.push('dataIdMap');
    const w = b.wasm as Partial<WasmModule> | undefined;
    if (w == null || typeof w.cwrap !== 'function') missing.push('wasm.cwrap');
    if (w?.tfjs == null || typeof w.tfjs.registerTensor !== 'function' || typeof w.tfjs.disposeData !== 'function') {
      missing.push('wasm.tfjs.registerTensor/disposeData');
    }
  }
  if (missing.length > 0) {
    throw new Error(
      `project kernel ${kernelName}: the 'wasm' backend does not expose ${missing.join(', ')}; ` +
        'these kernels target @tensorflow/tfjs-backend-wasm 4.22 (call unregisterProjectKernels() to fall back)',
    );
  }
  checked.add(b as object);
  return b as WasmBackend;
}

/** Numeric C++ id of a tensor. */
export function idOf(backend: WasmBackend, info: tf.TensorInfo): number {
  return backend.dataIdMap.get(info.dataId).id;
}

/**
 * A zero-copy float32 view of `shape` starting `elementOffset` elements into `base`'s block.
 * Release with releaseView (not disposeData).
 */
export function makeView(backend: WasmBackend, base: tf.TensorInfo, elementOffset: number, shape: number[]): tf.TensorInfo {
  const bytes = tf.util.bytesPerElement(base.dtype);
  const offset = backend.dataIdMap.get(base.dataId).memoryOffset + elementOffset * bytes;
  return backend.makeOutput(shape, base.dtype, offset);
}

/** Unregisters a view: C++ runs its disposal callbacks (e.g. frees XNNPACK operators cached on it). */
export function releaseView(backend: WasmBackend, view: tf.TensorInfo): void {
  const data = backend.dataIdMap.get(view.dataId);
  backend.wasm.tfjs.disposeData(data.id);
  backend.dataIdMap.delete(view.dataId);
}

/** Runs another kernel registered for 'wasm' (e.g. Transpose, Add, Relu) on tensor infos. */
export function runWasmKernel(
  name: string,
  backend: WasmBackend,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): tf.TensorInfo {
  const kernel = tf.getKernel(name, 'wasm');
  if (kernel == null) throw new Error(`project kernels: wasm kernel '${name}' is not registered`);
  const out = kernel.kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) throw new Error(`project kernels: wasm kernel '${name}' returned several outputs`);
  return out;
}

/** Disposes an intermediate produced by a kernel call (refcounted, like backend.disposeIntermediateTensorInfo). */
export function disposeIntermediate(backend: WasmBackend, info: tf.TensorInfo): void {
  backend.disposeData(info.dataId);
}

/** Shape bytes in the form the C++ entry points take ('array' argument of Int32 values). */
export function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}
