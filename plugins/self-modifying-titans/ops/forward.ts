/**
 * The whole self-modifying Titans mixer as a pure function (paper Section 8, Eqs. 83-93):
 * x [B, T, D] and a state -> y [B, T, D] and the state after the last token.
 *
 * Per head h (D = H dh) and token t, with x^_t = x_t split into heads (L2-normalised per head when
 * normalize = 'l2'):
 *   k_t = M_k(x^_t), v_t = M_v(x^_t)                        (Eq. 83; static k/v: x W_k, x W_v instead)
 *   eta_t = etaMax sigmoid(mean(M_eta(x^_t)) + b_eta)       in (0, etaMax)
 *   alpha_t = alphaMin + (1 - alphaMin) sigmoid(mean(M_alpha(x^_t)) + b_alpha)   in (alphaMin, 1)
 *   q_t = x_t W_q (default) or M_q(x^_t) (adaptiveQ); k, v, q L2-normalised when normalize = 'l2'
 *   every memory M_box (Eq. 89 MLP) writes its own target v^_box = M_box(v_t) (Eq. 84) under
 *   L(M_box(k_t); v^_box) (Eq. 85) with DGD + weight decay (Eq. 88) and momentum (ops/recurrence.ts)
 *   o_t = M_mem,t(q_t) after token t's write; y_t = concat_h(o_t) W_o.
 * Chunk-parallel (Eq. 90): the memories k, v, eta, alpha (q) use chunks of `chunkSize` tokens, M_mem
 * chunks of `memChunkSize`: inside a chunk, reads and per-token gradients use the chunk-start state
 * (Decision: the boundary state is the previous chunk's final state), then the in-chunk recurrence
 * runs. Chunks are counted along the stream: the state carries the chunk-start snapshot and the
 * position inside the current chunk (as the length of a zero-width clock tensor, so no device sync),
 * which makes split calls equal one call.
 */
import * as tf from '@tensorflow/tfjs';
import type { InnerLoss } from '../../../core/inner-loss';
import type { GradientMode } from '../../../core/level';
import { stopGradient } from '../../../core/ops/stop-gradient';
import { innerGradientsFromRead, l2Normalize, readKeysAndTargets, readMemory, readShared, sharedInnerGradients, type MemoryActivation } from './memory';
import { checkpoint } from '../../../core/ops/checkpoint';
import { sliceView } from './layout';
import { stableForward } from './stable';
import { fusedStepApplies, stableStepFused } from './fused-step';
import {
  chunkedSegment,
  chunkedSharedEnd,
  chunkedSharedRetrieval,
  naiveSegment,
  sharedCoefficients,
  type GroupWeights,
  type RecurrenceOptions,
  type SegmentWrites,
} from './recurrence';

export type MemoryName = 'k' | 'v' | 'eta' | 'alpha' | 'q';
export type NormalizeMode = 'l2' | 'none';
export const NORMALIZE_MODES: readonly NormalizeMode[] = ['l2', 'none'];
export type SmtImpl = 'naive' | 'chunked';
export const SMT_IMPLS: readonly SmtImpl[] = ['naive', 'chunked'];
/** 'stable' (default): ops/stable.ts; 'paper': the literal Eqs. 83-90 form of this file (see README). */
export type SmtParameterization = 'stable' | 'paper';
export const SMT_PARAMETERIZATIONS: readonly SmtParameterization[] = ['stable', 'paper'];

/** Size-complete options of one call. */
export interface SmtOptions {
  numHeads: number;
  headDim: number; // dh = D / H
  hiddenDim: number; // dhid of every memory MLP
  act: MemoryActivation;
  innerLoss: InnerLoss;
  momentum: number | null; // mu, null = momentum off
  dgd: boolean;
  weightDecay: boolean; // false: alpha = 1 (no M_alpha)
  staticK: boolean;
  staticV: boolean;
  adaptiveQ: boolean;
  normalize: NormalizeMode;
  chunkSize: number;
  memChunkSize: number;
  etaMax: number;
  alphaMin: number;
  gradClip: number | null;
  impl: SmtImpl;
  gradientMode: GradientMode;
  sentinel: boolean;
  /** Layer name used in sentinel errors. */
  layerName: string;
  /** Which form runs (ops/stable.ts or this file). */
  parameterization: SmtParameterization;
  /** 'stable' only: step-size multiple of W2 and of the non-retrieval memories (b = slowRate beta). */
  slowRate: number;
  /** 'stable' only: run M_mem's writes in the phase-1 segment call when the chunk sizes and clocks agree (default true; same values, fewer kernels). */
  mergePhases?: boolean;
  /**
   * Activation checkpointing per chunk (core/ops/checkpoint.ts), default true: under a gradient tape only
   * each chunk's inputs are kept and the chunk is recomputed in the backward pass. Same values and
   * gradients; false keeps every intermediate on the tape (more memory, no recompute).
   */
  checkpoint?: boolean;
}

