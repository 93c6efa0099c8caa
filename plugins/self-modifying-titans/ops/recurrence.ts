/**
 * The in-chunk recurrence of self-modifying Titans (Eq. 88 with momentum), naive and chunk-parallel.
 * Given per-token writes that were computed at the chunk-start state (Eq. 90), for every N (sequence,
 * memory, head) and token t of the segment:
 *
 *   W2_t = W2_{t-1} (alpha_t I - eta_t k_t k_t^T) + M2_t,   M2_t = mu M2_{t-1} + y2_t k_t^T   (y2 = -eta u)
 *   W1_t = alpha_t W1_{t-1}                       + M1_t,   M1_t = mu M1_{t-1} + y1_t h_t^T   (y1 = -eta e)
 *
 * Decision (momentum and DGD): momentum accumulates the gradient term only; the DGD factor acts on the
 * running weights. With momentum off the write is y k^T directly (== mu = 0), which is exactly Eq. 88:
 * M_t = M_{t-1}(alpha I - eta k k^T) - eta grad. With DGD off the -eta k k^T term is dropped (plain GD
 * with decay). Reads (M_mem only): o_t = q_t + W1_t act(W2_t q_t), after token t's write.
 *
 * Chunk-parallel form (one segment of L tokens, all N at once), with g_t = sum_{s<=t} log alpha_s,
 * gamma_t = exp(g_t), Gam_ts = exp(g_t - g_s) (t >= s), Mu_js = mu^(j-s) (j >= s):
 *   Lam = Gam Mu  (Lam_ts = sum_{j=s..t} Gam_tj mu^(j-s)),  rho_t = sum_{j<=t} Gam_tj mu^j
 *   (no momentum: Lam = Gam, rho = 0). Unrolling, with the DGD write vectors d_t = -eta_t W2_{t-1} k_t:
 *   W2_t = gamma_t W2_0 + rho_t M2_0 + sum_{s<=t} Lam_ts y2_s k_s^T + sum_{s<=t} Gam_ts d_s k_s^T.
 *   d solves a unit lower-triangular system (the gated-delta WY form, beta = eta / alpha):
 *   (I + strict(diag(beta)(Gam o K K^T))) D = -diag(eta) [gamma' o K W2_0^T + rho' o K M2_0^T + (Lam' o K K^T) Y2]
 *   with primes = the same quantities at t-1 (Gam'_ts = exp(g_{t-1} - g_s), s < t).
 *   W1 has scalar dynamics: W1_t = gamma_t W1_0 + rho_t M1_0 + sum_s Lam_ts y1_s h_s^T (attention-like).
 */
import * as tf from '@tensorflow/tfjs';
import { splitAxis0, stackAxis0 } from '../../../core/ops/tensor-util';
import { wyInverse } from '../../../core/ops/tril-inverse';
import { activate, type MemoryActivation } from './memory';
import { batchedToWide } from './layout';

export { batchedToWide, wideToBatched } from './layout';

/** Fast weights of one group of memories, flattened to N = (sequence, memory, head). */
export interface GroupWeights {
  w1: tf.Tensor3D; // [N, dh, dhid]
  w2: tf.Tensor3D; // [N, dhid, dh]
  m1?: tf.Tensor3D; // momentum of W1 (when momentum is on)
  m2?: tf.Tensor3D; // momentum of W2
}

export interface SegmentWrites {
  k: tf.Tensor3D; // write key of W2 (and the DGD factor), [N, L, dh]
  h: tf.Tensor3D; // write key of W1, [N, L, dhid]
  y2: tf.Tensor3D; // -eta u, [N, L, dhid]
  y1: tf.Tensor3D; // -eta e, [N, L, dh]
  eta: tf.Tensor2D; // [N, L]
  logAlpha: tf.Tensor2D; // [N, L], <= 0
  q?: tf.Tensor3D; // read queries, [N, L, dh] (only for the retrieval memory)
}

export interface RecurrenceOptions {
  act: MemoryActivation;
  /** Momentum decay mu in [0, 1), or null for no momentum (no momentum state). */
  momentum: number | null;
  /** DGD factor (alpha I - eta k k^T) on W2; false = plain GD with decay. */
  dgd: boolean;
}

export interface SegmentResult {
  state: GroupWeights;
  o?: tf.Tensor3D; // reads [N, L, dh] when q was given
}

