/**
 * The Continuum Memory System as pure functions (paper Section 7, Eqs. 70-74): explicit weights, state
 * and clocks in; outputs, new state and clocks out. NlContinuumMemorySystem (../layer.ts) is a thin tfjs
 * layer over these, and NestedTrainer drives the same functions through the layer's InContextLearner
 * hooks (accumulate = cmsAccumulate, apply = cmsApplyUpdates), with the clock rules of core/scheduler.ts
 * (levelsAtBoundary, levelsPending, segmentCuts) that cmsInContext uses too.
 *
 *   block_l(h) = act(h W1_l + b1_l) W2_l + b2_l                         (an MLP memory)
 *   sequential / nested:  h_0 = x,  h_{l+1} = h_l + block_l(h_l)          (Eq. 70; residual optional)
 *   independent:          y = x + sum_l a_l block_l(x)                    (Eq. 74; a = learned `mix`)
 *   in context (Eq. 71):  after token count n with n % C(l) == 0,
 *                         W_l <- W_l + eta(l) * transform_l(sum over the chunk of dL/dW_l)   (default -sum)
 *
 * State (one entry per sequence, batch axis first): 'L<l>/<w>' the fast copy of level l's weight w
 * (w1, b1, w2, b2), 'acc/L<l>/<w>' its pending gradient sum, 'opt/...' the level's transform state, and
 * for 'nested' (Eq. 72) 'L<l>/child/<w>' the initial state of level l+1 held by level l (+ 'acc/...').
 * Clocks are host numbers shared by every sequence of the batch (periods count tokens of the context).
 */
import * as tf from '@tensorflow/tfjs';
import {
  buildTransform,
  levelsAtBoundary,
  levelsPending,
  segmentCuts,
  type GradientTransform,
  type MemoryState,
  type NamedTensors,
} from '../../../core';
import type { CmsActivation, ResolvedCmsOptions } from '../config';

/** CMS memory state: fast weights 'L<l>/<w>' [B, ...], accumulators 'acc/...', transform state 'opt/...'. */
export type CmsState = MemoryState;

export const CMS_WEIGHTS = ['w1', 'b1', 'w2', 'b2'] as const;
export type CmsWeightName = (typeof CMS_WEIGHTS)[number];

/** One block's weights: shared [D, H] (the meta-learned initial weights) or per sequence [B, D, H]. */
export interface CmsBlockWeights {
  w1: tf.Tensor;
  b1: tf.Tensor | null;
  w2: tf.Tensor;
  b2: tf.Tensor | null;
}

/** The meta-learned parameters: each level's initial weights (frozen levels use them always) and, for
 * 'independent', the aggregation weights a [k] (Eq. 74). */
export interface CmsParams {
  levels: readonly CmsBlockWeights[];
  mix: tf.Tensor | null;
}

/** The resolved options plus each level's inner transform (built once). */
export interface CmsSpec extends ResolvedCmsOptions {
  transforms: ReadonlyArray<GradientTransform | null>;
}

/** Per-level clocks of one context: tokens seen, token count of each level's last update, updates fired. */
export interface CmsClocks {
  tokensSeen: number;
  lastUpdateAt: number[];
  updatesFired: number[];
}

/** Key of level l's fast weight `w` in the state. */
export const fastKey = (l: number, w: string): string => `L${l}/${w}`;
/** Key of the child initial state of level l+1 held by level l ('nested'). */
export const childKey = (l: number, w: string): string => `L${l}/child/${w}`;
export const accKey = (k: string): string => `acc/${k}`;
/** Where level l keeps its transform's state key k: per-parameter keys ('L0/w1::m') are unique already;
 * global keys ('::slot', e.g. DMGD's shared memory or a schedule's count) get the level: 'opt/L<l>::slot'. */
const levelOptKey = (l: number, k: string): string => (k.startsWith('::') ? `opt/L${l}${k}` : `opt/${k}`);

