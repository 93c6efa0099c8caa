/**
 * BatchMatMul and _FusedMatMul for the wasm backend, routed so no product falls onto the built-in
 * scalar loop unless that is the cheapest option.
 *
 * Why: tfjs-backend-wasm 4.22 only reaches XNNPACK when transposeA = transposeB = false and both
 * operands have a flattened batch of 1; anything else (every matmul gradient, every attention-style
 * batched product) falls onto a blocked scalar loop 10-30x slower. Its slow path also mis-applies a
 * rank-1 bias (the bias index is clipped to the last element for every row after the first), and its
 * fast path reads past the end of a bias of shape [1]. This module picks, per product, the cheapest
 * of three routes by a cost model (MATMUL_COST_NS, estimateRoutes):
 *   - gemm: the project's wasm SIMD kernel (gemm/gemm.c, run in the tfjs memory), one call for the
 *     whole batch, transposes read in place, any broadcast of batch dims via slice-index tables;
 *   - xnnpack: transposed operands materialised once (gemm.wasm's SIMD transpose, else a blocked JS
 *     loop), batches folded into rows where the layout allows ([B, M, K] x [K, N] is one
 *     [B*M, K] x [K, N] product), otherwise the fast 2-D product once per batch slice on zero-copy
 *     views (broadcast batch dims map to slice indices);
 *   - scalar: the built-in loop (simple broadcasts only).
 * For _FusedMatMul it delegates to the built-in kernel only where that is exact (plain, unbatched,
 * bias absent or [N]) and not estimated slower than gemm; else computes act(a @ b + bias) as product
 * + Add + activation kernel, the same composition the cpu backend uses.
 */
import * as tf from '@tensorflow/tfjs';
import {
  asWasmBackend,
  disposeIntermediate,
  idOf,
  makeView,
  releaseView,
  runWasmKernel,
  shapeBytes,
  type WasmBackend,
  type WasmModule,
} from './wasm-internals';
import { preluBroadcast, preluTrailingCompatible } from './prelu';
import { gemmKernel, gemmUnavailableReason, type GemmKernel } from './gemm/instance';

/** Activations _FusedMatMul accepts (tfjs-core fused_types Activation). */
export type FusedActivation = 'linear' | 'relu' | 'relu6' | 'elu' | 'sigmoid' | 'leakyrelu' | 'prelu';
const ACTIVATIONS: readonly FusedActivation[] = ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'];

/** Sizes of one product: out[..batch, m, n] = A[..batchA, m, k] @ B[..batchB, k, n] (after transposes). */
export interface MatMulGeometry {
  m: number;
  k: number;
  n: number;
  aBatchShape: number[];
  bBatchShape: number[];
  outBatchShape: number[];
  /** Flattened batch sizes. */
  batchA: number;
  batchB: number;
  outBatch: number;
}

export function matMulGeometry(
  aShape: number[],
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
  kernelName: string,
): MatMulGeometry {
  if (aShape.length < 2 || bShape.length < 2) {
    throw new Error(`${kernelName}: inputs a and b need rank >= 2; got a [${aShape}] and b [${bShape}]`);
  }
  const ar = aShape.length;
  const br = bShape.length;
  const k = transposeA ? aShape[ar - 2] : aShape[ar - 1];
  const kB = transposeB ? bShape[br - 1] : bShape[br - 2];
  if (k !== kB) {
    throw new Error(
      `${kernelName}: inner dimensions of a [${aShape}] (transposeA=${transposeA}) and b [${bShape}] ` +
        `(transposeB=${transposeB}) must match, got ${k} and ${kB}`,
    );
  }
  const m = transposeA ? aShape[ar - 1] : aShape[ar - 2];
  const n = transposeB ? bShape[br - 2] : bShape[br - 1];
  const aBatchShape = aShape.slice(0, -2);
  const bBatchShape = bShape.slice(0, -2);
  const outBatchShape = tf.broadcast_util.assertAndGetBroadcastShape(aBatchShape, bBatchShape);
  return {
    m,
    k,
    n,
    aBatchShape,
    bBatchShape,
    outBatchShape,
    batchA: tf.util.sizeFromShape(aBatchShape),
    batchB: tf.util.sizeFromShape(bBatchShape),
    outBatch: tf.util.sizeFromShape(outBatchShape),
  };
}