function checkMomentumState(s: GroupWeights, opts: RecurrenceOptions, where: string): void {
  if ((opts.momentum !== null) !== (s.m1 !== undefined && s.m2 !== undefined)) {
    throw new Error(`${where}: momentum state must be present iff momentum is on (momentum=${opts.momentum})`);
  }
}

/** Token-by-token reference of the segment recurrence (ground truth for the chunked form). */
export function naiveSegment(s0: GroupWeights, wr: SegmentWrites, opts: RecurrenceOptions): SegmentResult {
  checkMomentumState(s0, opts, 'naiveSegment');
  return tf.tidy(() => {
    const [n, l] = wr.eta.shape;
    const tm = (a: tf.Tensor3D): tf.Tensor[] => splitAxis0(a.transpose([1, 0, 2])); // L x [N, d]
    const ks = tm(wr.k);
    const hs = tm(wr.h);
    const y2s = tm(wr.y2);
    const y1s = tm(wr.y1);
    const qs = wr.q ? tm(wr.q) : null;
    const etas = splitAxis0(wr.eta.transpose()); // L x [N]
    const alphas = splitAxis0(tf.exp(wr.logAlpha).transpose());
    let { w1, w2, m1, m2 } = s0;
    const outs: tf.Tensor[] = [];
    const outer = (a: tf.Tensor, b: tf.Tensor): tf.Tensor3D => a.reshape([n, -1, 1]).mul(b.reshape([n, 1, -1])) as tf.Tensor3D;
    for (let t = 0; t < l; t++) {
      const a = alphas[t].reshape([n, 1, 1]);
      const k = ks[t];
      let nw2 = w2.mul(a);
      if (opts.dgd) {
        const w2k = tf.matMul(w2, k.reshape([n, -1, 1])); // W2_{t-1} k_t, [N, dhid, 1]
        nw2 = nw2.sub(w2k.mul(etas[t].reshape([n, 1, 1])).mul(k.reshape([n, 1, -1])));
      }
      let nw1 = w1.mul(a);
      const g2 = outer(y2s[t], k); // y2 k^T
      const g1 = outer(y1s[t], hs[t]); // y1 h^T
      if (opts.momentum !== null) {
        m2 = (m2 as tf.Tensor3D).mul(opts.momentum).add(g2) as tf.Tensor3D;
        m1 = (m1 as tf.Tensor3D).mul(opts.momentum).add(g1) as tf.Tensor3D;
        nw2 = nw2.add(m2);
        nw1 = nw1.add(m1);
      } else {
        nw2 = nw2.add(g2);
        nw1 = nw1.add(g1);
      }
      w2 = nw2 as tf.Tensor3D;
      w1 = nw1 as tf.Tensor3D;
      if (qs) {
        const q = qs[t].reshape([n, 1, -1]) as tf.Tensor3D; // [N, 1, dh]
        const r = activate(opts.act, tf.matMul(q, w2, false, true)); // act(W2_t q_t), [N, 1, dhid]
        outs.push(q.add(tf.matMul(r as tf.Tensor3D, w1, false, true)).reshape([n, -1]));
      }
    }
    const state: GroupWeights = opts.momentum !== null ? { w1, w2, m1, m2 } : { w1, w2 };
    const res: SegmentResult = { state };
    if (qs) res.o = stackAxis0(outs).transpose([1, 0, 2]) as tf.Tensor3D;
    return res as unknown as tf.TensorContainer;
  }) as unknown as SegmentResult;
}

/** [L, L] lower-triangular (incl. diagonal) matrix with entries f(t, s) for t >= s. */
function lowerFrom(l: number, f: (t: number, s: number) => number): tf.Tensor2D {
  const m = new Float32Array(l * l);
  for (let t = 0; t < l; t++) for (let s = 0; s <= t; s++) m[t * l + s] = f(t, s);
  return tf.tensor2d(m, [l, l]);
}

/** [N, 2 L, X] -> its first (i = 0) or second (i = 1) half along axis 1, as contiguous rows. */
function halfRows(a: tf.Tensor, i: 0 | 1): tf.Tensor3D {
  const [n, l2, x] = a.shape as [number, number, number];
  const l = l2 / 2;
  return a.reshape([n, 2, l * x]).slice([0, i, 0], [n, 1, l * x]).reshape([n, l, x]) as tf.Tensor3D;
}