/** Builds the spec (and each level's transform) from resolved options. */
export function cmsSpec(opts: ResolvedCmsOptions, path = 'NlContinuumMemorySystem'): CmsSpec {
  return { ...opts, transforms: opts.levels.map((l, i) => (l.transform ? buildTransform(l.transform, `${path}.levels[${i}].transform`) : null)) };
}

export const cmsWeightNames = (s: ResolvedCmsOptions): CmsWeightName[] => (s.useBias ? [...CMS_WEIGHTS] : ['w1', 'w2']);
/** Level l learns in context (has a fast copy in the state). */
export const cmsLearns = (s: ResolvedCmsOptions, l: number): boolean => s.levels[l].period > 0;
/** Level l holds the child initial state of level l+1 ('nested' only). */
export const cmsHasChild = (s: ResolvedCmsOptions, l: number): boolean =>
  s.variant === 'nested' && l + 1 < s.levels.length && cmsLearns(s, l) && cmsLearns(s, l + 1);

/** Clocks of a fresh context. */
export const cmsFreshClocks = (s: ResolvedCmsOptions): CmsClocks => ({ tokensSeen: 0, lastUpdateAt: s.levels.map(() => 0), updatesFired: s.levels.map(() => 0) });

export function cmsActivate(x: tf.Tensor, a: CmsActivation): tf.Tensor {
  switch (a) {
    case 'gelu':
      return x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5); // exact GELU
    case 'relu':
      return tf.relu(x);
    case 'silu':
      return x.mul(tf.sigmoid(x));
    case 'tanh':
      return tf.tanh(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'linear':
      return x;
  }
}

/** One MLP block on h [B, T, D]; per-sequence weights use batched matmuls. */
function block(h: tf.Tensor, w: CmsBlockWeights, a: CmsActivation): tf.Tensor {
  const [b, t, d] = h.shape;
  if (w.w1.rank === 2) {
    // shared weights: 2-D matmuls (the fast path on wasm)
    let z = tf.matMul(h.reshape([b * t, d]) as tf.Tensor2D, w.w1 as tf.Tensor2D); // [B*T, H]
    if (w.b1) z = z.add(w.b1);
    let o = tf.matMul(cmsActivate(z, a) as tf.Tensor2D, w.w2 as tf.Tensor2D); // [B*T, D]
    if (w.b2) o = o.add(w.b2);
    return o.reshape([b, t, d]);
  }
  let z = tf.matMul(h as tf.Tensor3D, w.w1 as tf.Tensor3D); // [B, T, H]
  if (w.b1) z = z.add(w.b1.expandDims(1));
  let o = tf.matMul(cmsActivate(z, a) as tf.Tensor3D, w.w2 as tf.Tensor3D); // [B, T, D]
  if (w.b2) o = o.add(w.b2.expandDims(1));
  return o;
}

/** Weights of block l: the fast copy [B, ...] from `state` when the level learns, else the parameters. */
function blockWeights(s: ResolvedCmsOptions, params: CmsParams, l: number, state: CmsState | null): CmsBlockWeights {
  if (state === null || !cmsLearns(s, l)) return params.levels[l];
  const get = (w: CmsWeightName): tf.Tensor | null => (params.levels[l][w] ? state[fastKey(l, w)] : null);
  return { w1: get('w1')!, b1: get('b1'), w2: get('w2')!, b2: get('b2') };
}

/**
 * The CMS chain on x [B, T, D] with the weights constant over the T tokens (Eqs. 70, 74): the fast copies
 * of `state` for learning levels, `params` otherwise (state null: the frozen MLP chain). Differentiable in
 * x, the parameters and the state's fast weights. No update happens here.
 */
