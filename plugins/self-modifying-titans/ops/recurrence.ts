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
import { splitAxis0, stackAxis0 } from '../../linear-attention/ops/tf-util';
import { wyInverse } from '../../linear-attention/ops/tril-inverse';
import { activate, type MemoryActivation } from './memory';

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

/** Chunk-parallel form of naiveSegment (see the file header for the algebra). */
export function chunkedSegment(s0: GroupWeights, wr: SegmentWrites, opts: RecurrenceOptions): SegmentResult {
  checkMomentumState(s0, opts, 'chunkedSegment');
  return tf.tidy(() => {
    const [n, l] = wr.eta.shape;
    const mu = opts.momentum;
    const lower = lowerFrom(l, () => 1); // [L, L]
    const strict = lower.sub(tf.eye(l)); // [L, L]
    const g = tf.cumsum(wr.logAlpha, 1); // [N, L], <= 0
    const gPrev = g.sub(wr.logAlpha); // g_{t-1}, [N, L]
    const diff = g.expandDims(2).sub(g.expandDims(1)); // g_t - g_s, [N, L, L]
    const gam = tf.exp(diff.mul(lower)).mul(lower) as tf.Tensor3D; // Gam (exp only where t >= s)
    const gamLast = tf.exp(g.slice([0, l - 1], [n, 1]).sub(g)); // Gam_{L,s}, [N, L]
    const gammaLast = tf.exp(g.slice([0, l - 1], [n, 1])); // gamma_L, [N, 1]
    let lam: tf.Tensor3D = gam; // Lam
    let rho: tf.Tensor2D | null = null; // [N, L]
    let muPowLast: tf.Tensor | null = null; // mu^(L-s), [L]
    if (mu !== null) {
      const muMat = lowerFrom(l, (t, s) => Math.pow(mu, t - s)); // Mu, [L, L]
      const muPow = tf.tensor2d(Array.from({ length: l }, (_, j) => [Math.pow(mu, j + 1)]), [l, 1]); // mu^j, j = 1..L
      const flat = (a: tf.Tensor3D): tf.Tensor2D => a.reshape([n * l, l]) as tf.Tensor2D;
      lam = tf.matMul(flat(gam), muMat).reshape([n, l, l]) as tf.Tensor3D;
      rho = tf.matMul(flat(gam), muPow).reshape([n, l]) as tf.Tensor2D;
      muPowLast = tf.tensor1d(Array.from({ length: l }, (_, s) => Math.pow(mu, l - 1 - s)));
    }
    const lamLast = lam.slice([0, l - 1, 0], [n, 1, l]).reshape([n, l]); // Lam_{L,s}, [N, L]
    const { w1: w10, w2: w20, m1: m10, m2: m20 } = s0;
    const k = wr.k;

    // DGD write vectors d (Eq. 88's -eta W2_{t-1} k_t k_t^T term), [N, L, dhid]
    let d: tf.Tensor3D | null = null;
    if (opts.dgd) {
      const kk = tf.matMul(k, k, false, true); // [N, L, L]
      const gamPrev = tf.exp(gPrev.expandDims(2).sub(g.expandDims(1)).mul(strict)).mul(strict); // Gam', [N, L, L]
      let rhs = tf.matMul(k, w20, false, true).mul(tf.exp(gPrev).expandDims(2)); // gamma' o K W2_0^T, [N, L, dhid]
      if (mu !== null) {
        const muMat = lowerFrom(l, (t, s) => Math.pow(mu, t - s));
        const lamPrev = tf.matMul(gamPrev.reshape([n * l, l]) as tf.Tensor2D, muMat).reshape([n, l, l]); // Lam'
        const muPow = tf.tensor2d(Array.from({ length: l }, (_, j) => [Math.pow(mu, j + 1)]), [l, 1]);
        const rhoPrev = tf.matMul(gamPrev.reshape([n * l, l]) as tf.Tensor2D, muPow).reshape([n, l, 1]); // rho'
        rhs = rhs.add(tf.matMul(k, m20 as tf.Tensor3D, false, true).mul(rhoPrev));
        rhs = rhs.add(tf.matMul(lamPrev.mul(kk) as tf.Tensor3D, wr.y2));
      } else {
        rhs = rhs.add(tf.matMul(gamPrev.mul(kk) as tf.Tensor3D, wr.y2));
      }
      rhs = rhs.mul(wr.eta.expandDims(2)).neg();
      const beta = wr.eta.mul(tf.exp(wr.logAlpha.neg())) as tf.Tensor2D; // eta / alpha
      const tInv = wyInverse(k, beta, g as tf.Tensor2D, 'blocked'); // (I + strict(diag(beta)(Gam o K K^T)))^-1
      d = tf.matMul(tInv, rhs as tf.Tensor3D);
    }

    // Final state (t = L)
    const rowScale = (a: tf.Tensor3D, s: tf.Tensor): tf.Tensor3D => a.mul(s.reshape(s.rank === 1 ? [1, l, 1] : [n, l, 1])) as tf.Tensor3D;
    let w2 = w20.mul(gammaLast.expandDims(2)).add(tf.matMul(wr.y2, rowScale(k, lamLast), true, false)); // + Y2^T diag(Lam_L) K
    let w1 = w10.mul(gammaLast.expandDims(2)).add(tf.matMul(wr.y1, rowScale(wr.h, lamLast), true, false));
    if (d) w2 = w2.add(tf.matMul(d, rowScale(k, gamLast), true, false)); // + D^T diag(Gam_L) K
    let m1: tf.Tensor | undefined;
    let m2: tf.Tensor | undefined;
    if (mu !== null && rho && muPowLast) {
      const rhoLast = rho.slice([0, l - 1], [n, 1]).expandDims(2); // [N, 1, 1]
      w2 = w2.add((m20 as tf.Tensor3D).mul(rhoLast));
      w1 = w1.add((m10 as tf.Tensor3D).mul(rhoLast));
      const muL = Math.pow(mu, l);
      m2 = (m20 as tf.Tensor3D).mul(muL).add(tf.matMul(wr.y2, rowScale(k, muPowLast), true, false));
      m1 = (m10 as tf.Tensor3D).mul(muL).add(tf.matMul(wr.y1, rowScale(wr.h, muPowLast), true, false));
    }
    const state: GroupWeights =
      mu !== null
        ? { w1: w1 as tf.Tensor3D, w2: w2 as tf.Tensor3D, m1: m1 as tf.Tensor3D, m2: m2 as tf.Tensor3D }
        : { w1: w1 as tf.Tensor3D, w2: w2 as tf.Tensor3D };
    const res: SegmentResult = { state };

    if (wr.q) {
      const q = wr.q;
      const gamma = tf.exp(g).expandDims(2); // [N, L, 1]
      const qk = tf.matMul(q, k, false, true); // [N, L, L]
      // W2_t q_t
      let z = tf.matMul(q, w20, false, true).mul(gamma).add(tf.matMul(lam.mul(qk) as tf.Tensor3D, wr.y2));
      if (d) z = z.add(tf.matMul(gam.mul(qk) as tf.Tensor3D, d));
      if (rho) z = z.add(tf.matMul(q, m20 as tf.Tensor3D, false, true).mul(rho.expandDims(2)));
      const r = activate(opts.act, z) as tf.Tensor3D; // [N, L, dhid]
      // W1_t r_t
      let o = tf.matMul(r, w10, false, true).mul(gamma).add(tf.matMul(lam.mul(tf.matMul(r, wr.h, false, true)) as tf.Tensor3D, wr.y1));
      if (rho) o = o.add(tf.matMul(r, m10 as tf.Tensor3D, false, true).mul(rho.expandDims(2)));
      res.o = q.add(o) as tf.Tensor3D;
    }
    return res as unknown as tf.TensorContainer;
  }) as unknown as SegmentResult;
}