/**
 * Chunk-parallel form of naiveSegment (see the file header for the algebra). Products that share an
 * operand are fused so each segment issues few batched matmuls (on wasm each costs one small XNNPACK
 * call per N): the key and query rows go through one product with [W2_0 | M2_0], K K^T and Q K^T are
 * one product, the W and M updates of each matrix are one product. The primed quantities (row t - 1)
 * come from the unprimed ones without another exp: Gam'_ts = Gam_ts / alpha_t (s < t), so
 * gamma'_t = gamma_t / alpha_t, Lam'_ts = (Lam_ts - mu^(t-s)) / alpha_t, rho'_t = (rho_t - mu^(t+1)) / alpha_t.
 */
export function chunkedSegment(s0: GroupWeights, wr: SegmentWrites, opts: RecurrenceOptions): SegmentResult {
  checkMomentumState(s0, opts, 'chunkedSegment');
  return tf.tidy(() => {
    const [n, l] = wr.eta.shape;
    const mu = opts.momentum;
    const { w1: w10, w2: w20, m1: m10, m2: m20 } = s0;
    const { k, h, y1, y2, q } = wr;
    const lower = lowerFrom(l, () => 1); // [L, L]
    const g = tf.cumsum(wr.logAlpha, 1); // [N, L], <= 0
    const invAlpha = tf.exp(wr.logAlpha.neg()).expandDims(2); // 1 / alpha_t, [N, L, 1]
    const gam = tf.exp(g.expandDims(2).sub(g.expandDims(1)).mul(lower)).mul(lower) as tf.Tensor3D; // Gam (exp only where t >= s), [N, L, L]
    const gLast = g.slice([0, l - 1], [n, 1]); // [N, 1]
    const gamLast = tf.exp(gLast.sub(g)).expandDims(2); // Gam_{L,s}, [N, L, 1]
    const gammaLast = tf.exp(gLast).expandDims(2); // gamma_L, [N, 1, 1]
    const gamma = tf.exp(g).expandDims(2); // gamma_t, [N, L, 1]
    let lam: tf.Tensor3D = gam; // Lam
    let lamPrev: tf.Tensor; // Lam', [N, L, L]
    let rho: tf.Tensor | null = null; // [N, L, 1]
    let rhoPrev: tf.Tensor | null = null; // [N, L, 1]
    let muPowLast: tf.Tensor | null = null; // mu^(L-s), [1, L, 1]
    if (mu !== null) {
      const muMat = lowerFrom(l, (t, s) => Math.pow(mu, t - s)); // Mu, [L, L]
      const muPow = tf.tensor2d(Array.from({ length: l }, (_, j) => [Math.pow(mu, j + 1)]), [l, 1]); // mu^j, j = 1..L
      const flatGam = gam.reshape([n * l, l]) as tf.Tensor2D;
      lam = tf.matMul(flatGam, muMat).reshape([n, l, l]) as tf.Tensor3D;
      rho = tf.matMul(flatGam, muPow).reshape([n, l, 1]);
      lamPrev = lam.sub(muMat).mul(invAlpha);
      rhoPrev = rho.sub(muPow.reshape([1, l, 1])).mul(invAlpha);
      muPowLast = tf.tensor3d(Array.from({ length: l }, (_, s) => Math.pow(mu, l - 1 - s)), [1, l, 1]);
    } else {
      lamPrev = gam.mul(lower.sub(tf.eye(l))).mul(invAlpha); // Gam'
    }
    const lamLast = lam.slice([0, l - 1, 0], [n, 1, l]).reshape([n, l, 1]); // Lam_{L,s}, [N, L, 1]

    // Rows that read W2_0 (and M2_0): the DGD right-hand side at keys (primed coefficients) and the
    // retrieval pre-activation at queries: coef o (row [W2_0 | M2_0]^T) + (coefL o (row K^T)) Y2.
    const w2cat = mu !== null ? tf.concat([w20, m20 as tf.Tensor3D], 2) : w20; // [N, dhid, dh (2)]
    const scaled = (x: tf.Tensor, a: tf.Tensor, b: tf.Tensor | null): tf.Tensor => (b ? tf.concat([x.mul(a), x.mul(b)], 2) : x.mul(a)); // [N, L, dh (2)]
    const rowsIn: tf.Tensor[] = [];
    const rowsW: tf.Tensor[] = [];
    const rowsL: tf.Tensor[] = [];
    if (opts.dgd) {
      rowsIn.push(k);
      rowsW.push(scaled(k, gamma.mul(invAlpha), rhoPrev));
      rowsL.push(lamPrev);
    }
    if (q) {
      rowsIn.push(q);
      rowsW.push(scaled(q, gamma, rho));
      rowsL.push(lam);
    }
    let d: tf.Tensor3D | null = null; // DGD write vectors (Eq. 88's -eta W2_{t-1} k_t k_t^T term), [N, L, dhid]
    let z: tf.Tensor | null = null; // W2_t q_t, [N, L, dhid]
    if (rowsIn.length > 0) {
      const two = rowsIn.length === 2;
      const cat = (a: tf.Tensor[]): tf.Tensor => (two ? tf.concat(a, 1) : a[0]);
      const sk = tf.matMul(cat(rowsIn) as tf.Tensor3D, k, false, true); // [K; Q] K^T, [N, L (2), L]
      const pre = tf
        .matMul(cat(rowsW) as tf.Tensor3D, w2cat, false, true)
        .add(tf.matMul(cat(rowsL).mul(sk) as tf.Tensor3D, y2)); // [N, L (2), dhid]
      if (opts.dgd) {
        const rhs = (two ? halfRows(pre, 0) : pre).mul(wr.eta.expandDims(2)).neg() as tf.Tensor3D;
        const beta = wr.eta.mul(tf.exp(wr.logAlpha.neg())) as tf.Tensor2D; // eta / alpha
        const tInv = wyInverse(k, beta, g as tf.Tensor2D, 'blocked'); // (I + strict(diag(beta)(Gam o K K^T)))^-1
        d = tf.matMul(tInv, rhs);
      }
      if (q) {
        z = two ? halfRows(pre, 1) : pre;
        if (d) z = z.add(tf.matMul(gam.mul(two ? halfRows(sk, 1) : sk) as tf.Tensor3D, d)); // + (Gam o Q K^T) D
      }
    }

    // Final state (t = L): W2 = gamma_L W2_0 + rho_L M2_0 + (diag(Lam_L) Y2 + diag(Gam_L) D)^T K,
    // M2 = mu^L M2_0 + (diag(mu^(L-s)) Y2)^T K; W1, M1 alike with Y1, H (no DGD term).
    let a2 = y2.mul(lamLast);
    if (d) a2 = a2.add(d.mul(gamLast));
    const a1 = y1.mul(lamLast);
    let state: GroupWeights;
    if (mu !== null && rho && muPowLast) {
      const upd2 = tf.matMul(tf.concat([a2, y2.mul(muPowLast)], 2) as tf.Tensor3D, k, true, false); // [N, 2 dhid, dh]
      const upd1 = tf.matMul(tf.concat([a1, y1.mul(muPowLast)], 2) as tf.Tensor3D, h, true, false); // [N, 2 dh, dhid]
      const rhoLast = rho.slice([0, l - 1, 0], [n, 1, 1]); // [N, 1, 1]
      const muL = Math.pow(mu, l);
      state = {
        w2: w20.mul(gammaLast).add((m20 as tf.Tensor3D).mul(rhoLast)).add(halfRows(upd2, 0)) as tf.Tensor3D,
        w1: w10.mul(gammaLast).add((m10 as tf.Tensor3D).mul(rhoLast)).add(halfRows(upd1, 0)) as tf.Tensor3D,
        m2: (m20 as tf.Tensor3D).mul(muL).add(halfRows(upd2, 1)) as tf.Tensor3D,
        m1: (m10 as tf.Tensor3D).mul(muL).add(halfRows(upd1, 1)) as tf.Tensor3D,
      };
    } else {
      state = {
        w2: w20.mul(gammaLast).add(tf.matMul(a2 as tf.Tensor3D, k, true, false)) as tf.Tensor3D,
        w1: w10.mul(gammaLast).add(tf.matMul(a1 as tf.Tensor3D, h, true, false)) as tf.Tensor3D,
      };
    }
    const res: SegmentResult = { state };

    if (q && z) {
      // W1_t r_t = gamma_t W1_0 r_t + rho_t M1_0 r_t + sum_s Lam_ts y1_s (h_s . r_t), r_t = act(W2_t q_t)
      const r = activate(opts.act, z) as tf.Tensor3D; // [N, L, dhid]
      const w1cat = mu !== null ? tf.concat([w10, m10 as tf.Tensor3D], 2) : w10; // [N, dh, dhid (2)]
      const o = tf
        .matMul(scaled(r, gamma, rho) as tf.Tensor3D, w1cat as tf.Tensor3D, false, true)
        .add(tf.matMul(lam.mul(tf.matMul(r, h, false, true)) as tf.Tensor3D, y1));
      res.o = q.add(o) as tf.Tensor3D;
    }
    return res as unknown as tf.TensorContainer;
  }) as unknown as SegmentResult;
}