export function cmsForward(x: tf.Tensor, params: CmsParams, s: ResolvedCmsOptions, state: CmsState | null = null): tf.Tensor {
  const k = s.levels.length;
  if (s.variant === 'independent') {
    let y: tf.Tensor | null = s.residual ? x : null;
    for (let l = 0; l < k; l++) {
      const part = block(x, blockWeights(s, params, l, state), s.activation).mul(params.mix!.slice([l], [1])); // Eq. 74
      y = y ? y.add(part) : part;
    }
    return y!;
  }
  let h = x;
  for (let l = 0; l < k; l++) {
    const o = block(h, blockWeights(s, params, l, state), s.activation);
    h = s.residual ? h.add(o) : o; // Eq. 70 chain
  }
  return h;
}

/** Fresh context: every learning level's fast copy = its initial weights (tiled per sequence), zero accumulators. */
export function cmsInitialState(params: CmsParams, spec: CmsSpec, batchSize: number): CmsState {
  return tf.tidy(() => {
    const st: Record<string, tf.Tensor> = {};
    const tile = (t: tf.Tensor): tf.Tensor => tf.tile(t.expandDims(0), [batchSize, ...t.shape.map(() => 1)]); // [B, ...]
    for (let l = 0; l < spec.levels.length; l++) {
      if (!cmsLearns(spec, l)) continue;
      const fast: NamedTensors = {};
      for (const w of cmsWeightNames(spec)) {
        const k = fastKey(l, w);
        st[k] = fast[k] = tile(params.levels[l][w]!);
        st[accKey(k)] = tf.zerosLike(st[k]);
        if (cmsHasChild(spec, l)) {
          const ck = childKey(l, w);
          st[ck] = fast[ck] = tile(params.levels[l + 1][w]!);
          st[accKey(ck)] = tf.zerosLike(st[ck]);
        }
      }
      const tr = spec.transforms[l];
      if (tr) for (const [k, v] of Object.entries(tr.init(fast))) st[levelOptKey(l, k)] = v;
    }
    return st;
  });
}

/** State keys of the fast weights that receive task-loss gradients (every learning level's L<l>/<w>). */
export function cmsGradientKeys(s: ResolvedCmsOptions): string[] {
  return s.levels.flatMap((_, l) => (cmsLearns(s, l) ? cmsWeightNames(s).map((w) => fastKey(l, w)) : []));
}

/**
 * Adds one segment's task-loss gradients (key 'L<l>/<w>' -> [B, ...], summed over the segment's tokens)
 * to the pending accumulators; 'nested': level l's child accumulator gets what level l+1 saw (first
 * order). Every tensor of the result is new (the caller disposes `state`).
 */
export function cmsAccumulate(state: CmsState, grads: Readonly<Record<string, tf.Tensor>>): CmsState {
  return tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(state)) {
      if (!k.startsWith('acc/')) {
        out[k] = v.clone();
        continue;
      }
      const target = k.slice(4);
      const m = /^L(\d+)\/child\/(\w+)$/.exec(target);
      const g = grads[m ? fastKey(Number(m[1]) + 1, m[2]) : target];
      out[k] = g ? v.add(g) : v.clone();
    }
    return out;
  });
}

/**
 * Applies the pending updates of `firing` (level index -> its 1-based update count) and clears their
 * accumulators: W_l <- W_l + eta(l) * transform_l(acc) (default -eta(l) * acc, Eq. 71); 'nested': the
 * child initial state is updated with eta(l) too, then level l+1 restarts from it (accumulators and
 * transform state of level l+1 restart too, Eq. 72). Every tensor of the result is new.
 */