/**
 * One call of the 2-D product: out[outStart .. outStart+count) = A[aStart .. aStart+count) @ B[b]
 * (indices in batch slices). Consecutive output slices that read consecutive A slices against the
 * same B slice share a run, because their rows are contiguous in memory: [count*m, k] x [k, n].
 */
export interface BatchRun {
  a: number;
  b: number;
  out: number;
  count: number;
}

/** Splits the broadcast batch loop into runs (see BatchRun). O(outBatch). */
export function batchRuns(aBatchShape: number[], bBatchShape: number[], outBatchShape: number[]): BatchRun[] {
  const r = outBatchShape.length;
  const pad = (s: number[]): number[] => [...new Array<number>(r - s.length).fill(1), ...s];
  // Strides of each operand's batch axes in slices, 0 on broadcast axes.
  const strides = (s: number[]): number[] => {
    const out = new Array<number>(r).fill(0);
    let acc = 1;
    for (let i = r - 1; i >= 0; i--) {
      out[i] = s[i] === 1 ? 0 : acc;
      acc *= s[i];
    }
    return out;
  };
  const aSt = strides(pad(aBatchShape));
  const bSt = strides(pad(bBatchShape));
  const total = tf.util.sizeFromShape(outBatchShape);
  const idx = new Array<number>(r).fill(0);
  const runs: BatchRun[] = [];
  let ai = 0;
  let bi = 0;
  for (let o = 0; o < total; o++) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last.b === bi && last.a + last.count === ai) last.count++;
    else runs.push({ a: ai, b: bi, out: o, count: 1 });
    // Odometer step over the output batch index, updating both operand offsets incrementally.
    for (let d = r - 1; d >= 0; d--) {
      idx[d]++;
      ai += aSt[d];
      bi += bSt[d];
      if (idx[d] < outBatchShape[d]) break;
      ai -= aSt[d] * idx[d];
      bi -= bSt[d] * idx[d];
      idx[d] = 0;
    }
  }
  return runs;
}

type CBatchMatMul = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void;

const cBatchMatMuls = new WeakMap<WasmModule, CBatchMatMul>();

/** The C++ BatchMatMul entry point; with plain [1, rows, k] x [1, k, n] shapes it runs XNNPACK. */
function cBatchMatMul(backend: WasmBackend): CBatchMatMul {
  let fn = cBatchMatMuls.get(backend.wasm);
  if (fn === undefined) {
    fn = backend.wasm.cwrap('BatchMatMul', null, [
      'number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number',
    ]) as unknown as CBatchMatMul;
    cBatchMatMuls.set(backend.wasm, fn);
  }
  return fn;
}

/**
 * XNNPACK caches one operator (with packed weights) per b tensor id, keyed by the id alone. Reshape
 * shares ids, so the same block used as b with another [k, n] would hit a stale operator (wrong
 * results; seen on the built-in kernel). We remember the [k, n] each data block was first used with
 * and pass any other shape through a fresh view id.
 */
const firstWeightShape = new WeakMap<object, string>();

function weightShapeIsSafe(b: tf.TensorInfo, k: number, n: number): boolean {
  const key = `${k}x${n}`;
  const seen = firstWeightShape.get(b.dataId);
  if (seen === undefined) {
    firstWeightShape.set(b.dataId, key);
    return true;
  }
  return seen === key;
}

/** Heap byte offset of a tensor's data. */
function offsetOf(backend: WasmBackend, info: tf.TensorInfo): number {
  return backend.dataIdMap.get(info.dataId).memoryOffset;
}

/** Tile edge of the JS blocked transpose (fallback when gemm.wasm cannot load). */
const TRANSPOSE_TILE = 16;

/**
 * [batch, rows, cols] -> [batch, cols, rows] as a new float32 tensor. With gemm.wasm: its SIMD blocked
 * transpose; otherwise a blocked JS loop over the heap (about twice as fast as the wasm Transpose
 * kernel at power-of-two sizes, whose plain strided loop thrashes the cache there).
 */