/**
 * Writes of a group of `nm` memories that share their keys and rates (phase 1 of the mixer: M_k, M_v,
 * M_eta, M_alpha (, M_q) all write at the same k_t with the same eta_t, alpha_t, Eq. 90). Memory-minor
 * layout N1 = (n, memory) with n in N2 = (sequence, head): row n * nm + j is memory j of n, so an
 * [N1, p, q] weight stack is an [N2, nm p, q] "wide" stack for free (one product per n for all memories).
 */
export interface SharedSegmentWrites {
  k: tf.Tensor3D; // shared write key of W2 and the DGD factor, [N2, L, dh]
  eta: tf.Tensor2D; // [N2, L]
  logAlpha: tf.Tensor2D; // [N2, L], <= 0
  h: tf.Tensor3D; // per-memory write key of W1, [N1, L, dhid]
  y2: tf.Tensor3D; // -eta u, [N1, L, dhid]
  y1: tf.Tensor3D; // -eta e, [N1, L, dh]
}

/**
 * Key/rate-only quantities of a segment (notation of the file header), per n [N2, ...]; computed once
 * and shared by every memory of a group (chunkedSharedEnd) and by the retrieval (chunkedSharedRetrieval).
 * `full` adds what the retrieval needs (Gam, Lam, rho, gamma for every row).
 */
