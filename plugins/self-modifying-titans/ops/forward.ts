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
import { innerGradients, readMemory, type MemoryActivation } from './memory';
import { chunkedSegment, naiveSegment, type GroupWeights, type RecurrenceOptions, type SegmentWrites } from './recurrence';

export type MemoryName = 'k' | 'v' | 'eta' | 'alpha' | 'q';
export type NormalizeMode = 'l2' | 'none';
export const NORMALIZE_MODES: readonly NormalizeMode[] = ['l2', 'none'];
export type SmtImpl = 'naive' | 'chunked';
export const SMT_IMPLS: readonly SmtImpl[] = ['naive', 'chunked'];

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
}
export type SmtWeightName = keyof SmtWeights;

/**
 * Carried state, batch axis first. Memories in memoryNames() order on axis 1.
 * clock / memClock: [B, p], p = tokens since the last chunk boundary (values unused, only the width).
 */
export type SmtState = Readonly<Record<string, tf.Tensor>>;

export const L2_EPS = 1e-6;

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
    // rank-2 tile (tfjs 4.22 has no Tile gradient above rank 4)
    const tileB = (a: tf.Tensor): tf.Tensor => tf.tile(a.reshape([1, a.size]), [b, 1]).reshape([b, ...a.shape]);
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
function splitLens(a: tf.Tensor, lens: number[]): tf.Tensor[] {
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
function concatLens(parts: tf.Tensor[]): tf.Tensor {
  if (parts.length === 1) return parts[0];
  const mid = Math.floor(parts.length / 2);
  return tf.concat([concatLens(parts.slice(0, mid)), concatLens(parts.slice(mid))], 0);
}

function l2Normalize(a: tf.Tensor): tf.Tensor {
  return a.mul(tf.rsqrt(a.square().sum(-1, true).add(L2_EPS)));
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

    // ---- Phase 1: memories k, v, eta, alpha (q), chunk size o.chunkSize ----
    const n1 = b * nm * h;
    const flat1 = (a: tf.Tensor): tf.Tensor3D => a.reshape([n1, a.shape[3] as number, a.shape[4] as number]) as tf.Tensor3D;
    let run1: GroupWeights = { w1: flat1(s0.W1), w2: flat1(s0.W2) };
    if (o.momentum !== null) run1 = { ...run1, m1: flat1(s0.M1), m2: flat1(s0.M2) };
    let snap1 = { w1: flat1(s0.W1snap), w2: flat1(s0.W2snap) };
    const p1 = s0.clock.shape[1] as number;
    const lens1 = segmentLengths(t, o.chunkSize, p1);
    // [L, B, H, d] -> [B NM H, L, d]: every memory gets the same per-head input
    const tileMem = (a: tf.Tensor): tf.Tensor3D => {
      const [l, , , d] = a.shape;
      return tf.tile(a.transpose([1, 2, 0, 3]).reshape([b, 1, h * l * d]), [1, nm, 1]).reshape([n1, l, d]) as tf.Tensor3D; // rank-3 tile (no rank-5 Tile gradient)
    };
    const tileMemScalar = (a: tf.Tensor): tf.Tensor2D => {
      const l = a.shape[0]; // a [L, B, H]
      return tf.tile(a.transpose([1, 2, 0]).reshape([b, 1, h * l]), [1, nm, 1]).reshape([n1, l]) as tf.Tensor2D;
    };
    const etaBias = w.etaBias.reshape([1, 1, h]);
    const alphaBias = w.alphaBias ? w.alphaBias.reshape([1, 1, h]) : null;
    const xSegs = splitLens(xh, lens1);
    const qSegs = qFixed ? splitLens(qFixed, lens1) : null;
    const kSegs = kFixed ? splitLens(kFixed, lens1) : null;
    const vSegs = vFixed ? splitLens(vFixed, lens1) : null;
    const outK: tf.Tensor[] = [];
    const outV: tf.Tensor[] = [];
    const outEta: tf.Tensor[] = [];
    const outLogA: tf.Tensor[] = [];
    const outQ: tf.Tensor[] = [];
    const perTokenChecks: Array<[string, tf.Tensor[]]> = [];
    const readChecks: Record<string, tf.Tensor[]> = {};
    for (const nmName of names) readChecks[nmName] = [];
    let pos1 = p1;
    lens1.forEach((l, i) => {
      // reads of the chunk-start snapshot (Eq. 90): [B NM H, L, dh] -> [L, B, NM, H, dh]
      const read = readMemory(o.act, snap1.w1, snap1.w2, tileMem(xSegs[i])).out.reshape([b, nm, h, l, dh]).transpose([3, 0, 1, 2, 4]);
      const pick = (name: MemoryName): tf.Tensor => {
        const j = names.indexOf(name);
        return read.slice([0, 0, j, 0, 0], [l, b, 1, h, dh]).reshape([l, b, h, dh]); // [L, B, H, dh]
      };
      for (const nmName of names) readChecks[nmName].push(pick(nmName));
      const k = norm(kSegs ? kSegs[i] : pick('k')); // [L, B, H, dh]
      const v = norm(vSegs ? vSegs[i] : pick('v'));
      const eta = tf.sigmoid(pick('eta').mean(-1).add(etaBias)).mul(o.etaMax); // [L, B, H]
      const logAlpha = alphaBias
        ? tf.log(tf.sigmoid(pick('alpha').mean(-1).add(alphaBias)).mul(1 - o.alphaMin).add(o.alphaMin))
        : tf.zeros([l, b, h]); // [L, B, H], <= 0
      const q = qSegs ? qSegs[i] : norm(pick('q'));
      outK.push(k);
      outV.push(v);
      outEta.push(eta);
      outLogA.push(logAlpha);
      outQ.push(q);
      // self-generated targets and inner gradients of every memory at the snapshot (Eqs. 84-85)
      const kt = tileMem(k);
      const vhat = readMemory(o.act, snap1.w1, snap1.w2, tileMem(v)).out;
      const g = innerGradients(o.act, o.innerLoss, snap1.w1, snap1.w2, kt, vhat, o.gradClip);
      const etaT = tileMemScalar(eta);
      const wr: SegmentWrites = {
        k: stop(kt),
        h: stop(g.h),
        y2: stop(g.u.mul(etaT.expandDims(2)).neg() as tf.Tensor3D),
        y1: stop(g.e.mul(etaT.expandDims(2)).neg() as tf.Tensor3D),
        eta: stop(etaT),
        logAlpha: stop(tileMemScalar(logAlpha)),
      };
      run1 = recur(run1, wr, ropts).state;
      pos1 = (pos1 + l) % o.chunkSize;
      if (pos1 === 0) snap1 = { w1: run1.w1, w2: run1.w2 }; // chunk boundary: next chunk reads this state
    });
    for (const nmName of names) perTokenChecks.push([nmName, readChecks[nmName]]);

    // ---- Phase 2: M_mem, chunk size o.memChunkSize, reads o_t = M_mem,t(q_t) ----
    const n2 = b * h;
    const flat2 = (a: tf.Tensor): tf.Tensor3D => a.reshape([n2, a.shape[2] as number, a.shape[3] as number]) as tf.Tensor3D;
    let run2: GroupWeights = { w1: flat2(s0.memW1), w2: flat2(s0.memW2) };
    if (o.momentum !== null) run2 = { ...run2, m1: flat2(s0.memM1), m2: flat2(s0.memM2) };
    let snap2 = { w1: flat2(s0.memW1snap), w2: flat2(s0.memW2snap) };
    const p2 = s0.memClock.shape[1] as number;
    const lens2 = segmentLengths(t, o.memChunkSize, p2);
    const same = lens2.length === lens1.length && lens2.every((l, i) => l === lens1[i]);
    const resplit = (parts: tf.Tensor[]): tf.Tensor[] => (same ? parts : splitLens(concatLens(parts), lens2));
    const k2 = resplit(outK);
    const v2 = resplit(outV);
    const eta2 = resplit(outEta);
    const logA2 = resplit(outLogA);
    const q2 = resplit(outQ);
    const heads3 = (a: tf.Tensor): tf.Tensor3D => {
      const [l, , , d] = a.shape; // [L, B, H, d] -> [B H, L, d]
      return a.transpose([1, 2, 0, 3]).reshape([n2, l, d]) as tf.Tensor3D;
    };
    const heads2 = (a: tf.Tensor): tf.Tensor2D => a.transpose([1, 2, 0]).reshape([n2, a.shape[0]]) as tf.Tensor2D;
    const outO: tf.Tensor[] = [];
    let pos2 = p2;
    lens2.forEach((l, i) => {
      const k = heads3(k2[i]);
      const vhat = readMemory(o.act, snap2.w1, snap2.w2, heads3(v2[i])).out;
      const g = innerGradients(o.act, o.innerLoss, snap2.w1, snap2.w2, k, vhat, o.gradClip);
      const eta = heads2(eta2[i]);
      const wr: SegmentWrites = {
        k: stop(k),
        h: stop(g.h),
        y2: stop(g.u.mul(eta.expandDims(2)).neg() as tf.Tensor3D),
        y1: stop(g.e.mul(eta.expandDims(2)).neg() as tf.Tensor3D),
        eta: stop(eta),
        logAlpha: stop(heads2(logA2[i])),
        q: heads3(q2[i]),
      };
      const r = recur(run2, wr, ropts);
      run2 = r.state;
      outO.push((r.o as tf.Tensor3D).reshape([b, h, l, dh]).transpose([2, 0, 1, 3])); // [L, B, H, dh]
      pos2 = (pos2 + l) % o.memChunkSize;
      if (pos2 === 0) snap2 = { w1: run2.w1, w2: run2.w2 };
    });
    perTokenChecks.push(['mem', outO]);

    const oAll = concatLens(outO); // [T, B, H, dh]
    const y = tf.matMul(oAll.transpose([1, 0, 2, 3]).reshape([b * t, dm]) as tf.Tensor2D, w.outKernel as tf.Tensor2D).reshape([b, t, dm]) as tf.Tensor3D;

    if (o.sentinel) sentinel(o, perTokenChecks, t);

    const un1 = (a: tf.Tensor): tf.Tensor => a.reshape([b, nm, h, a.shape[1] as number, a.shape[2] as number]);
    const un2 = (a: tf.Tensor): tf.Tensor => a.reshape([b, h, a.shape[1] as number, a.shape[2] as number]);
    const out: Record<string, tf.Tensor> = {
      W1: un1(run1.w1),
      W2: un1(run1.w2),
      W1snap: un1(snap1.w1),
      W2snap: un1(snap1.w2),
      clock: tf.zeros([b, pos1]),
      memW1: un2(run2.w1),
      memW2: un2(run2.w2),
      memW1snap: un2(snap2.w1),
      memW2snap: un2(snap2.w2),
      memClock: tf.zeros([b, pos2]),
    };
    if (o.momentum !== null) {
      out.M1 = un1(run1.m1 as tf.Tensor);
      out.M2 = un1(run1.m2 as tf.Tensor);
      out.memM1 = un2(run2.m1 as tf.Tensor);
      out.memM2 = un2(run2.m2 as tf.Tensor);
    }
    // identity-preserving entries (e.g. an unchanged snapshot) must still be new tensors for the caller
    for (const [key, val] of Object.entries(out)) if (state && Object.values(state).includes(val)) out[key] = val.clone();
    return { y, state: out };
  });
}

/**
 * NaN/Inf sentinel (one device sync per call): per memory, the first token whose values (reads of
 * k, v, eta, alpha, q; retrievals of M_mem) are not all finite. Throws naming layer, memory, token.
 */
function sentinel(o: SmtOptions, checks: Array<[string, tf.Tensor[]]>, t: number): void {
  const flags = tf.tidy(() =>
    tf.stack(
      checks.map(([, parts]) => {
        const a = concatLens(parts); // [T, ...]
        return tf.isFinite(a).all([...Array(a.rank).keys()].slice(1)).cast('float32'); // [T]
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
