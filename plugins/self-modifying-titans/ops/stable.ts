/**
 * The 'stable' parameterisation of self-modifying Titans (the default; docs/paper-map.md, README.md
 * "Parameterisations"). Same memories, targets and chunking as the paper form (Eqs. 83-90), with the
 * choices the paper leaves open made so that the in-context memory is as strong as a delta-rule
 * memory at initialisation and bounded:
 *
 * Per head (D = H dh), token t, memory box with MLP M(x) = x + W1 hn(W2 x) (Eq. 89, hidden features
 * L2-normalised: hn(z) = phi(z) / |phi(z)|):
 *   inputs   x^_k = l2(x W_k), x^_v = l2(x W_v), x^_q = l2(x W_q), x^ = l2(x) (eta, alpha)
 *   k = l2(M_k(x^_k)), v = l2(M_v(x^_v))          (static k / v: k = x^_k, v = x^_v)      Eq. 83
 *   q = x^_q (adaptiveQ: l2(M_q(x^_q)))
 *   beta  = etaMax sigmoid(mean(M_eta(x^)) + b_eta)                in (0, etaMax), etaMax <= 2
 *   alpha = alphaMin + (1 - alphaMin) sigmoid(mean(M_alpha(x^)) + b_alpha)
 *   targets v^_box = l2(M_box(v))                                   (Eq. 84, normalised)
 *   W1 (output matrix): an exact gated delta rule on the normalised hidden feature h = hn(W2 k):
 *     W1_t = W1_{t-1} (alpha_t I - b1_t h_t h_t^T) + b1_t (v^_t - k_t) h_t^T       (Eqs. 85, 88)
 *     which is one GD step on 1/2 |M(k_t) - v^_t|^2 w.r.t. W1 at the RUNNING W1 (so it is not added
 *     again as a gradient), b1 = beta for M_mem, slowRate beta for the other memories;
 *   W2 (hidden matrix): decayed GD on the same loss at the chunk-start state (Eq. 90), no erase term:
 *     W2_t = alpha_t W2_{t-1} - b2_t u_t k_t^T,  u = dL/d(W2 k), b2 = slowRate beta
 *     (Decision: DGD's (alpha I - eta x x^T) factor, Eq. 57, is the exact L2 gradient of the matrix whose
 *     output is regressed with a normalised input -- here W1 with input h; on W2 it would erase W2 k,
 *     the key's own hidden feature, at every write.)
 *   read     o_t = q_t + W1_t hn(W2_t q_t) after token t's write (M_mem)
 *   output   y = (RMSNorm_head(o) * g  o  sigmoid(x W_gate)) W_o
 * dgd = false replaces W1's in-chunk erase by plain decayed GD at the chunk-start gradient
 * (W1_t = alpha_t W1_{t-1} - b1_t e_t h_t^T with e = M(k) - v^ at the chunk start).
 * With |h| = |k| = 1 and b in (0, 2), (alpha I - b h h^T) is a non-expansion, and |v^ - k| <= 2 bounds
 * what a write adds: the memory cannot grow without bound on any stream. Momentum is not part of this
 * form (config validation refuses it): the W1 write is already an exact in-context solve.
 *
 * Every matrix follows the same rank-1 recurrence W_t = alpha_t W_{t-1} + b_t (r_t - [exact] W_{t-1} x_t) x_t^T,
 * computed token by token (naiveDelta, ground truth) or chunk-parallel (chunkedDelta, WY/UT form).
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../../../core/ops/stop-gradient';
import { checkpoint } from '../../../core/ops/checkpoint';
import { wyInverse } from '../../../core/ops/tril-inverse';
import { activate, activateGrad, l2Normalize, L2_EPS, type MemoryActivation } from './memory';
import type { MemoryName, SmtOptions, SmtState, SmtWeights, packState } from './forward';

const l2 = l2Normalize;

/** One rank-1 recurrence over a segment, for N independent matrices. */
export interface DeltaInputs {
  w0: tf.Tensor3D; // [N, out, in] state before the segment
  x: tf.Tensor3D; // write keys [N, L, in]
  r: tf.Tensor3D; // exact: targets of W x; plain: write directions c [N, L, out]
  b: tf.Tensor2D; // step sizes [N, L]
  logAlpha: tf.Tensor2D; // [N, L], <= 0
  q?: tf.Tensor3D; // read queries [N, L, in]: returns W_t q_t (after token t's write)
  exact: boolean; // true: W_t = W_{t-1}(alpha I - b x x^T) + b r x^T; false: W_t = alpha W_{t-1} + b r x^T
}
export interface DeltaResult {
  w: tf.Tensor3D; // [N, out, in]
  read?: tf.Tensor3D; // [N, L, out]
}