function transposeLast2(backend: WasmBackend, x: tf.TensorInfo, batch: number, rows: number, cols: number): tf.TensorInfo {
  const out = backend.makeOutput([batch, cols, rows], 'float32');
  const kernel = usableGemm(backend);
  if (kernel !== null) {
    // The SIMD blocked transpose of gemm.c (4x4 register transposes in 32x32 tiles), in place on the heap.
    kernel.exports.transpose_last2(offsetOf(backend, x), offsetOf(backend, out), batch, rows, cols);
    return out;
  }
  // Views taken after the allocation above (which may grow the heap and detach older views).
  const src = backend.typedArrayFromHeap(x) as Float32Array;
  const dst = backend.typedArrayFromHeap(out) as Float32Array;
  const T = TRANSPOSE_TILE;
  for (let bi = 0; bi < batch; bi++) {
    const base = bi * rows * cols;
    for (let r0 = 0; r0 < rows; r0 += T) {
      const r1 = Math.min(r0 + T, rows);
      for (let c0 = 0; c0 < cols; c0 += T) {
        const c1 = Math.min(c0 + T, cols);
        for (let r = r0; r < r1; r++) {
          const from = base + r * cols;
          for (let c = c0; c < c1; c++) dst[base + c * rows + r] = src[from + c];
        }
      }
    }
  }
  return out;
}

/**
 * Cost model (ns) used to pick a route, fitted on this machine's wasm build (Node 20, SIMD, one
 * thread); `npm run bench -- matmul` prints the small-shape comparison it is based on. An XNNPACK
 * call on fresh weights pays a fixed cost (views, operator create/delete) plus packing of the k x n
 * weights, which dominates when few rows share them (m = 1: 64x64 weights cost ~23 us to pack for a
 * 4096-MAC product the scalar loop does in ~6 us). The project GEMM (gemm/gemm.c) is one call for the
 * whole batch, packs each distinct B slice once (cheap SIMD copy, transposed or not) and reads A in
 * place, transposed or not.
 */
export const MATMUL_COST_NS = {
  /** Per XNNPACK call: views, operator creation and deletion. */
  xnnCall: 3000,
  /** Per weight element packed when b is not a persistent, already-packed tensor. */
  xnnPackPerWeight: 6.5,
  /** Per multiply-add on XNNPACK (~14 GFLOP/s), counting n rounded up to the kernel's column tile. */
  xnnPerMac: 0.14,
  /** Output columns per XNNPACK micro-kernel tile: n = 1 costs as much as n = 8. */
  xnnColumnTile: 8,
  /** Per element moved by the JS blocked transpose (fallback when gemm.wasm is unavailable). */
  transposePerElement: 6,
  /** Per element moved by gemm.wasm's SIMD transpose (used for XNNPACK's transposed operands; rough, loaded machine). */
  transposeSimdPerElement: 1,
  /** Per call of the built-in scalar loop. */
  scalarCall: 1500,
  /** Per multiply-add in the built-in scalar loop (~0.7-1.3 GFLOP/s). */
  scalarPerMac: 1.5,
  /** Per gemm.wasm call: JS routing, slice-index table, scratch malloc/free. */
  gemmCall: 1500,
  /** Per element of op(B) packed into 8-column panels, once per distinct B slice. */
  gemmPackPerWeight: 0.5,
  /** Per multiply-add of the 4x8 SIMD micro-kernel, counting n rounded up to 8 columns. */
  gemmPerMac: 0.05,
  /** Output columns per gemm.wasm panel. */
  gemmColumnTile: 8,
  /**
   * Per separate bias-add or activation kernel after a gemm product in _FusedMatMul (the built-in
   * fuses them): call cost and per output element. Measured: [16,128] x [128,128] + bias + relu,
   * 32 us built-in vs 43 us as gemm + Add + Relu; [4096,128] x [128,128], 32 vs 24 ms (medians).
   */
  elementwiseCall: 8000,
  elementwisePerElement: 1,
  /** A^T slices with at least this many elements are transposed into scratch first (see gemm.c). */
  gemmPackAMinElements: 1 << 19,
};