/** Parameters (outer-loop variables) as plain tensors. */
export interface SmtWeights {
  w1Init: tf.Tensor; // [NM, H, dh, dhid] meta-learned initial W1 of the memories in memoryNames()
  w2Init: tf.Tensor; // [NM, H, dhid, dh]
  memW1Init: tf.Tensor; // [H, dh, dhid] of M_mem
  memW2Init: tf.Tensor; // [H, dhid, dh]
  etaBias: tf.Tensor; // [H]
  alphaBias?: tf.Tensor; // [H] (weightDecay)
  qKernel?: tf.Tensor; // [D, D] (not adaptiveQ)
  kKernel?: tf.Tensor; // [D, D] (staticK)
  vKernel?: tf.Tensor; // [D, D] (staticV)
  outKernel: tf.Tensor; // [D, D]
  gateKernel?: tf.Tensor; // [D, D] ('stable': sigmoid output gate)
  normGain?: tf.Tensor; // [D] ('stable': per-head RMSNorm gain)
}
export type SmtWeightName = keyof SmtWeights;

/**
 * Carried state, batch axis first. Memories in memoryNames() order on axis 1.
 * clock / memClock: [B, p], p = tokens since the last chunk boundary (values unused, only the width).
 */
export type SmtState = Readonly<Record<string, tf.Tensor>>;


/** Memories with their own MLP besides M_mem, in state order. */
export function memoryNames(o: Pick<SmtOptions, 'staticK' | 'staticV' | 'weightDecay' | 'adaptiveQ'>): MemoryName[] {
  const names: MemoryName[] = [];
  if (!o.staticK) names.push('k');
  if (!o.staticV) names.push('v');
  names.push('eta');
  if (o.weightDecay) names.push('alpha');
  if (o.adaptiveQ) names.push('q');
  return names;
}

/** Expected state shapes for batch b (clock widths -1 = any). */
export function stateShapes(o: SmtOptions, b: number): Record<string, number[]> {
  const nm = memoryNames(o).length;
  const { numHeads: h, headDim: dh, hiddenDim: dz } = o;
  const s: Record<string, number[]> = {
    W1: [b, nm, h, dh, dz],
    W2: [b, nm, h, dz, dh],
    W1snap: [b, nm, h, dh, dz],
    W2snap: [b, nm, h, dz, dh],
    clock: [b, -1],
    memW1: [b, h, dh, dz],
    memW2: [b, h, dz, dh],
    memW1snap: [b, h, dh, dz],
    memW2snap: [b, h, dz, dh],
    memClock: [b, -1],
  };
  if (o.momentum !== null) {
    s.M1 = [b, nm, h, dh, dz];
    s.M2 = [b, nm, h, dz, dh];
    s.memM1 = [b, h, dh, dz];
    s.memM2 = [b, h, dz, dh];
  }
  return s;
}

/** Initial state: the meta-learned initial weights for every sequence, zero momentum, clocks at 0. */
export function initialSmtState(o: SmtOptions, w: SmtWeights, b: number): SmtState {
  return tf.tidy(() => {
    // batch copies by a broadcasting add (the wasm Tile kernel is slow; its gradient is a Sum)
    const zerosB = tf.zeros([b, 1]);
    const tileB = (a: tf.Tensor): tf.Tensor => a.reshape([1, a.size]).add(zerosB).reshape([b, ...a.shape]);
    const s: Record<string, tf.Tensor> = {
      W1: tileB(w.w1Init),
      W2: tileB(w.w2Init),
      W1snap: tileB(w.w1Init),
      W2snap: tileB(w.w2Init),
      clock: tf.zeros([b, 0]),
      memW1: tileB(w.memW1Init),
      memW2: tileB(w.memW2Init),
      memW1snap: tileB(w.memW1Init),
      memW2snap: tileB(w.memW2Init),
      memClock: tf.zeros([b, 0]),
    };
    if (o.momentum !== null) {
      s.M1 = tf.zerosLike(s.W1);
      s.M2 = tf.zerosLike(s.W2);
      s.memM1 = tf.zerosLike(s.memW1);
      s.memM2 = tf.zerosLike(s.memW2);
    }
    return s;
  });
}