/** Token-by-token ground truth of the rank-1 recurrence. */
export function naiveDelta(a: DeltaInputs): DeltaResult {
  return tf.tidy(() => {
    const [n, l] = a.b.shape;
    const alpha = tf.exp(a.logAlpha);
    let w = a.w0 as tf.Tensor3D;
    const reads: tf.Tensor[] = [];
    const row = (t3: tf.Tensor3D, t: number): tf.Tensor3D => t3.slice([0, t, 0], [n, 1, t3.shape[2]]) as tf.Tensor3D; // [N, 1, d]
    for (let t = 0; t < l; t++) {
      const xt = row(a.x, t);
      const bt = a.b.slice([0, t], [n, 1]).reshape([n, 1, 1]);
      const at = alpha.slice([0, t], [n, 1]).reshape([n, 1, 1]);
      let rt: tf.Tensor = row(a.r, t); // [N, 1, out]
      if (a.exact) rt = rt.sub(tf.matMul(xt, w, false, true)); // r_t - W_{t-1} x_t
      w = w.mul(at).add(tf.matMul(rt.mul(bt) as tf.Tensor3D, xt, true, false)) as tf.Tensor3D; // + b (.) x^T
      if (a.q) reads.push(tf.matMul(row(a.q, t), w, false, true)); // W_t q_t, [N, 1, out]
    }
    const res: DeltaResult = { w };
    if (a.q) res.read = tf.concat(reads, 1) as tf.Tensor3D;
    return res as unknown as tf.TensorContainer;
  }) as unknown as DeltaResult;
}

function lowerMask(l: number, strict: boolean): tf.Tensor2D {
  const m = new Float32Array(l * l);
  for (let t = 0; t < l; t++) for (let s = 0; s <= (strict ? t - 1 : t); s++) m[t * l + s] = 1;
  return tf.tensor2d(m, [l, l]);
}

/**
 * Chunk-parallel form of naiveDelta. With g_t = sum_{s<=t} log alpha_s, gamma_t = exp(g_t),
 * Gam_ts = exp(g_t - g_s) (t >= s) and write vectors U (W_t = gamma_t W_0 + sum_{s<=t} Gam_ts U_s x_s^T):
 *   exact: U_t = b_t (r_t - W_{t-1} x_t) -> (I + strict(diag(b / alpha)(Gam o X X^T))) U = diag(b)(R - gamma' o X W_0^T),
 *          gamma'_t = gamma_t / alpha_t (the WY/UT system of the delta rule, solved by wyInverse);
 *   plain: U = diag(b) R.
 * End state W_L = gamma_L W_0 + U^T diag(Gam_L) X; reads W_t q_t = gamma_t W_0 q_t + ((Gam o Q X^T) U)_t.
 */