/** Estimated ns of each route for one product (see MATMUL_COST_NS); gemm is Infinity when gemm.wasm is not loaded. */
export function estimateRoutes(
  g: MatMulGeometry,
  transposeA: boolean,
  transposeB: boolean,
  gemmAvailable = true,
): { xnnpack: number; gemm: number; scalar: number } {
  const c = MATMUL_COST_NS;
  const macs = g.outBatch * g.m * g.k * g.n;
  const xnnMacs = g.outBatch * g.m * g.k * Math.ceil(g.n / c.xnnColumnTile) * c.xnnColumnTile;
  // b's packed weights persist across calls only when b is used as is (plain, one slice).
  const bPersistent = g.batchB === 1 && !transposeB;
  const calls = g.batchB === 1 ? 1 : g.outBatch;
  const perTransposed = gemmAvailable ? c.transposeSimdPerElement : c.transposePerElement;
  const xnnpack =
    (transposeA ? g.batchA * g.m * g.k * perTransposed : 0) +
    (transposeB ? g.batchB * g.k * g.n * perTransposed : 0) +
    calls * (c.xnnCall + (bPersistent ? 0 : g.k * g.n * c.xnnPackPerWeight)) +
    xnnMacs * c.xnnPerMac;
  const scalar = c.scalarCall + macs * c.scalarPerMac;
  const nPad = Math.ceil(g.n / c.gemmColumnTile) * c.gemmColumnTile;
  // B is re-packed whenever its slice index changes along the output batch: once per slice when
  // batchB is 1 or full; at most once per output slice for mixed broadcasts.
  const packs = g.batchB === 1 ? 1 : g.outBatch;
  const packA = transposeA && g.m * g.k >= c.gemmPackAMinElements ? g.batchA * g.m * g.k * c.transposeSimdPerElement : 0;
  const gemm = gemmAvailable
    ? c.gemmCall + packs * g.k * nPad * c.gemmPackPerWeight + packA + g.outBatch * g.m * g.k * nPad * c.gemmPerMac
    : Infinity;
  return { xnnpack, gemm, scalar };
}

/**
 * Which implementation fastProduct uses; 'auto' picks the cheapest by estimateRoutes (tests force
 * each route). 'gemm' is the project SIMD kernel (gemm/gemm.c), 'xnnpack' the built-in fully-connected
 * operator on materialised slices, 'scalar' the built-in blocked scalar loop.
 */
export type ProductRoute = 'auto' | 'xnnpack' | 'gemm' | 'scalar';
const ROUTES: readonly ProductRoute[] = ['auto', 'xnnpack', 'gemm', 'scalar'];

let defaultRoute: ProductRoute = 'auto';

/**
 * Diagnostics knob for tests and benchmarks: forces the route the registered kernels use ('auto'
 * restores the cost model). Returns the previous setting. 'scalar' throws for broadcasts it cannot
 * do; 'gemm' throws when gemm.wasm cannot be loaded into the backend (the message says why).
 */
export function setMatMulRoute(route: ProductRoute): ProductRoute {
  if (!ROUTES.includes(route)) {
    throw new Error(`setMatMulRoute: route must be ${ROUTES.map((r) => `'${r}'`).join(' | ')}, got '${String(route)}'`);
  }
  const previous = defaultRoute;
  defaultRoute = route;
  return previous;
}

/**
 * NL_WASM_GEMM=off in the environment starts with gemm disabled: an escape hatch should the kernel
 * misbehave somewhere, and a before/after switch for the benchmark suites (which we do not edit).
 */
let gemmEnabled = !(typeof process !== 'undefined' && process.env?.NL_WASM_GEMM === 'off');

/**
 * Diagnostics knob for benchmarks (before/after comparisons in one process): false makes the kernels
 * behave as if gemm.wasm could not load ('auto' never picks gemm, transposes use the JS loop), which
 * is the behaviour before the gemm route existed. Returns the previous setting.
 */
export function setGemmEnabled(enabled: boolean): boolean {
  const previous = gemmEnabled;
  gemmEnabled = enabled;
  return previous;
}

/** The gemm module for this backend, or null when it cannot load or is disabled (setGemmEnabled). */
function usableGemm(backend: WasmBackend): GemmKernel | null {
  return gemmEnabled ? gemmKernel(backend.wasm) : null;
}

/** True when the project GEMM module runs in this backend (it loads on first use) and is enabled. */
export function gemmAvailable(backend: WasmBackend): boolean {
  return usableGemm(backend) !== null;
}

/**
 * Fills idx[o] (o < outBatch) with the A and B slice indices of output slice o under per-axis
 * broadcasting (same odometer as batchRuns).
 */