export function cmsApplyUpdates(state: CmsState, firing: ReadonlyMap<number, number>, spec: CmsSpec): CmsState {
  return tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {};
    const done = new Set<string>();
    const order = [...firing.keys()].sort((a, b) => a - b);
    const names = cmsWeightNames(spec);
    for (const l of order) {
      const keys = names.map((w) => fastKey(l, w));
      if (cmsHasChild(spec, l)) keys.push(...names.map((w) => childKey(l, w)));
      const params: NamedTensors = {};
      const grads: NamedTensors = {};
      for (const k of keys) {
        params[k] = state[k];
        grads[k] = state[accKey(k)];
      }
      const eta = spec.levels[l].learningRate;
      const tr = spec.transforms[l];
      const updates: NamedTensors = {};
      if (tr) {
        const optState: NamedTensors = {};
        for (const [k, v] of Object.entries(state)) {
          if (k.startsWith('opt/') && keys.some((p) => k.startsWith(`opt/${p}::`))) optState[k.slice(4)] = v;
          else if (k.startsWith(`opt/L${l}::`)) optState[k.slice(`opt/L${l}`.length)] = v; // the level's global state
        }
        const r = tr.update(grads, optState, params, firing.get(l)!);
        for (const k of keys) updates[k] = r.updates[k].mul(eta); // eta(l) * transform(sum of grads)
        for (const [k, v] of Object.entries(r.state)) {
          out[levelOptKey(l, k)] = v;
          done.add(levelOptKey(l, k));
        }
      } else {
        for (const k of keys) updates[k] = grads[k].mul(-eta); // Eq. 71: -eta(l) * sum over the chunk
      }
      for (const k of keys) {
        out[k] = params[k].add(updates[k]);
        out[accKey(k)] = tf.zerosLike(params[k]);
        done.add(k);
        done.add(accKey(k));
      }
    }
    // nested: after level l's update, level l+1 restarts from the (updated) child initial state.
    for (const l of order) {
      if (!cmsHasChild(spec, l)) continue;
      const fresh: NamedTensors = {};
      for (const w of names) {
        const k = fastKey(l + 1, w);
        out[k] = fresh[k] = out[childKey(l, w)].clone();
        out[accKey(k)] = tf.zerosLike(out[k]);
        done.add(k);
        done.add(accKey(k));
      }
      const tr = spec.transforms[l + 1];
      if (tr) {
        for (const [k, v] of Object.entries(tr.init(fresh))) {
          out[levelOptKey(l + 1, k)] = v;
          done.add(levelOptKey(l + 1, k));
        }
      }
    }
    for (const [k, v] of Object.entries(state)) if (!done.has(k)) out[k] = v.clone();
    return out;
  });
}

/** Fires `levels` at the clocks' current token count: advances their clocks, applies their updates. */
function fire(state: CmsState, clocks: CmsClocks, levels: readonly number[], spec: CmsSpec): { state: CmsState; clocks: CmsClocks } {
  if (levels.length === 0) return { state, clocks };
  const c: CmsClocks = { tokensSeen: clocks.tokensSeen, lastUpdateAt: [...clocks.lastUpdateAt], updatesFired: [...clocks.updatesFired] };
  const firing = new Map<number, number>();
  for (const l of levels) {
    c.updatesFired[l]++;
    c.lastUpdateAt[l] = c.tokensSeen;
    firing.set(l, c.updatesFired[l]);
  }
  const next = cmsApplyUpdates(state, firing, spec);
  tf.dispose(Object.values(state));
  return { state: next, clocks: c };
}

/** Per-token learning signal of a CMS on its own: output y [B, T, D] and targets [B, T, ...] -> [B, T]. */
export type CmsTokenLoss = (y: tf.Tensor, targets: tf.Tensor) => tf.Tensor;

export interface CmsInContextArgs {
  /** Inputs [B, T, D]. */
  x: tf.Tensor;
  /** Targets [B, T, ...] of the per-token loss. */
  targets: tf.Tensor;
  /** The task loss whose gradient the levels learn from (Eq. 71): sum over tokens of loss(y, targets). */
  loss: CmsTokenLoss;
  params: CmsParams;
  spec: CmsSpec;
  /** State at the start of the piece (null: a fresh context, cmsInitialState). Not disposed. */
  state: CmsState | null;
  /** Clocks at the start of the piece (null: a fresh context). */
  clocks: CmsClocks | null;
  /** Apply every non-empty pending chunk at the end of the piece (the 'flush' policy). Default false ('carry'). */
  flush?: boolean;
  /** Maximum segment length in tokens (default: the fastest period). Results do not depend on it. */
  segmentLength?: number;
}