export function chunkedDelta(a: DeltaInputs): DeltaResult {
  return tf.tidy(() => {
    const [n, l] = a.b.shape;
    const g = tf.cumsum(a.logAlpha, 1); // [N, L]
    const gamma = tf.exp(g).expandDims(2); // [N, L, 1]
    const gL = g.slice([0, l - 1], [n, 1]); // [N, 1]
    const gamLast = tf.exp(gL.sub(g)).expandDims(2); // Gam_{L,s}, [N, L, 1]
    const bb = a.b.expandDims(2); // [N, L, 1]
    let u: tf.Tensor;
    if (a.exact) {
      const gammaPrev = tf.exp(g.sub(a.logAlpha)).expandDims(2); // gamma_{t-1}
      const rhs = a.r.sub(tf.matMul(a.x, a.w0, false, true).mul(gammaPrev)).mul(bb); // [N, L, out]
      const tInv = wyInverse(a.x, a.b.mul(tf.exp(a.logAlpha.neg())) as tf.Tensor2D, g as tf.Tensor2D, 'blocked');
      u = tf.matMul(tInv, rhs as tf.Tensor3D);
    } else {
      u = a.r.mul(bb);
    }
    const w = a.w0.mul(tf.exp(gL).reshape([n, 1, 1])).add(tf.matMul(u.mul(gamLast) as tf.Tensor3D, a.x, true, false)) as tf.Tensor3D;
    const res: DeltaResult = { w };
    if (a.q) {
      const lower = lowerMask(l, false);
      const gam = tf.exp(g.expandDims(2).sub(g.expandDims(1)).mul(lower)).mul(lower); // [N, L, L]
      const qx = tf.matMul(a.q, a.x, false, true); // [N, L, L]
      res.read = tf.matMul(a.q, a.w0, false, true).mul(gamma).add(tf.matMul(gam.mul(qx) as tf.Tensor3D, u as tf.Tensor3D)) as tf.Tensor3D;
    }
    return res as unknown as tf.TensorContainer;
  }) as unknown as DeltaResult;
}

/** A memory read with normalised hidden features: out = x + W1 hn(W2 x). x [N, L, dh]. */
interface StableRead {
  out: tf.Tensor3D; // [N, L, dh]
  z: tf.Tensor3D; // W2 x, [N, L, dhid]
  p: tf.Tensor3D; // phi(z)
  inv: tf.Tensor3D; // 1 / |phi(z)|, [N, L, 1]
  h: tf.Tensor3D; // hn(z) = p * inv
}
function readStable(act: MemoryActivation, w1: tf.Tensor3D, w2: tf.Tensor3D, x: tf.Tensor3D): StableRead {
  const z = tf.matMul(x, w2, false, true) as tf.Tensor3D;
  const p = activate(act, z) as tf.Tensor3D;
  const inv = tf.rsqrt(p.square().sum(-1, true).add(L2_EPS)) as tf.Tensor3D; // 1 / |phi(z)| (also needed by the W2 gradient)
  const h = p.mul(inv) as tf.Tensor3D;
  return { out: x.add(tf.matMul(h, w1, false, true)) as tf.Tensor3D, z, p, inv, h };
}

/** Normalised hidden feature hn(W2 q) of queries q [N, L, dh] (not the memory output). */
function hiddenOf(act: MemoryActivation, z: tf.Tensor): tf.Tensor3D {
  return l2Normalize(activate(act, z)) as tf.Tensor3D;
}

/**
 * Writes of memories (W1 [N, dh, dhid], W2 [N, dhid, dh], chunk-start snapshot sW1, sW2) at keys k and
 * targets l2(M(v)) over one segment: returns the end state (and M_mem's reads at q).
 * Inner loss 1/2 |M(k) - v^|^2; e = M(k) - v^ at the snapshot;
 * u = dL/dz = ((I - h h^T) W1^T e / |phi(z)|) o phi'(z), clipped to |u| <= clip.
 */