export interface SharedCoefficients {
  l: number;
  g: tf.Tensor2D; // cumsum log alpha, [N2, L]
  gamLast: tf.Tensor2D; // Gam_{L,s}, [N2, L]
  lamLast: tf.Tensor2D; // Lam_{L,s}, [N2, L]
  gammaL: tf.Tensor3D; // gamma_L, [N2, 1, 1]
  rhoL: tf.Tensor3D | null; // rho_L, [N2, 1, 1] (momentum)
  gam?: tf.Tensor3D; // Gam [N2, L, L] (dgd or full)
  lam?: tf.Tensor3D; // Lam (full)
  gamma?: tf.Tensor2D; // gamma_t [N2, L] (full)
  rho?: tf.Tensor2D; // rho_t [N2, L] (full, momentum)
  // DGD (primes = row t - 1):
  lamPrev?: tf.Tensor3D; // Lam' [N2, L, L]
  gammaPrev?: tf.Tensor2D; // gamma' [N2, L]
  rhoPrev?: tf.Tensor2D; // rho' [N2, L] (momentum)
  tInv?: tf.Tensor3D; // (I + strict(diag(eta/alpha)(Gam o K K^T)))^-1 [N2, L, L]
  kk?: tf.Tensor3D; // K K^T [N2, L, L]
}