export interface CmsInContextResult {
  /** Outputs [B, T, D]: token t is read with the weights of the last boundary before it. */
  y: tf.Tensor;
  /** Per-token losses [B, T]. */
  losses: tf.Tensor;
  state: CmsState;
  clocks: CmsClocks;
  /** Level indices updated, in order (boundaries, then flushes). */
  fired: number[];
}

/**
 * The CMS in context, on its own (Eq. 71): the piece is cut at every level boundary (segmentCuts); per
 * segment the chain runs with the current fast weights, one backward pass of the summed per-token loss
 * gives each learning level's gradient (summed over the segment's tokens, per sequence), it is added to
 * the accumulators, and the levels whose period divides the token count fire. Outputs and the new state
 * and clocks are returned (caller disposes y, losses and state); inputs are left alone.
 * The outputs are not differentiated through the updates (the state is a value at each boundary).
 */
export function cmsInContext(a: CmsInContextArgs): CmsInContextResult {
  const { x, targets, spec, params } = a;
  const [b, t] = x.shape;
  const periods = spec.levels.map((l) => l.period);
  let state = a.state ? tf.tidy(() => Object.fromEntries(Object.entries(a.state!).map(([k, v]) => [k, v.clone()]))) : cmsInitialState(params, spec, b);
  let clocks: CmsClocks = a.clocks ? { tokensSeen: a.clocks.tokensSeen, lastUpdateAt: [...a.clocks.lastUpdateAt], updatesFired: [...a.clocks.updatesFired] } : cmsFreshClocks(spec);
  const gradKeys = cmsGradientKeys(spec);
  const ys: tf.Tensor[] = [];
  const ls: tf.Tensor[] = [];
  const fired: number[] = [];
  const start = clocks.tokensSeen;
  const end = start + t;
  let at = start;
  for (const cut of segmentCuts(periods, start, end, a.segmentLength)) {
    const seg = tf.tidy(() => {
      const xs = x.slice([0, at - start], [-1, cut - at]); // [B, Tseg, D]
      const ts = targets.slice([0, at - start], [-1, cut - at]);
      const fastTensors = gradKeys.map((k) => state[k]);
      let y: tf.Tensor | null = null;
      let l: tf.Tensor | null = null;
      const f = (...fast: tf.Tensor[]): tf.Scalar => {
        const s2: Record<string, tf.Tensor> = { ...state };
        gradKeys.forEach((k, i) => (s2[k] = fast[i]));
        y = tf.keep(cmsForward(xs, params, spec, s2)); // kept: the gradient's forward scope disposes the rest
        l = tf.keep(a.loss(y, ts)); // [B, Tseg]
        return l.sum() as tf.Scalar;
      };
      const grads: Record<string, tf.Tensor> = {};
      if (gradKeys.length) {
        const gs = tf.grads(f)(fastTensors);
        gradKeys.forEach((k, i) => (grads[k] = gs[i]));
      } else f();
      return { y: y!, l: l!, next: cmsAccumulate(state, grads) };
    });
    ys.push(seg.y);
    ls.push(seg.l);
    tf.dispose(Object.values(state));
    state = seg.next;
    clocks = { ...clocks, tokensSeen: cut };
    const due = levelsAtBoundary(periods, cut);
    ({ state, clocks } = fire(state, clocks, due, spec));
    fired.push(...due);
    if (cut === end && a.flush) {
      const pending = levelsPending(periods, clocks.lastUpdateAt, cut);
      ({ state, clocks } = fire(state, clocks, pending, spec));
      fired.push(...pending);
    }
    at = cut;
  }
  const y = ys.length === 1 ? ys[0] : tf.concat(ys, 1);
  const losses = ls.length === 1 ? ls[0] : tf.concat(ls, 1);
  if (ys.length > 1) tf.dispose([...ys, ...ls]);
  return { y, losses, state, clocks, fired };
}