function fillSliceIndices(g: MatMulGeometry, heap: Int32Array, aAt: number, bAt: number): void {
  if (g.batchA === g.outBatch && g.batchB === g.outBatch) {
    for (let o = 0; o < g.outBatch; o++) heap[aAt + o] = heap[bAt + o] = o;
    return;
  }
  let o = 0;
  for (const run of batchRuns(g.aBatchShape, g.bBatchShape, g.outBatchShape)) {
    for (let j = 0; j < run.count; j++, o++) {
      heap[aAt + o] = run.a + j;
      heap[bAt + o] = run.b;
    }
  }
}

/**
 * out (allocated, [outBatch, m, n]) = op(a) @ op(b) with gemm.wasm: one call for the whole batch on the
 * tensors' heap blocks. Scratch (packed B panels + slice-index tables) is malloc'd from tfjs and freed
 * before returning, also on error.
 */
function gemmProduct(
  backend: WasmBackend,
  kernel: GemmKernel,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  out: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  g: MatMulGeometry,
): void {
  const { m, k, n } = g;
  const packA = transposeA && m * k >= MATMUL_COST_NS.gemmPackAMinElements ? 1 : 0;
  const packFloats = kernel.exports.gemm_scratch_floats(m, k, n, packA);
  const bytes = (packFloats + 2 * g.outBatch) * 4 + 16;
  const ptr = kernel.malloc(bytes);
  if (ptr === 0) throw new Error(`BatchMatMul: gemm route could not allocate ${bytes} bytes of scratch`);
  try {
    // 16-byte aligned (arithmetic, not bit ops: heap offsets may exceed 2^31).
    const scratch = ptr + ((16 - (ptr % 16)) % 16);
    const aIdx = scratch + packFloats * 4;
    const bIdx = aIdx + g.outBatch * 4;
    // Heap view taken after the malloc above (memory growth replaces the buffer).
    fillSliceIndices(g, kernel.heap32(), aIdx / 4, bIdx / 4);
    kernel.exports.gemm_batched(
      offsetOf(backend, a), offsetOf(backend, b), offsetOf(backend, out), aIdx, bIdx, g.outBatch,
      m, k, n, transposeA ? 1 : 0, transposeB ? 1 : 0, packA, scratch,
    );
  } finally {
    kernel.free(ptr);
  }
}

/**
 * out = a @ b (with transposes and broadcast batch dims); returns a new float32 tensor
 * [...outBatchShape, m, n]. Inputs must be float32. The route is the cheapest by estimateRoutes:
 * gemm.wasm (one SIMD call for the whole batch, transposes read in place; small and mid-size
 * products), XNNPACK (transposes materialised, batches folded into rows or looped over zero-copy
 * views; large products and persistent weights), or the built-in scalar loop (tiny products, when
 * the broadcast is simple: each batch either 1 or full).
 */