/** The coefficients of a segment with shared keys k [N2, L, dh], eta and log alpha [N2, L]. */
export function sharedCoefficients(k: tf.Tensor3D, eta: tf.Tensor2D, logAlpha: tf.Tensor2D, opts: RecurrenceOptions, full: boolean): SharedCoefficients {
  return tf.tidy(() => {
    const [n2, l] = eta.shape;
    const mu = opts.momentum;
    const g = tf.cumsum(logAlpha, 1) as tf.Tensor2D; // [N2, L], <= 0
    const gLast = g.slice([0, l - 1], [n2, 1]); // [N2, 1]
    const gamLast = tf.exp(gLast.sub(g)) as tf.Tensor2D; // [N2, L]
    const c: SharedCoefficients = { l, g, gamLast, lamLast: gamLast, gammaL: tf.exp(gLast).reshape([n2, 1, 1]) as tf.Tensor3D, rhoL: null };
    let muMat: tf.Tensor2D | null = null;
    let muPow: tf.Tensor2D | null = null;
    if (mu !== null) {
      muMat = lowerFrom(l, (t, s) => Math.pow(mu, t - s)); // Mu, [L, L]
      muPow = tf.tensor2d(Array.from({ length: l }, (_, j) => [Math.pow(mu, j + 1)]), [l, 1]); // mu^j, j = 1..L
      c.lamLast = tf.matMul(gamLast, muMat); // sum_j Gam_Lj mu^(j-s)
      c.rhoL = tf.matMul(gamLast, muPow).reshape([n2, 1, 1]) as tf.Tensor3D;
    }
    if (!opts.dgd && !full) return c as unknown as tf.TensorContainer;
    const lower = lowerFrom(l, () => 1);
    const gam = tf.exp(g.expandDims(2).sub(g.expandDims(1)).mul(lower)).mul(lower) as tf.Tensor3D; // Gam (exp only where t >= s)
    c.gam = gam;
    let lam: tf.Tensor3D = gam;
    let rho: tf.Tensor2D | null = null;
    if (mu !== null && muMat && muPow) {
      const flatGam = gam.reshape([n2 * l, l]) as tf.Tensor2D;
      lam = tf.matMul(flatGam, muMat).reshape([n2, l, l]) as tf.Tensor3D;
      rho = tf.matMul(flatGam, muPow).reshape([n2, l]) as tf.Tensor2D;
    }
    if (full) {
      c.lam = lam;
      c.gamma = tf.exp(g) as tf.Tensor2D;
      if (rho) c.rho = rho;
    }
    if (opts.dgd) {
      const invAlpha = tf.exp(logAlpha.neg()) as tf.Tensor2D; // 1 / alpha_t
      c.gammaPrev = tf.exp(g.sub(logAlpha)) as tf.Tensor2D; // gamma'_t = exp(g_{t-1})
      if (mu !== null && muMat && muPow && rho) {
        c.lamPrev = lam.sub(muMat).mul(invAlpha.expandDims(2)) as tf.Tensor3D; // (Lam - Mu) / alpha_t
        c.rhoPrev = rho.sub(muPow.reshape([1, l])).mul(invAlpha) as tf.Tensor2D; // (rho_t - mu^t) / alpha_t
      } else {
        c.lamPrev = gam.mul(lower.sub(tf.eye(l))).mul(invAlpha.expandDims(2)) as tf.Tensor3D; // Gam'
      }
      c.tInv = wyInverse(k, eta.mul(invAlpha) as tf.Tensor2D, g, 'blocked');
      c.kk = tf.matMul(k, k, false, true) as tf.Tensor3D;
    }
    return c as unknown as tf.TensorContainer;
  }) as unknown as SharedCoefficients;
}

/**
 * State after the last token of a segment whose memories share keys and rates (SharedSegmentWrites),
 * the same values as naiveSegment / chunkedSegment on the tiled writes (tested), without the write
 * vectors D and with every key/rate-only quantity computed once per n instead of once per memory.
 * With the notation of the file header (everything below per n, L = last row):
 *   D^T diag(Gam_L) K = rhs^T T^-T diag(Gam_L) K = -pre^T Pe,   T = (I + strict(diag(eta/alpha)(Gam o K K^T)))^-1,
 *   Pe = diag(eta) T^T diag(Gam_L) K [L, dh],  pre = diag(gamma') K W2_0^T + diag(rho') K M2_0^T + (Lam' o K K^T) Y2,
 * so  W2_L = W2_0 (gamma_L I - Ga) + M2_0 (rho_L I - Gb) + Y2^T (diag(Lam_L) K - Qe),
 *     Ga = K^T diag(gamma') Pe, Gb = K^T diag(rho') Pe [dh, dh],  Qe = (Lam' o K K^T)^T Pe [L, dh]
 * (Ga, Gb, Qe and the WY inverse depend only on k, eta, alpha: [N2, ...]), M2_L = mu^L M2_0 + Y2^T diag(mu^(L-s)) K,
 * and W1_L = gamma_L W1_0 + rho_L M1_0 + Y1^T diag(Lam_L) H, M1_L = mu^L M1_0 + Y1^T diag(mu^(L-s)) H.
 * Products with a per-memory left operand and a shared right operand run on the wide stacks (N2 slices).
 * `coef`: sharedCoefficients of the segment when the caller already has them.
 */