/** Segment lengths of T tokens for chunks of c with p tokens of the current chunk already seen. */
export function segmentLengths(t: number, c: number, p: number): number[] {
  const lens: number[] = [];
  let left = t;
  if (p > 0) {
    const first = Math.min(c - p, left);
    lens.push(first);
    left -= first;
  }
  while (left > 0) {
    const l = Math.min(c, left);
    lens.push(l);
    left -= l;
  }
  return lens;
}

/** Splits a along axis 0 into pieces of the given lengths by recursive halving (O(size log n) on wasm). */
export function splitLens(a: tf.Tensor, lens: number[]): tf.Tensor[] {
  if (lens.length === 1) return [a];
  const mid = Math.floor(lens.length / 2);
  const left = lens.slice(0, mid).reduce((x, y) => x + y, 0);
  const rest = a.shape[0] - left;
  const begin = a.shape.map(() => 0);
  const size = a.shape.map((d, i) => (i === 0 ? left : d));
  const lo = a.slice(begin, size);
  const hi = a.slice(begin.map((_, i) => (i === 0 ? left : 0)), a.shape.map((d, i) => (i === 0 ? rest : d)));
  return [...splitLens(lo, lens.slice(0, mid)), ...splitLens(hi, lens.slice(mid))];
}

/** Concatenates along axis 0 pairwise (the gradient then splits in O(size log n)). */
export function concatLens(parts: tf.Tensor[]): tf.Tensor {
  if (parts.length === 1) return parts[0];
  const mid = Math.floor(parts.length / 2);
  return tf.concat([concatLens(parts.slice(0, mid)), concatLens(parts.slice(mid))], 0);
}

function checkOptions(o: SmtOptions): void {
  for (const f of ['numHeads', 'headDim', 'hiddenDim', 'chunkSize', 'memChunkSize'] as const) {
    if (!Number.isInteger(o[f]) || o[f] < 1) throw new Error(`selfModifyingTitansForward: ${f} must be a positive integer, got ${o[f]}`);
  }
}

/**
 * Runs the mixer over x [B, T, D] from `state` (initialSmtState when null). Returns new tensors owned
 * by the caller; `state` is not disposed. Everything inside runs in one tf.tidy.
 */