export function fastProduct(
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  g: MatMulGeometry,
  route: ProductRoute = defaultRoute,
): tf.TensorInfo {
  const { m, k, n } = g;
  const out = backend.makeOutput([...g.outBatchShape, m, n], 'float32');
  if (g.outBatch * m * n === 0) return out;
  if (k === 0) {
    // Empty sum: zeros (the heap block is uninitialised).
    (backend.typedArrayFromHeap(out) as Float32Array).fill(0);
    return out;
  }
  // The scalar loop broadcasts a batch only when it is 1 (it clamps the slice index).
  const simpleBroadcast = (g.batchA === 1 || g.batchA === g.outBatch) && (g.batchB === 1 || g.batchB === g.outBatch);
  if (route === 'scalar' && !simpleBroadcast) {
    backend.disposeData(out.dataId);
    throw new Error(`BatchMatMul: the scalar route cannot broadcast batch dims [${g.aBatchShape}] and [${g.bBatchShape}]`);
  }
  // With no transpose and no batch the C entry point goes to XNNPACK itself (and its per-b-id
  // operator cache): leave that case to the branch below, which guards the cache.
  const cGoesToXnn = !transposeA && !transposeB && g.batchA === 1 && g.batchB === 1;
  const kernel = usableGemm(backend);
  let chosen: 'xnnpack' | 'gemm' | 'scalar' = route === 'auto' ? 'xnnpack' : route;
  if (chosen === 'scalar' && cGoesToXnn) chosen = 'xnnpack';
  if (route === 'gemm' && kernel === null) {
    backend.disposeData(out.dataId);
    const why = gemmEnabled ? (gemmUnavailableReason(backend.wasm) ?? 'unknown reason') : 'disabled by setGemmEnabled(false)';
    throw new Error(`BatchMatMul: the gemm route is unavailable: ${why}`);
  }
  if (route === 'auto') {
    const cost = estimateRoutes(g, transposeA, transposeB, kernel !== null);
    if (cost.gemm < cost.xnnpack) chosen = 'gemm';
    if (simpleBroadcast && !cGoesToXnn && cost.scalar < Math.min(cost.xnnpack, cost.gemm)) chosen = 'scalar';
  }
  if (chosen === 'gemm' && kernel !== null) {
    try {
      gemmProduct(backend, kernel, a, b, out, transposeA, transposeB, g);
    } catch (e) {
      backend.disposeData(out.dataId);
      throw e;
    }
    return out;
  }
  if (chosen === 'scalar') {
    const aStored = transposeA ? [g.batchA, k, m] : [g.batchA, m, k];
    const bStored = transposeB ? [g.batchB, n, k] : [g.batchB, k, n];
    cBatchMatMul(backend)(idOf(backend, a), shapeBytes(aStored), 3, idOf(backend, b), shapeBytes(bStored), 3, transposeA, transposeB, idOf(backend, out));
    return out;
  }
  const temps: tf.TensorInfo[] = [];
  const views: tf.TensorInfo[] = [];
  try {
    // [batchA, m, k] and [batchB, k, n], row-major, materialised once when transposed.
    let A = a;
    if (transposeA) {
      A = transposeLast2(backend, a, g.batchA, k, m);
      temps.push(A);
    }
    let B = b;
    if (transposeB) {
      B = transposeLast2(backend, b, g.batchB, n, k);
      temps.push(B);
    }
    const call = cBatchMatMul(backend);
    const bShape = shapeBytes([1, k, n]);
    const runs = batchRuns(g.aBatchShape, g.bBatchShape, g.outBatchShape);
    const aShapes = new Map<number, Uint8Array>();
    // b may be passed by its own id (keeps XNNPACK's packed-weight cache) only when it is one slice
    // and the stale-operator hazard does not apply; transposed temporaries are fresh ids anyway.
    const bWhole = g.batchB === 1 && (B !== b || weightShapeIsSafe(b, k, n));
    for (const run of runs) {
      const rows = run.count * m;
      const aInfo = run.a === 0 && run.count === g.batchA ? A : makeView(backend, A, run.a * m * k, [rows, k]);
      if (aInfo !== A) views.push(aInfo);
      const bInfo = bWhole ? B : makeView(backend, B, run.b * k * n, [k, n]);
      if (bInfo !== B) views.push(bInfo);
      const oInfo = run.out === 0 && run.count === g.outBatch ? out : makeView(backend, out, run.out * m * n, [rows, n]);
      if (oInfo !== out) views.push(oInfo);
      let aShape = aShapes.get(rows);
      if (aShape === undefined) aShapes.set(rows, (aShape = shapeBytes([1, rows, k])));
      call(idOf(backend, aInfo), aShape, 3, idOf(backend, bInfo), bShape, 3, false, false, idOf(backend, oInfo));
      while (views.length > 0) releaseView(backend, views.pop() as tf.TensorInfo);
    }
  } catch (e) {
    backend.disposeData(out.dataId);
    throw e;
  } finally {
    for (const v of views) releaseView(backend, v);
    for (const t of temps) disposeIntermediate(backend, t);
  }
  return out;
}

/** True when the built-in kernel already takes its XNNPACK path for these operands. */
function builtInIsFast(g: MatMulGeometry, transposeA: boolean, transposeB: boolean): boolean {
  return !transposeA && !transposeB && g.batchA === 1 && g.batchB === 1 && g.m * g.k * g.n > 0;
}

/**
 * For a plain product the built-in kernel would run on XNNPACK: true when gemm.wasm is estimated
 * cheaper even granting XNNPACK its cached packed weights (it is for most shapes; XNNPACK keeps
 * single rows against large weights, e.g. m = 1, where packing dominates).
 */