export function chunkedSharedEnd(
  s0: GroupWeights,
  wr: SharedSegmentWrites,
  nm: number,
  opts: RecurrenceOptions,
  coef?: SharedCoefficients,
): GroupWeights {
  checkMomentumState(s0, opts, 'chunkedSharedEnd');
  return tf.tidy(() => {
    const [n2, l, dh] = wr.k.shape;
    const dz = wr.h.shape[2];
    const n1 = n2 * nm;
    if (wr.h.shape[0] !== n1 || s0.w1.shape[0] !== n1) {
      throw new Error(`chunkedSharedEnd: per-memory writes and state need N1 = ${n2} x ${nm} rows, got h [${wr.h.shape}], w1 [${s0.w1.shape}]`);
    }
    const mu = opts.momentum;
    const c = coef ?? sharedCoefficients(wr.k, wr.eta, wr.logAlpha, opts, false);
    const { w1: w10, w2: w20, m1: m10, m2: m20 } = s0;
    const { k, h, y1, y2 } = wr;
    // per n -> per (n, memory) scalars [N2, 1, 1] -> [N1, 1, 1], and rows [N2, L] -> column weights [N1, L, 1]
    const perMem = (a: tf.Tensor): tf.Tensor => (nm === 1 ? a.reshape([n1, 1, 1]) : a.reshape([n2, 1]).add(tf.zeros([1, nm])).reshape([n1, 1, 1]));
    const perMemRows = (a: tf.Tensor): tf.Tensor => (nm === 1 ? a.reshape([n1, l, 1]) : a.reshape([n2, 1, l]).add(tf.zeros([1, nm, 1])).reshape([n1, l, 1]));
    const muPowLast = mu !== null ? tf.tensor3d(Array.from({ length: l }, (_, s) => Math.pow(mu, l - 1 - s)), [1, l, 1]) : null; // mu^(L-s)

    // W1 (and M1): per-memory keys H: Y1^T diag(Lam_L) H and Y1^T diag(mu^(L-s)) H (no concat: its gradient splits, slow on wasm)
    const wLam = perMemRows(c.lamLast); // [N1, L, 1]
    let w1n: tf.Tensor;
    let m1n: tf.Tensor | null = null;
    if (mu !== null && muPowLast && c.rhoL) {
      w1n = w10.mul(perMem(c.gammaL)).add((m10 as tf.Tensor3D).mul(perMem(c.rhoL))).add(tf.matMul(y1.mul(wLam) as tf.Tensor3D, h, true, false));
      m1n = (m10 as tf.Tensor3D).mul(Math.pow(mu, l)).add(tf.matMul(y1.mul(muPowLast) as tf.Tensor3D, h, true, false));
    } else {
      w1n = w10.mul(perMem(c.gammaL)).add(tf.matMul(y1.mul(wLam) as tf.Tensor3D, h, true, false));
    }

    // W2 (and M2): shared right operands [N2, L, dh], per-memory left operands on the wide stacks
    const y2w = batchedToWide(y2, nm); // [N2, L, nm dhid]
    const wide = (a: tf.Tensor): tf.Tensor3D => a.reshape([n2, nm * dz, dh]) as tf.Tensor3D; // [N1, dhid, dh] -> [N2, nm dhid, dh]
    const fromWide = (a: tf.Tensor): tf.Tensor3D => a.reshape([n1, dz, dh]) as tf.Tensor3D;
    let r2: tf.Tensor = c.lamLast.expandDims(2).mul(k); // diag(Lam_L) K, [N2, L, dh]
    let w2n: tf.Tensor;
    if (opts.dgd) {
      const { tInv, kk, lamPrev, gammaPrev } = c as Required<SharedCoefficients>;
      const pe = tf.matMul(tInv, c.gamLast.expandDims(2).mul(k) as tf.Tensor3D, true, false).mul(wr.eta.expandDims(2)); // Pe, [N2, L, dh]
      r2 = r2.sub(tf.matMul(lamPrev.mul(kk) as tf.Tensor3D, pe as tf.Tensor3D, true, false)); // - Qe
      const eyeDh = tf.eye(dh).expandDims(0);
      const ga = tf.matMul(k, pe.mul(gammaPrev.expandDims(2)) as tf.Tensor3D, true, false); // [N2, dh, dh]
      w2n = tf.matMul(wide(w20), c.gammaL.mul(eyeDh).sub(ga) as tf.Tensor3D); // W2_0 (gamma_L I - Ga), wide
      if (mu !== null && c.rhoPrev && c.rhoL) {
        const gb = tf.matMul(k, pe.mul(c.rhoPrev.expandDims(2)) as tf.Tensor3D, true, false);
        w2n = w2n.add(tf.matMul(wide(m20 as tf.Tensor3D), c.rhoL.mul(eyeDh).sub(gb) as tf.Tensor3D));
      }
      w2n = fromWide(w2n);
    } else {
      w2n = w20.mul(perMem(c.gammaL));
      if (mu !== null && c.rhoL) w2n = w2n.add((m20 as tf.Tensor3D).mul(perMem(c.rhoL)));
    }
    w2n = w2n.add(fromWide(tf.matMul(y2w, r2 as tf.Tensor3D, true, false))); // + Y2^T R2
    let state: GroupWeights = { w1: w1n as tf.Tensor3D, w2: w2n as tf.Tensor3D };
    if (mu !== null && muPowLast && m1n) {
      const m2n = (m20 as tf.Tensor3D).mul(Math.pow(mu, l)).add(fromWide(tf.matMul(y2w, k.mul(muPowLast) as tf.Tensor3D, true, false)));
      state = { ...state, m1: m1n as tf.Tensor3D, m2: m2n as tf.Tensor3D };
    }
    return state as unknown as tf.TensorContainer;
  }) as unknown as GroupWeights;
}