export function stableSegment(
  o: StableOptions,
  w1: tf.Tensor3D,
  w2: tf.Tensor3D,
  sw1: tf.Tensor3D,
  sw2: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  b1: tf.Tensor2D,
  b2: tf.Tensor2D,
  logAlpha: tf.Tensor2D,
  q: tf.Tensor3D | null,
): { w1: tf.Tensor3D; w2: tf.Tensor3D; o?: tf.Tensor3D } {
  const stop = <T extends tf.Tensor>(a: T): T => (o.gradientMode === 'stop' ? stopGradient(a) : a);
  const rk = readStable(o.act, sw1, sw2, k);
  const vhat = l2(readStable(o.act, sw1, sw2, v).out) as tf.Tensor3D; // Eq. 84, normalised
  const e = rk.out.sub(vhat) as tf.Tensor3D; // [N, L, dh]
  const gh = tf.matMul(e, sw1); // W1^T e, [N, L, dhid]
  let u = gh.sub(rk.h.mul(rk.h.mul(gh).sum(-1, true))).mul(rk.inv).mul(activateGrad(o.act, rk.z)) as tf.Tensor3D;
  if (o.gradClip !== null) u = u.mul(tf.minimum(1, tf.scalar(o.gradClip).mul(tf.rsqrt(u.square().sum(-1, true).add(1e-12))))) as tf.Tensor3D;
  const recur = o.impl === 'naive' ? naiveDelta : chunkedDelta;
  const la = stop(logAlpha);
  // W2: plain decayed GD at the chunk-start gradient (no erase term: DGD's factor belongs to the matrix whose output is regressed, W1)
  const r2 = recur({ w0: w2, x: stop(k), r: stop(u.neg() as tf.Tensor3D), b: stop(b2), logAlpha: la, exact: false, ...(q ? { q } : {}) });
  // W1: exact delta rule towards v^ - k (W1 h -> v^ - k makes M(k) = v^), or the plain chunk-start gradient
  const r1target = o.dgd ? vhat.sub(k) : e.neg();
  const hq = q ? hiddenOf(o.act, r2.read as tf.Tensor3D) : null;
  const r1 = recur({ w0: w1, x: stop(rk.h), r: stop(r1target as tf.Tensor3D), b: stop(b1), logAlpha: la, exact: o.dgd, ...(hq ? { q: hq } : {}) });
  const res: { w1: tf.Tensor3D; w2: tf.Tensor3D; o?: tf.Tensor3D } = { w1: r1.w, w2: r2.w };
  if (q) res.o = q.add(r1.read as tf.Tensor3D) as tf.Tensor3D; // M_mem(q) = q + W1 hn(W2 q) (Eq. 89)
  return res;
}

type StableOptions = Pick<SmtOptions, 'act' | 'gradClip' | 'impl' | 'dgd' | 'gradientMode'>;

/** Helpers of the mixer shared with forward.ts (passed in to avoid an import cycle). */
export interface StableHelpers {
  memoryNames: (o: SmtOptions) => MemoryName[];
  initialState: (o: SmtOptions, w: SmtWeights, b: number) => SmtState;
  segmentLengths: (t: number, c: number, p: number) => number[];
  splitLens: (a: tf.Tensor, lens: number[]) => tf.Tensor[];
  concatLens: (parts: tf.Tensor[]) => tf.Tensor;
  sentinel: (o: SmtOptions, checks: Array<[string, tf.Tensor[]]>, t: number) => void;
  packState: typeof packState;
}