export function selfModifyingTitansForward(
  o: SmtOptions,
  w: SmtWeights,
  x: tf.Tensor,
  state: SmtState | null,
): { y: tf.Tensor3D; state: SmtState } {
  checkOptions(o);
  if (o.parameterization === 'stable') {
    if (o.momentum !== null) throw new Error(`${o.layerName}: momentum is not part of parameterization 'stable' (set momentum: false)`);
    if (o.normalize !== 'l2') throw new Error(`${o.layerName}: parameterization 'stable' needs normalize: 'l2'`);
    const [, , dm] = x.shape;
    if (o.numHeads * o.headDim !== dm) throw new Error(`selfModifyingTitansForward: numHeads * headDim = ${o.numHeads * o.headDim} must equal the input width ${dm}`);
    // one token with a fused kernel registered for this backend (wasm: core/backend/kernels/smt-step), no tape: ops/fused-step.ts
    if (fusedStepApplies(o, w, x)) return tf.tidy(() => stableStepFused(o, w, x, state ?? initialSmtState(o, w, x.shape[0]), memoryNames(o)) as unknown as tf.TensorContainer) as unknown as { y: tf.Tensor3D; state: SmtState };
    return stableForward(o, w, x, state, { memoryNames, initialState: initialSmtState, segmentLengths, splitLens, concatLens, sentinel, packState });
  }
  return tf.tidy(() => {
    const [b, t, dm] = x.shape as [number, number, number];
    const { numHeads: h, headDim: dh, hiddenDim: dz } = o;
    if (h * dh !== dm) throw new Error(`selfModifyingTitansForward: numHeads * headDim = ${h * dh} must equal the input width ${dm}`);
    const names = memoryNames(o);
    const nm = names.length;
    const s0 = state ?? initialSmtState(o, w, b);
    const recur = o.impl === 'naive' ? naiveSegment : chunkedSegment;
    const ropts: RecurrenceOptions = { act: o.act, momentum: o.momentum, dgd: o.dgd };
    const stop = <T extends tf.Tensor>(a: T): T => (o.gradientMode === 'stop' ? stopGradient(a) : a);
    const norm = (a: tf.Tensor): tf.Tensor => (o.normalize === 'l2' ? l2Normalize(a) : a);

    // Time-major per-head views: [T, B, H, d]
    const x2 = x.reshape([b * t, dm]);
    const heads = (a2: tf.Tensor): tf.Tensor => a2.reshape([b, t, h, dh]).transpose([1, 0, 2, 3]);
    const xh = norm(heads(x2)); // memory input x^, [T, B, H, dh]
    const qFixed = o.adaptiveQ ? null : norm(heads(tf.matMul(x2 as tf.Tensor2D, w.qKernel as tf.Tensor2D)));
    const kFixed = o.staticK ? norm(heads(tf.matMul(x2 as tf.Tensor2D, w.kKernel as tf.Tensor2D))) : null;
    const vFixed = o.staticV ? norm(heads(tf.matMul(x2 as tf.Tensor2D, w.vKernel as tf.Tensor2D))) : null;

    // Per-chunk layout is head-major: [B H, L, d] (and [B H, L] for scalars); a memory group stacks
    // its memories on the leading axis, memory-major: N1 = (memory, sequence, head), so each memory's
    // rows are one contiguous block (picking a memory is a leading-axis split, tiling the shared input
    // is a concat: no rank-5 Slice/Tile, which are very slow on wasm).
    const n2 = b * h;
    const hm = (a: tf.Tensor): tf.Tensor3D => {
      const [l, , , d] = a.shape; // [L, B, H, d] -> [B H, L, d]
      return a.transpose([1, 2, 0, 3]).reshape([n2, l, d]) as tf.Tensor3D;
    };
    const tm = (a: tf.Tensor): tf.Tensor => {
      const [, l, d] = a.shape; // [B H, L, d] -> [L, B, H, d]
      return a.reshape([b, h, l, d]).transpose([2, 0, 1, 3]);
    };
    const perHead = (a: tf.Tensor, bias: tf.Tensor): tf.Tensor2D => {
      const l = a.shape[1] as number; // a [B H, L] + bias [H]
      return a.reshape([b, h, l]).add(bias.reshape([1, h, 1])).reshape([n2, l]) as tf.Tensor2D;
    };

    // ---- Phase 1: memories k, v, eta, alpha (q), chunk size o.chunkSize ----
    const n1 = nm * n2;
    // The chunked impl keeps the group memory-minor, N1 = (B H, memory) (recurrence.ts SharedSegmentWrites:
    // the memories share keys and rates, so key/rate-only work runs once per (sequence, head) and
    // products with a shared operand run on wide stacks); the naive impl keeps the memory-major layout.
    const shared = o.impl === 'chunked';
    const p1 = s0.clock.shape[1] as number;
    // Merged (chunked impl, chunkSize == memChunkSize, clocks in step): M_mem writes at the same keys and
    // rates as the phase-1 memories, so it joins their group as memory nm (the last) and one loop runs
    // both phases: its reads, targets, inner gradients and end state share the phase-1 products and
    // coefficients, and only its retrieval is extra (chunkedSharedRetrieval). Same values as two phases.
    const merged = shared && o.chunkSize === o.memChunkSize && p1 === (s0.memClock.shape[1] as number);
    const nmG = merged ? nm + 1 : nm; // memories in the phase-1 group
    const n1g = nmG * n2;
    // state [B, NM, H, p, q] (+ M_mem [B, H, p, q] when merged) <-> group [NM B H, p, q] (naive) or [B H NMG, p, q] (chunked)
    const toGroup = (a: tf.Tensor, mem?: tf.Tensor): tf.Tensor3D => {
      const [p, q] = a.shape.slice(3) as [number, number];
      if (shared) {
        const g1 = a.reshape([b, nm, h, p * q]).transpose([0, 2, 1, 3]); // [B, H, NM, p q]
        return (merged ? tf.concat([g1, (mem as tf.Tensor).reshape([b, h, 1, p * q])], 2) : g1).reshape([n1g, p, q]) as tf.Tensor3D;
      }
      return a.reshape([b, nm, h * p * q]).transpose([1, 0, 2]).reshape([n1, p, q]) as tf.Tensor3D;
    };
    const fromGroup = (a: tf.Tensor): tf.Tensor => {
      const [, p, q] = a.shape;
      if (shared) {
        const g1 = merged ? a.reshape([b * h, nmG, p * q]).slice([0, 0, 0], [b * h, nm, p * q]) : a;
        return g1.reshape([b, h, nm, p * q]).transpose([0, 2, 1, 3]).reshape([b, nm, h, p, q]);
      }
      return a.reshape([nm, b, h * p * q]).transpose([1, 0, 2]).reshape([b, nm, h, p, q]);
    };
    // rows of M_mem (memory nm) of a merged group [N2 NMG, ...] -> [N2, ...]
    const memRows = (a: tf.Tensor): tf.Tensor3D => {
      const [, p, q] = a.shape;
      return sliceView(a.reshape([n2, nmG, p * q]), [0, nm, 0], [n2, 1, p * q]).reshape([n2, p, q]) as tf.Tensor3D;
    };
    let run1: GroupWeights = { w1: toGroup(s0.W1, s0.memW1), w2: toGroup(s0.W2, s0.memW2) };
    if (o.momentum !== null) run1 = { ...run1, m1: toGroup(s0.M1, s0.memM1), m2: toGroup(s0.M2, s0.memM2) };
    let snap1 = { w1: toGroup(s0.W1snap, s0.memW1snap), w2: toGroup(s0.W2snap, s0.memW2snap) };
    const lens1 = segmentLengths(t, o.chunkSize, p1);
    // [B H, ...] -> [NM B H, ...]: every memory gets the same per-head input
    const tileMem = <T extends tf.Tensor>(a: T): T => (nm === 1 ? a : (tf.concat(new Array<tf.Tensor>(nm).fill(a), 0) as T));
    const xSegs = splitLens(xh, lens1);
    const qSegs = qFixed ? splitLens(qFixed, lens1) : null;
    const kSegs = kFixed ? splitLens(kFixed, lens1) : null;
    const vSegs = vFixed ? splitLens(vFixed, lens1) : null;
    const outK: tf.Tensor[] = []; // per chunk [B H, L, dh]
    const outV: tf.Tensor[] = [];
    const outEta: tf.Tensor[] = []; // per chunk [B H, L]
    const outLogA: tf.Tensor[] = [];
    const outQ: tf.Tensor[] = [];
    const outO: tf.Tensor[] = []; // per chunk [B H, L, dh]: M_mem's retrievals
    const readChecks: Record<string, tf.Tensor[]> = {}; // per memory, per chunk [B H, L, dh]
    for (const nmName of names) readChecks[nmName] = [];
    let pos1 = p1;
    const ckpt = o.checkpoint ?? true;
    const run = (fn: (xs: tf.Tensor[]) => tf.Tensor[], xs: tf.Tensor[]): tf.Tensor[] => (ckpt ? checkpoint(fn, xs) : fn(xs));
    const mom = o.momentum !== null;
    const ns = mom ? 4 : 2; // state tensors of a group: w1, w2 (, m1, m2)
    const stateList = (g: GroupWeights): tf.Tensor[] => (mom ? [g.w1, g.w2, g.m1 as tf.Tensor, g.m2 as tf.Tensor] : [g.w1, g.w2]);
    const stateOf = (a: tf.Tensor[]): GroupWeights => {
      const g3 = a as tf.Tensor3D[];
      return mom ? { w1: g3[0], w2: g3[1], m1: g3[2], m2: g3[3] } : { w1: g3[0], w2: g3[1] };
    };
    lens1.forEach((l, i) => {
      // one chunk: inputs [state (ns), snapshot w1, w2, x^ [B H, L, dh], etaBias, alphaBias?, qFixed?, kFixed?, vFixed?]
      const extras: tf.Tensor[] = [];
      const at: Record<string, number> = {};
      const add = (key: string, a: tf.Tensor | null | undefined): void => {
        if (a) {
          at[key] = ns + 4 + extras.length;
          extras.push(a);
        }
      };
      add('alphaBias', w.alphaBias);
      add('q', qSegs ? hm(qSegs[i]) : null);
      add('k', kSegs ? hm(kSegs[i]) : null);
      add('v', vSegs ? hm(vSegs[i]) : null);
      // chunked impl: memory-minor group, shared keys (see `shared` above); same values as `chunk`
      const chunkShared = (xs: tf.Tensor[]): tf.Tensor[] => {
        const sw1 = xs[ns] as tf.Tensor3D;
        const sw2 = xs[ns + 1] as tf.Tensor3D;
        const etaBias = xs[ns + 3];
        const alphaBias = at.alphaBias !== undefined ? xs[at.alphaBias] : null;
        // reads of the chunk-start snapshot (Eq. 90): [N1, L, dh] memory-minor -> one [B H, L, dh] per memory
        // (merged: M_mem's read of x is computed with the others and dropped)
        const read = readShared(o.act, sw1, sw2, xs[ns + 2] as tf.Tensor3D, nmG).out;
        const read3 = read.reshape([n2, nmG, l * dh]);
        const pick = (name: MemoryName): tf.Tensor =>
          nmG === 1 ? read : sliceView(read3, [0, names.indexOf(name), 0], [n2, 1, l * dh]).reshape([n2, l, dh]);
        const k = norm(at.k !== undefined ? xs[at.k] : pick('k')) as tf.Tensor3D; // [B H, L, dh]
        const v = norm(at.v !== undefined ? xs[at.v] : pick('v')) as tf.Tensor3D;
        const eta = tf.sigmoid(perHead(pick('eta').mean(-1), etaBias)).mul(o.etaMax) as tf.Tensor2D; // [B H, L]
        const logAlpha = alphaBias
          ? (tf.log(tf.sigmoid(perHead(pick('alpha').mean(-1), alphaBias)).mul(1 - o.alphaMin).add(o.alphaMin)) as tf.Tensor2D)
          : (tf.zeros([n2, l]) as tf.Tensor2D); // [B H, L], <= 0
        const q = at.q !== undefined ? xs[at.q] : norm(pick('q'));
        // self-generated targets and inner gradients of every memory at the snapshot (Eqs. 84-85)
        const g = sharedInnerGradients(o.act, o.innerLoss, sw1, sw2, k, v, nmG, o.gradClip); // [N1, L, .]
        const etaRows = nmG === 1 ? eta.expandDims(2) : eta.reshape([n2, 1, l, 1]).add(tf.zeros([1, nmG, 1, 1])).reshape([n1g, l, 1]);
        const wr = {
          k: stop(k),
          eta: stop(eta),
          logAlpha: stop(logAlpha),
          h: stop(g.h),
          y2: stop(g.u.mul(etaRows).neg() as tf.Tensor3D),
          y1: stop(g.e.mul(etaRows).neg() as tf.Tensor3D),
        };
        const coef = sharedCoefficients(wr.k, wr.eta, wr.logAlpha, ropts, merged);
        const s = stateOf(xs.slice(0, ns));
        const next = chunkedSharedEnd(s, wr, nmG, ropts, coef);
        const checks = o.sentinel ? names.map(pick) : [];
        if (!merged) return [...stateList(next), k, v, eta, logAlpha, q, ...checks];
        // M_mem's retrievals o_t = M_mem,t(q_t) from its chunk-start running state
        const sMem: GroupWeights = mom
          ? { w1: memRows(s.w1), w2: memRows(s.w2), m1: memRows(s.m1 as tf.Tensor), m2: memRows(s.m2 as tf.Tensor) }
          : { w1: memRows(s.w1), w2: memRows(s.w2) };
        const wrMem: SegmentWrites = { k: wr.k, eta: wr.eta, logAlpha: wr.logAlpha, h: memRows(wr.h), y1: memRows(wr.y1), y2: memRows(wr.y2), q: q as tf.Tensor3D };
        return [...stateList(next), chunkedSharedRetrieval(sMem, wrMem, coef, ropts), ...checks];
      };
      const chunk = (xs: tf.Tensor[]): tf.Tensor[] => {
        const sw1 = xs[ns] as tf.Tensor3D;
        const sw2 = xs[ns + 1] as tf.Tensor3D;
        const etaBias = xs[ns + 3];
        const alphaBias = at.alphaBias !== undefined ? xs[at.alphaBias] : null;
        // reads of the chunk-start snapshot (Eq. 90), one [B H, L, dh] block per memory
        const read = readMemory(o.act, sw1, sw2, tileMem(xs[ns + 2] as tf.Tensor3D)).out; // [NM B H, L, dh]
        const parts = nm === 1 ? [read] : tf.split(read, nm, 0);
        const pick = (name: MemoryName): tf.Tensor => parts[names.indexOf(name)];
        const k = norm(at.k !== undefined ? xs[at.k] : pick('k')) as tf.Tensor3D; // [B H, L, dh]
        const v = norm(at.v !== undefined ? xs[at.v] : pick('v')) as tf.Tensor3D;
        const eta = tf.sigmoid(perHead(pick('eta').mean(-1), etaBias)).mul(o.etaMax) as tf.Tensor2D; // [B H, L]
        const logAlpha = alphaBias
          ? (tf.log(tf.sigmoid(perHead(pick('alpha').mean(-1), alphaBias)).mul(1 - o.alphaMin).add(o.alphaMin)) as tf.Tensor2D)
          : (tf.zeros([n2, l]) as tf.Tensor2D); // [B H, L], <= 0
        const q = at.q !== undefined ? xs[at.q] : norm(pick('q'));
        // self-generated targets and inner gradients of every memory at the snapshot (Eqs. 84-85)
        const kt = tileMem(k);
        const { atK, vhat } = readKeysAndTargets(o.act, sw1, sw2, kt, tileMem(v));
        const g = innerGradientsFromRead(o.act, o.innerLoss, sw1, atK, kt, vhat, o.gradClip);
        const etaT = tileMem(eta);
        const wr: SegmentWrites = {
          k: stop(kt),
          h: stop(g.h),
          y2: stop(g.u.mul(etaT.expandDims(2)).neg() as tf.Tensor3D),
          y1: stop(g.e.mul(etaT.expandDims(2)).neg() as tf.Tensor3D),
          eta: stop(etaT),
          logAlpha: stop(tileMem(logAlpha)),
        };
        const next = recur(stateOf(xs.slice(0, ns)), wr, ropts).state;
        return [...stateList(next), k, v, eta, logAlpha, q, ...(o.sentinel ? names.map(pick) : [])];
      };
      const res = run(shared ? chunkShared : chunk, [...stateList(run1), snap1.w1, snap1.w2, hm(xSegs[i]), w.etaBias, ...extras]);
      run1 = stateOf(res.slice(0, ns));
      const nOut = merged ? 1 : 5; // merged: o; else k, v, eta, log alpha, q
      if (merged) outO.push(res[ns]);
      else {
        outK.push(res[ns]);
        outV.push(res[ns + 1]);
        outEta.push(res[ns + 2]);
        outLogA.push(res[ns + 3]);
        outQ.push(res[ns + 4]);
      }
      if (o.sentinel) names.forEach((nmName, j) => readChecks[nmName].push(res[ns + nOut + j]));
      pos1 = (pos1 + l) % o.chunkSize;
      if (pos1 === 0) snap1 = { w1: run1.w1, w2: run1.w2 }; // chunk boundary: next chunk reads this state
    });
    const perTokenChecks: Array<[string, tf.Tensor[]]> = names.map((nmName) => [nmName, readChecks[nmName]]);

    // ---- Phase 2: M_mem, chunk size o.memChunkSize, reads o_t = M_mem,t(q_t) ----
    // (merged: already done in phase 1; M_mem's state is taken from the group's rows)
    const flat2 = (a: tf.Tensor): tf.Tensor3D => a.reshape([n2, a.shape[2] as number, a.shape[3] as number]) as tf.Tensor3D;
    let run2: GroupWeights = merged ? { w1: memRows(run1.w1), w2: memRows(run1.w2) } : { w1: flat2(s0.memW1), w2: flat2(s0.memW2) };
    if (o.momentum !== null) {
      run2 = merged ? { ...run2, m1: memRows(run1.m1 as tf.Tensor), m2: memRows(run1.m2 as tf.Tensor) } : { ...run2, m1: flat2(s0.memM1), m2: flat2(s0.memM2) };
    }
    let snap2 = merged ? { w1: memRows(snap1.w1), w2: memRows(snap1.w2) } : { w1: flat2(s0.memW1snap), w2: flat2(s0.memW2snap) };
    const p2 = s0.memClock.shape[1] as number;
    const lens2 = merged ? [] : segmentLengths(t, o.memChunkSize, p2);
    const same = merged || (lens2.length === lens1.length && lens2.every((l, i) => l === lens1[i]));
    // re-chunk head-major pieces [B H, L, (d)] through time-major (splits along the leading axis)
    const resplit = (parts: tf.Tensor[]): tf.Tensor[] => {
      if (same) return parts;
      const toT = (a: tf.Tensor): tf.Tensor => (a.rank === 3 ? a.transpose([1, 0, 2]) : a.transpose()); // [L, B H, (d)]
      const fromT = (a: tf.Tensor): tf.Tensor => (a.rank === 3 ? a.transpose([1, 0, 2]) : a.transpose());
      return splitLens(concatLens(parts.map(toT)), lens2).map(fromT);
    };
    const k2 = resplit(outK);
    const v2 = resplit(outV);
    const eta2 = resplit(outEta);
    const logA2 = resplit(outLogA);
    const q2 = resplit(outQ);
    let pos2 = merged ? pos1 : p2;
    lens2.forEach((l, i) => {
      // one chunk: inputs [state (ns), snapshot w1, w2, k, v, eta, logAlpha, q]
      const chunk = (xs: tf.Tensor[]): tf.Tensor[] => {
        const sw1 = xs[ns] as tf.Tensor3D;
        const sw2 = xs[ns + 1] as tf.Tensor3D;
        const [k, v, eta, logA, q] = xs.slice(ns + 2) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor2D, tf.Tensor2D, tf.Tensor3D];
        const { atK, vhat } = readKeysAndTargets(o.act, sw1, sw2, k, v);
        const g = innerGradientsFromRead(o.act, o.innerLoss, sw1, atK, k, vhat, o.gradClip);
        const wr: SegmentWrites = {
          k: stop(k),
          h: stop(g.h),
          y2: stop(g.u.mul(eta.expandDims(2)).neg() as tf.Tensor3D),
          y1: stop(g.e.mul(eta.expandDims(2)).neg() as tf.Tensor3D),
          eta: stop(eta),
          logAlpha: stop(logA),
          q,
        };
        const r = recur(stateOf(xs.slice(0, ns)), wr, ropts);
        return [...stateList(r.state), r.o as tf.Tensor3D];
      };
      const res = run(chunk, [...stateList(run2), snap2.w1, snap2.w2, k2[i], v2[i], eta2[i], logA2[i], q2[i]]);
      run2 = stateOf(res.slice(0, ns));
      outO.push(res[ns]); // [B H, L, dh]
      pos2 = (pos2 + l) % o.memChunkSize;
      if (pos2 === 0) snap2 = { w1: run2.w1, w2: run2.w2 };
    });
    perTokenChecks.push(['mem', outO]);

    const oAll = concatLens(outO.map(tm)); // [T, B, H, dh]
    const y = tf.matMul(oAll.transpose([1, 0, 2, 3]).reshape([b * t, dm]) as tf.Tensor2D, w.outKernel as tf.Tensor2D).reshape([b, t, dm]) as tf.Tensor3D;

    if (o.sentinel) sentinel(o, perTokenChecks, t);

    const un2 = (a: tf.Tensor): tf.Tensor => a.reshape([b, h, a.shape[1] as number, a.shape[2] as number]);
    const momentumState: Record<string, tf.Tensor> =
      o.momentum === null
        ? {}
        : { M1: fromGroup(run1.m1 as tf.Tensor), M2: fromGroup(run1.m2 as tf.Tensor), memM1: un2(run2.m1 as tf.Tensor), memM2: un2(run2.m2 as tf.Tensor) };
    const out = packState(b, h, fromGroup, { ...run1, pos: pos1, snap: snap1 }, { ...run2, pos: pos2, snap: snap2 }, momentumState, state);
    return { y, state: out };
  });
}