/**
 * Retrievals o_t = q_t + W1_t act(W2_t q_t) (after token t's write) of ONE memory per n (N2 rows) over a
 * segment with shared coefficients `coef` (sharedCoefficients(..., full = true)): chunkedSegment's read
 * without the end state, reusing the WY inverse and decays. s0 [N2, ...]; wr.k [N2, L, dh] the keys,
 * wr.h / y1 / y2 this memory's writes, wr.q the queries. Returns [N2, L, dh].
 */
export function chunkedSharedRetrieval(s0: GroupWeights, wr: SegmentWrites, coef: SharedCoefficients, opts: RecurrenceOptions): tf.Tensor3D {
  checkMomentumState(s0, opts, 'chunkedSharedRetrieval');
  return tf.tidy(() => {
    const mu = opts.momentum;
    const { w1: w10, w2: w20, m1: m10, m2: m20 } = s0;
    const { k, h, y1, y2 } = wr;
    const q = wr.q as tf.Tensor3D;
    const gam = coef.gam as tf.Tensor3D;
    const lam = coef.lam as tf.Tensor3D;
    const col = (a: tf.Tensor2D | undefined): tf.Tensor => (a as tf.Tensor2D).expandDims(2); // [N2, L] -> [N2, L, 1]
    // gamma x W^T + rho x M^T for rows x [N2, L, in] and one memory's W, M [N2, out, in] (separate
    // products: no concatenated operands, whose gradients split on wasm)
    const decayRead = (x: tf.Tensor3D, w: tf.Tensor3D, m: tf.Tensor3D | undefined, gamma: tf.Tensor, rho: tf.Tensor | null): tf.Tensor => {
      const r = tf.matMul(x, w, false, true).mul(gamma);
      return rho && m ? r.add(tf.matMul(x, m, false, true).mul(rho)) : r;
    };
    const gamma = col(coef.gamma);
    const rho = mu !== null ? col(coef.rho) : null;
    const qk = tf.matMul(q, k, false, true); // Q K^T, [N2, L, L]
    let z = decayRead(q, w20, m20, gamma, rho).add(tf.matMul(lam.mul(qk) as tf.Tensor3D, y2)); // W2_t q_t without DGD, [N2, L, dhid]
    if (opts.dgd) {
      // DGD write vectors D = T rhs, rhs = -diag(eta) [gamma' o K W2_0^T + rho' o K M2_0^T + (Lam' o K K^T) Y2]
      const preK = decayRead(k, w20, m20, col(coef.gammaPrev), mu !== null ? col(coef.rhoPrev) : null).add(
        tf.matMul((coef.lamPrev as tf.Tensor3D).mul(coef.kk as tf.Tensor3D) as tf.Tensor3D, y2),
      );
      const d = tf.matMul(coef.tInv as tf.Tensor3D, preK.mul(wr.eta.expandDims(2)).neg() as tf.Tensor3D); // [N2, L, dhid]
      z = z.add(tf.matMul(gam.mul(qk) as tf.Tensor3D, d)); // + (Gam o Q K^T) D
    }
    // W1_t r_t = gamma_t W1_0 r_t + rho_t M1_0 r_t + sum_s Lam_ts y1_s (h_s . r_t), r_t = act(W2_t q_t)
    const r = activate(opts.act, z) as tf.Tensor3D; // [N2, L, dhid]
    const o = decayRead(r, w10, m10, gamma, rho).add(tf.matMul(lam.mul(tf.matMul(r, h, false, true)) as tf.Tensor3D, y1));
    return q.add(o) as tf.Tensor3D;
  });
}