function gemmBeatsBuiltIn(backend: WasmBackend, g: MatMulGeometry, extraPasses = 0): boolean {
  if (usableGemm(backend) === null) return false;
  const cost = estimateRoutes(g, false, false, true);
  const c = MATMUL_COST_NS;
  // _FusedMatMul on gemm adds separate bias / activation kernels that the built-in fuses.
  const extra = extraPasses * (c.elementwiseCall + g.outBatch * g.m * g.n * c.elementwisePerElement);
  return cost.gemm + extra < cost.xnnpack;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** Builds the replacement BatchMatMul kernelFunc; `original` handles plain products and non-float32 errors. */
export function makeBatchMatMul(original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    const transposeA = attrs.transposeA === true;
    const transposeB = attrs.transposeB === true;
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return original(args);
    const backend = asWasmBackend(args.backend, 'BatchMatMul');
    const g = matMulGeometry(a.shape, b.shape, transposeA, transposeB, 'BatchMatMul');
    if (defaultRoute === 'auto' && builtInIsFast(g, transposeA, transposeB) && !gemmBeatsBuiltIn(backend, g) && weightShapeIsSafe(b, g.k, g.n)) {
      return original(args);
    }
    return fastProduct(backend, a, b, transposeA, transposeB, g);
  };
}

function applyActivation(
  backend: WasmBackend,
  x: tf.TensorInfo,
  activation: FusedActivation,
  preluWeights: tf.TensorInfo | undefined,
  leakyreluAlpha: number | undefined,
): tf.TensorInfo {
  switch (activation) {
    case 'linear':
      return x;
    case 'relu':
      return runWasmKernel('Relu', backend, { x });
    case 'relu6':
      return runWasmKernel('Relu6', backend, { x });
    case 'elu':
      return runWasmKernel('Elu', backend, { x });
    case 'sigmoid':
      return runWasmKernel('Sigmoid', backend, { x });
    case 'leakyrelu':
      return runWasmKernel('LeakyRelu', backend, { x }, { alpha: leakyreluAlpha ?? 0.2 });
    case 'prelu':
      if (preluWeights == null) throw new Error("_FusedMatMul: activation 'prelu' needs preluActivationWeights");
      return preluBroadcast(backend, x, preluWeights);
  }
}

/** Builds the replacement _FusedMatMul kernelFunc: act(a @ b + bias), exact cpu-backend semantics. */
export function makeFusedMatMul(original: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as {
      a: tf.TensorInfo;
      b: tf.TensorInfo;
      bias?: tf.TensorInfo;
      preluActivationWeights?: tf.TensorInfo;
    };
    const attrs = (args.attrs ?? {}) as {
      transposeA?: boolean;
      transposeB?: boolean;
      activation?: string;
      leakyreluAlpha?: number;
    };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return original(args);
    const activation = (attrs.activation ?? 'linear') as FusedActivation;
    if (!ACTIVATIONS.includes(activation)) {
      throw new Error(`_FusedMatMul: activation '${String(attrs.activation)}' is not supported; allowed: ${ACTIVATIONS.join(', ')}`);
    }
    const transposeA = attrs.transposeA === true;
    const transposeB = attrs.transposeB === true;
    const backend = asWasmBackend(args.backend, '_FusedMatMul');
    const g = matMulGeometry(a.shape, b.shape, transposeA, transposeB, '_FusedMatMul');
    // The built-in fused path is exact only for a bias of exactly [n] (XNNPACK reads n values) and
    // prelu weights matching the output's trailing dims.
    const biasOk = bias == null || (bias.shape.length === 1 && bias.shape[0] === g.n);
    const pw = preluActivationWeights;
    const preluOk = activation !== 'prelu' || (pw != null && preluTrailingCompatible(pw.shape, [g.outBatch, g.m, g.n]));
    const passes = (bias != null ? 1 : 0) + (activation !== 'linear' ? 1 : 0);
    const builtInOk = builtInIsFast(g, transposeA, transposeB) && biasOk && preluOk && !gemmBeatsBuiltIn(backend, g, passes);
    if (defaultRoute === 'auto' && builtInOk && weightShapeIsSafe(b, g.k, g.n)) {
      return original(args);
    }
    const product = fastProduct(backend, a, b, transposeA, transposeB, g);
    let current = product;
    try {
      if (bias != null) {
        const added = runWasmKernel('Add', backend, { a: current, b: bias });
        disposeIntermediate(backend, current);
        current = added;
      }
      const activated = applyActivation(backend, current, activation, pw, attrs.leakyreluAlpha);
      if (activated !== current) {
        disposeIntermediate(backend, current);
        current = activated;
      }
    } catch (e) {
      disposeIntermediate(backend, current);
      throw e;
    }
    return current;
  };
}