/** One group's end state: running weights, the chunk-start snapshot and the position in the chunk. */
export interface GroupEnd {
  w1: tf.Tensor;
  w2: tf.Tensor;
  snap: { w1: tf.Tensor; w2: tf.Tensor };
  pos: number;
}

/**
 * The carried state after a call (both parameterisations): the phase-1 group (converted to [B, NM, H, p, q] by
 * `fromGroup`), M_mem ([B H, p, q] -> [B, H, p, q]), the clocks, and `extra` entries. Entries identical to an
 * entry of the input `state` (e.g. an unchanged snapshot) are cloned so the caller owns every result tensor.
 */
export function packState(
  b: number,
  h: number,
  fromGroup: (a: tf.Tensor) => tf.Tensor,
  g1: GroupEnd,
  mem: GroupEnd,
  extra: Record<string, tf.Tensor>,
  state: SmtState | null,
): Record<string, tf.Tensor> {
  const un2 = (a: tf.Tensor): tf.Tensor => a.reshape([b, h, a.shape[1] as number, a.shape[2] as number]);
  const out: Record<string, tf.Tensor> = {
    W1: fromGroup(g1.w1),
    W2: fromGroup(g1.w2),
    W1snap: fromGroup(g1.snap.w1),
    W2snap: fromGroup(g1.snap.w2),
    clock: tf.zeros([b, g1.pos]),
    memW1: un2(mem.w1),
    memW2: un2(mem.w2),
    memW1snap: un2(mem.snap.w1),
    memW2snap: un2(mem.snap.w2),
    memClock: tf.zeros([b, mem.pos]),
    ...extra,
  };
  for (const [key, val] of Object.entries(out)) if (state && Object.values(state).includes(val)) out[key] = val.clone();
  return out;
}

/**
 * NaN/Inf sentinel (one device sync per call): per memory, the first token whose values (reads of
 * k, v, eta, alpha, q; retrievals of M_mem) are not all finite. Throws naming layer, memory, token.
 */
export function sentinel(o: SmtOptions, checks: Array<[string, tf.Tensor[]]>, t: number): void {
  const flags = tf.tidy(() =>
    tf.stack(
      checks.map(([, parts]) => {
        // per chunk piece [B H, L, d] -> [L] finite flags, concatenated along the stream
        return tf.concat(parts.map((a) => tf.isFinite(a).all([0, 2]).cast('float32')), 0); // [T]
      }),
    ),
  ); // [checks, T]
  const v = flags.dataSync();
  flags.dispose();
  for (let i = 0; i < checks.length; i++) {
    for (let j = 0; j < t; j++) {
      if (v[i * t + j] !== 1) {
        throw new Error(
          `${o.layerName}: non-finite value (NaN or Inf) in memory '${checks[i][0]}' at token index ${j} of this call ` +
            `(gradientMode='${o.gradientMode}', normalize='${o.normalize}'); set sentinel: false to skip this check`,
        );
      }
    }
  }
}