/** The stable mixer: x [B, T, D] and a state -> y [B, T, D] and the state after the last token. */
export function stableForward(o: SmtOptions, w: SmtWeights, x: tf.Tensor, state: SmtState | null, hp: StableHelpers): { y: tf.Tensor3D; state: SmtState } {
  return tf.tidy(() => {
    const [b, t, dm] = x.shape as [number, number, number];
    const { numHeads: h, headDim: dh } = o;
    const names = hp.memoryNames(o);
    const nm = names.length;
    const n2 = b * h;
    const n1 = nm * n2;
    const s0 = state ?? hp.initialState(o, w, b);
    const req = (name: keyof SmtWeights): tf.Tensor => {
      const a = w[name];
      if (!a) throw new Error(`${o.layerName}: weight '${name}' is required by parameterization 'stable'`);
      return a;
    };

    // ---- inputs: time-major [T, B, H, dh] ----
    const x2 = x.reshape([b * t, dm]) as tf.Tensor2D;
    const heads = (a2: tf.Tensor): tf.Tensor => a2.reshape([b, t, h, dh]).transpose([1, 0, 2, 3]);
    const proj = (name: keyof SmtWeights): tf.Tensor => l2(heads(tf.matMul(x2, req(name) as tf.Tensor2D)));
    const xk = proj('kKernel');
    const xv = proj('vKernel');
    const xq = proj('qKernel');
    const xr = l2(heads(x2)); // eta / alpha memories read the raw input
    const inputOf: Record<MemoryName, tf.Tensor> = { k: xk, v: xv, q: xq, eta: xr, alpha: xr };
    const memIn = tf.stack(names.map((nmName) => inputOf[nmName]), 1); // [T, NM, B, H, dh]
    // per chunk: [L, NM, B, H, d] -> [NM B H, L, d] (memory-major) and [L, B, H, d] -> [B H, L, d]
    const mm = (a: tf.Tensor): tf.Tensor3D => a.transpose([1, 2, 3, 0, 4]).reshape([n1, a.shape[0], dh]) as tf.Tensor3D;
    const hm = (a: tf.Tensor): tf.Tensor3D => a.transpose([1, 2, 0, 3]).reshape([n2, a.shape[0], a.shape[3] as number]) as tf.Tensor3D;
    const tm = (a: tf.Tensor): tf.Tensor => a.reshape([b, h, a.shape[1] as number, a.shape[2] as number]).transpose([2, 0, 1, 3]); // [B H, L, d] -> [L, B, H, d]
    const tileMem = (a: tf.Tensor): tf.Tensor => (nm === 1 ? a : tf.concat(new Array<tf.Tensor>(nm).fill(a), 0));
    const perHead = (a: tf.Tensor, bias: tf.Tensor): tf.Tensor2D => {
      const l = a.shape[1] as number; // [B H, L] + bias [H]
      return a.reshape([b, h, l]).add(bias.reshape([1, h, 1])).reshape([n2, l]) as tf.Tensor2D;
    };
    const ckpt = o.checkpoint ?? true;
    const run = (fn: (xs: tf.Tensor[]) => tf.Tensor[], xs: tf.Tensor[]): tf.Tensor[] => (ckpt ? checkpoint(fn, xs) : fn(xs));
    const flat = (a: tf.Tensor): tf.Tensor3D => a.reshape([-1, a.shape[a.rank - 2], a.shape[a.rank - 1]]) as tf.Tensor3D;
    // state [B, NM, H, p, q] <-> memory-major [NM B H, p, q]
    const toGroup = (a: tf.Tensor): tf.Tensor3D => {
      const [p, q] = a.shape.slice(3) as [number, number];
      return a.reshape([b, nm, h * p * q]).transpose([1, 0, 2]).reshape([n1, p, q]) as tf.Tensor3D;
    };
    const fromGroup = (a: tf.Tensor): tf.Tensor => {
      const [, p, q] = a.shape;
      return a.reshape([nm, b, h * p * q]).transpose([1, 0, 2]).reshape([b, nm, h, p, q]);
    };

    // ---- Phase 1: memories k, v, eta, alpha (q), chunks of o.chunkSize (Eq. 90) ----
    // Merged (chunkSize == memChunkSize, clocks in step): M_mem's writes at chunk i use the k, v, rates
    // read at chunk i's start, so they run in the same segment call as the phase-1 memories (its rows
    // appended to the group, step beta instead of slowRate beta); one loop instead of two, same values.
    let run1 = { w1: toGroup(s0.W1), w2: toGroup(s0.W2) };
    let snap1 = { w1: toGroup(s0.W1snap), w2: toGroup(s0.W2snap) };
    const p1 = s0.clock.shape[1] as number;
    const p2 = s0.memClock.shape[1] as number;
    const merged = (o.mergePhases ?? true) && o.chunkSize === o.memChunkSize && p1 === p2;
    let run2 = { w1: flat(s0.memW1), w2: flat(s0.memW2) };
    let snap2 = { w1: flat(s0.memW1snap), w2: flat(s0.memW2snap) };
    const lens1 = hp.segmentLengths(t, o.chunkSize, p1);
    const inSegs = hp.splitLens(memIn, lens1);
    const kSegs = hp.splitLens(xk, lens1);
    const vSegs = hp.splitLens(xv, lens1);
    const qSegs = hp.splitLens(xq, lens1);
    const outs: Record<'k' | 'v' | 'beta' | 'logA' | 'q', tf.Tensor[]> = { k: [], v: [], beta: [], logA: [], q: [] };
    const outO: tf.Tensor[] = [];
    const checks: Record<string, tf.Tensor[]> = {};
    for (const nmName of names) checks[nmName] = [];
    let pos1 = p1;
    const both = (a: tf.Tensor, bm: tf.Tensor): tf.Tensor => tf.concat([a, bm], 0); // [N1 + N2, ...]
    const split2 = (a: tf.Tensor): tf.Tensor[] => tf.split(a, [n1, n2], 0);
    lens1.forEach((l, i) => {
      const xs = [run1.w1, run1.w2, snap1.w1, snap1.w2, mm(inSegs[i]), hm(kSegs[i]), hm(vSegs[i]), hm(qSegs[i]), req('etaBias'), ...(o.weightDecay ? [req('alphaBias')] : [])];
      const nIn = xs.length;
      if (merged) xs.push(run2.w1, run2.w2, snap2.w1, snap2.w2);
      const res = run((a: tf.Tensor[]): tf.Tensor[] => {
        const [w1, w2, sw1, sw2, xin, kIn, vIn, qIn, etaBias] = a as tf.Tensor3D[];
        const alphaBias = o.weightDecay ? a[9] : null;
        const read = readStable(o.act, sw1, sw2, xin).out; // [NM B H, L, dh] at the chunk start (Eq. 90)
        const parts = nm === 1 ? [read] : tf.split(read, nm, 0);
        const pick = (name: MemoryName): tf.Tensor3D => parts[names.indexOf(name)] as tf.Tensor3D;
        const k = (o.staticK ? kIn : l2(pick('k'))) as tf.Tensor3D; // [B H, L, dh]
        const v = (o.staticV ? vIn : l2(pick('v'))) as tf.Tensor3D;
        const q = (o.adaptiveQ ? l2(pick('q')) : qIn) as tf.Tensor3D;
        const beta = tf.sigmoid(perHead(pick('eta').mean(-1), etaBias)).mul(o.etaMax) as tf.Tensor2D; // [B H, L]
        const logA = (alphaBias
          ? tf.log(tf.sigmoid(perHead(pick('alpha').mean(-1), alphaBias)).mul(1 - o.alphaMin).add(o.alphaMin))
          : tf.zeros([n2, l])) as tf.Tensor2D;
        const bSlow = tileMem(beta.mul(o.slowRate)) as tf.Tensor2D; // every phase-1 matrix learns at slowRate beta
        const checkOut = o.sentinel ? names.map(pick) : [];
        if (!merged) {
          const next = stableSegment(o, w1, w2, sw1, sw2, tileMem(k) as tf.Tensor3D, tileMem(v) as tf.Tensor3D, bSlow, bSlow, tileMem(logA) as tf.Tensor2D, null);
          return [next.w1, next.w2, k, v, beta, logA, q, ...checkOut];
        }
        const [mw1, mw2, msw1, msw2] = a.slice(nIn) as tf.Tensor3D[];
        // group rows: [phase-1 memories (N1) ; M_mem (N2)]; reads at q are kept for the M_mem rows only
        const r = stableSegment(
          o, both(w1, mw1) as tf.Tensor3D, both(w2, mw2) as tf.Tensor3D, both(sw1, msw1) as tf.Tensor3D, both(sw2, msw2) as tf.Tensor3D,
          tf.concat(new Array<tf.Tensor>(nm + 1).fill(k), 0) as tf.Tensor3D, tf.concat(new Array<tf.Tensor>(nm + 1).fill(v), 0) as tf.Tensor3D,
          both(bSlow, beta) as tf.Tensor2D, tf.concat(new Array<tf.Tensor>(nm + 1).fill(beta.mul(o.slowRate)), 0) as tf.Tensor2D,
          tf.concat(new Array<tf.Tensor>(nm + 1).fill(logA), 0) as tf.Tensor2D, tf.concat(new Array<tf.Tensor>(nm + 1).fill(q), 0) as tf.Tensor3D,
        );
        const [nw1, nmw1] = split2(r.w1);
        const [nw2, nmw2] = split2(r.w2);
        return [nw1, nw2, nmw1, nmw2, split2(r.o as tf.Tensor)[1], ...checkOut];
      }, xs);
      run1 = { w1: res[0] as tf.Tensor3D, w2: res[1] as tf.Tensor3D };
      const nOut = merged ? 5 : 7;
      if (merged) {
        run2 = { w1: res[2] as tf.Tensor3D, w2: res[3] as tf.Tensor3D };
        outO.push(res[4]);
      } else {
        outs.k.push(res[2]);
        outs.v.push(res[3]);
        outs.beta.push(res[4]);
        outs.logA.push(res[5]);
        outs.q.push(res[6]);
      }
      if (o.sentinel) names.forEach((nmName, j) => checks[nmName].push(res[nOut + j]));
      pos1 = (pos1 + l) % o.chunkSize;
      if (pos1 === 0) {
        snap1 = run1; // chunk boundary: the next chunk reads this state
        if (merged) snap2 = run2;
      }
    });

    // ---- Phase 2 (not merged): M_mem, chunks of o.memChunkSize; o_t = M_mem,t(q_t) ----
    const lens2 = merged ? [] : hp.segmentLengths(t, o.memChunkSize, p2);
    const same = lens2.length === lens1.length && lens2.every((l, i) => l === lens1[i]);
    const resplit = (parts: tf.Tensor[]): tf.Tensor[] => {
      if (same) return parts;
      const toT = (a: tf.Tensor): tf.Tensor => (a.rank === 3 ? a.transpose([1, 0, 2]) : a.transpose()); // [L, B H, (d)]
      return hp.splitLens(hp.concatLens(parts.map(toT)), lens2).map(toT);
    };
    const [k2, v2, beta2, logA2, q2] = merged ? [[], [], [], [], []] : [outs.k, outs.v, outs.beta, outs.logA, outs.q].map(resplit);
    let pos2 = merged ? pos1 : p2;
    lens2.forEach((_, i) => {
      const res = run((a: tf.Tensor[]): tf.Tensor[] => {
        const [w1, w2, sw1, sw2, k, v, beta, logA, q] = a as tf.Tensor3D[];
        const r = stableSegment(o, w1, w2, sw1, sw2, k, v, beta as unknown as tf.Tensor2D, beta.mul(o.slowRate) as tf.Tensor2D, logA as unknown as tf.Tensor2D, q);
        return [r.w1, r.w2, r.o as tf.Tensor3D];
      }, [run2.w1, run2.w2, snap2.w1, snap2.w2, k2[i], v2[i], beta2[i], logA2[i], q2[i]]);
      run2 = { w1: res[0] as tf.Tensor3D, w2: res[1] as tf.Tensor3D };
      outO.push(res[2]);
      pos2 = (pos2 + lens2[i]) % o.memChunkSize;
      if (pos2 === 0) snap2 = run2;
    });
    const perTokenChecks: Array<[string, tf.Tensor[]]> = names.map((nmName) => [nmName, checks[nmName]]);
    perTokenChecks.push(['mem', outO]);
    if (o.sentinel) hp.sentinel(o, perTokenChecks, t);

    // ---- output: per-head RMSNorm, learned gain, sigmoid gate, W_o ----
    const oAll = hp.concatLens(outO.map(tm)).transpose([1, 0, 2, 3]); // [B, T, H, dh]
    const normed = oAll.mul(tf.rsqrt(oAll.square().mean(-1, true).add(L2_EPS))).reshape([b * t, dm]);
    const gate = tf.sigmoid(tf.matMul(x2, req('gateKernel') as tf.Tensor2D));
    const y = tf.matMul(normed.mul(req('normGain')).mul(gate) as tf.Tensor2D, req('outKernel') as tf.Tensor2D).reshape([b, t, dm]) as tf.Tensor3D;

    const out = hp.packState(b, h, fromGroup, { ...run1, pos: pos1, snap: snap1 }, { ...run2, pos: pos2, snap: snap2 }, {}, state);
    return { y, state: out };
  });
}
