/**
 * Chunk-parallel form of the linear-memory recurrences in ops/naive.ts (same function, same inputs).
 *
 * T is split into n = ceil(T / C) chunks of C tokens (C = min(chunkSize, T)); a partial last chunk is
 * zero-padded with k = v = q = 0, beta = 0, log alpha = 0, which leaves S unchanged (the pad is exact),
 * and the padded outputs are dropped. Everything that does not depend on the carried memory is computed
 * for all chunks at once with batched matmuls over [N n, C, d]; only S is carried across chunks in JS.
 *
 * Within a chunk with start memory S0 (token indices 1..C, "row" = token):
 *   g_t = sum_{s<=t} log alpha_s, gamma_t = exp(g_t), Gam_ts = exp(g_t - g_s) for t >= s (else 0)
 *   (g = 0 for the ungated rules). Unrolling S_t = alpha_t S_{t-1} + u'_t k_t^T gives
 *   S_t = gamma_t S0 + sum_{s<=t} Gam_ts u'_s k_s^T, with the written vectors
 *   u'_t = beta_t (v_t - alpha_t S_{t-1} k_t)
 *        = beta_t (v_t - gamma_t S0 k_t - sum_{s<t} Gam_ts (k_t . k_s) u'_s).
 *   Stacked as rows: (I + strictly_lower(diag(beta) (Gam o K K^T))) U' = diag(beta) (V - diag(gamma) K S0^T),
 *   so with A = (I + strictly_lower(...))^{-1} diag(beta)   (the WY/UT form, Yang et al. 2024):
 *   U' = U - W S0^T,  U = A V,  W = A diag(gamma) K.
 *   Reads:  O = diag(gamma) Q S0^T + P U',  P = Gam o Q K^T (lower incl. diagonal).
 *   Carry:  S_C = gamma_C S0 + U'^T diag(gamma_C / gamma) K = S0 (gamma_C I - W^T Kd) + U^T Kd,
 *           Kd = diag(exp(g_C - g)) K.
 *   Additive rule (Eq. 18): U' = V, no gates: O = Q S0^T + (lower o Q K^T) V, S_C = S0 + V^T K.
 * Gate ratios are formed as exp of masked log differences (only t >= s), so nothing overflows.
 * The carried recurrence S_c = S_{c-1} M_c + R_c is one [N, dv, dk] x [N, dk, dk] matmul per chunk
 * (a cumulative sum for the additive rule); the reads of all chunks are batched matmuls afterwards.
 */
import * as tf from '@tensorflow/tfjs';
import { checkRecurrenceInputs, type LinearAttentionRule, type RecurrenceInputs, type RecurrenceOutputs } from './types';
import { cumsumSafe, splitAxis0, stackAxis0 } from '../../../core/ops/tensor-util';
import { wyInverse, type TrilInverseMethod } from '../../../core/ops/tril-inverse';

export interface ChunkedOptions {
  /** Tokens per chunk C (a positive integer; the effective chunk is min(C, T)). */
  chunkSize: number;
  /** How (I + N)^{-1} is built (see core/ops/tril-inverse.ts). Default 'blocked'. */
  inverse?: TrilInverseMethod;
}

/** [C, C] 0/1 causal mask (lower triangle including the diagonal). */
function causalMask(c: number): tf.Tensor2D {
  const lower = new Float32Array(c * c);
  for (let i = 0; i < c; i++) for (let j = 0; j <= i; j++) lower[i * c + j] = 1;
  return tf.tensor2d(lower, [c, c]);
}

export function chunkedRecurrence(rule: LinearAttentionRule, inp: RecurrenceInputs, opts: ChunkedOptions): RecurrenceOutputs {
  checkRecurrenceInputs(rule, inp, 'chunkedRecurrence');
  if (!Number.isInteger(opts.chunkSize) || opts.chunkSize < 1) {
    throw new Error(`chunkedRecurrence: chunkSize must be a positive integer, got ${JSON.stringify(opts.chunkSize)}`);
  }
  return tf.tidy(() => {
    const [nb, t, dk] = inp.q.shape;
    const dv = inp.v.shape[2];
    const c = Math.min(opts.chunkSize, t);
    const n = Math.ceil(t / c);
    const pad = n * c - t;
    const x = nb * n; // matmul batch: sequences x heads x chunks
    // [N, T, d] -> [N n, C, d] (zero pad of the last chunk is exact, see header)
    const chunk3 = (a: tf.Tensor3D): tf.Tensor3D => {
      const d = a.shape[2];
      const padded = pad > 0 ? tf.pad(a, [[0, 0], [0, pad], [0, 0]]) : a;
      return padded.reshape([x, c, d]) as tf.Tensor3D;
    };
    const chunk2 = (a: tf.Tensor2D): tf.Tensor2D => {
      const padded = pad > 0 ? tf.pad(a, [[0, 0], [0, pad]]) : a;
      return padded.reshape([x, c]) as tf.Tensor2D;
    };
    const q = chunk3(inp.q); // [X, C, dk]
    const k = chunk3(inp.k); // [X, C, dk]
    const v = chunk3(inp.v); // [X, C, dv]
    const lower = causalMask(c); // [C, C]

    let starts: tf.Tensor3D; // [X, dv, dk], memory at the start of every chunk
    let sFinal: tf.Tensor3D; // [N, dv, dk]
    let read: (starts: tf.Tensor3D) => tf.Tensor3D; // [X, C, dv] outputs given the chunk-start memories

    if (rule === 'additive') {
      const p = tf.matMul(q, k, false, true).mul(lower) as tf.Tensor3D; // causal q k^T, [X, C, C]
      read = (st) => tf.matMul(q, st, false, true).add(tf.matMul(p, v)) as tf.Tensor3D; // Q S0^T + P V
      const inc = tf.matMul(v, k, true, false).reshape([nb, n, dv, dk]); // V^T K per chunk
      const before = cumsumSafe(inc, 1, true); // exclusive prefix sums over chunks, [N, n, dv, dk]
      starts = before.add(inp.s0.expandDims(1)).reshape([x, dv, dk]) as tf.Tensor3D; // S at each chunk start
      const last = (a: tf.Tensor): tf.Tensor => a.slice([0, n - 1, 0, 0], [nb, 1, dv, dk]).reshape([nb, dv, dk]);
      sFinal = last(before).add(last(inc)).add(inp.s0) as tf.Tensor3D;
    } else {
      const beta = chunk2(inp.beta as tf.Tensor2D); // [X, C]
      let gam: tf.Tensor3D; // Gam, [X, C, C], zero above the diagonal
      let g: tf.Tensor2D | null = null; // [X, C], in-chunk cumulative log gates
      let gamma: tf.Tensor2D | null = null; // [X, C]
      let gLast: tf.Tensor2D | null = null; // [X, 1]
      let decayToEnd: tf.Tensor2D | null = null; // gamma_C / gamma_t, [X, C]
      if (rule === 'gated-delta') {
        g = cumsumSafe(chunk2(inp.logAlpha as tf.Tensor2D), 1) as tf.Tensor2D; // <= 0
        gamma = tf.exp(g);
        gLast = g.slice([0, c - 1], [x, 1]);
        decayToEnd = tf.exp(gLast.sub(g)) as tf.Tensor2D; // <= 1
        const diff = g.expandDims(2).sub(g.expandDims(1)); // g_t - g_s, [X, C, C]
        gam = tf.exp(diff.mul(lower)).mul(lower) as tf.Tensor3D; // exp only of t >= s entries
      } else {
        gam = lower.expandDims(0) as unknown as tf.Tensor3D; // [1, C, C], broadcasts
      }
      // (I + strictly_lower(diag(beta) (Gam o K K^T)))^-1 diag(beta): scale the columns by beta
      const a = wyInverse(k, beta, g, opts.inverse ?? 'blocked').mul(beta.expandDims(1)) as tf.Tensor3D;
      const kGamma = gamma ? (k.mul(gamma.expandDims(2)) as tf.Tensor3D) : k; // diag(gamma) K
      const u = tf.matMul(a, v); // [X, C, dv]
      const w = tf.matMul(a, kGamma); // [X, C, dk]
      const p = tf.matMul(q, k, false, true).mul(gam) as tf.Tensor3D; // [X, C, C]
      const qGamma = gamma ? (q.mul(gamma.expandDims(2)) as tf.Tensor3D) : q; // diag(gamma) Q
      // O = diag(gamma) Q S0^T + P U' with the written vectors U' = U - W S0^T (cheaper than P W first)
      read = (st) => {
        const uWritten = u.sub(tf.matMul(w, st, false, true)); // [X, C, dv]
        return tf.matMul(qGamma, st, false, true).add(tf.matMul(p, uWritten)) as tf.Tensor3D;
      };
      const kd = decayToEnd ? (k.mul(decayToEnd.expandDims(2)) as tf.Tensor3D) : k; // [X, C, dk]
      const r = tf.matMul(u, kd, true, false).reshape([nb, n, dv, dk]); // U^T Kd
      const wk = tf.matMul(w, kd, true, false); // W^T Kd, [X, dk, dk]
      const eyeK = tf.eye(dk).expandDims(0); // [1, dk, dk]
      const m = (gLast ? eyeK.mul(tf.exp(gLast).expandDims(2)) : eyeK).sub(wk).reshape([nb, n, dk, dk]); // gamma_C I - W^T Kd
      // Chunk-major, so each chunk's slice is contiguous; splitAxis0/stackAxis0 keep the per-chunk
      // slicing O(size log n) on wasm (see core/ops/tensor-util.ts).
      const rs = splitAxis0(r.transpose([1, 0, 2, 3])) as tf.Tensor3D[]; // n x [N, dv, dk]
      const ms = splitAxis0(m.transpose([1, 0, 2, 3])) as tf.Tensor3D[]; // n x [N, dk, dk]
      const carried: tf.Tensor3D[] = [];
      let s = inp.s0;
      for (let i = 0; i < n; i++) {
        carried.push(s);
        s = tf.matMul(s, ms[i]).add(rs[i]) as tf.Tensor3D; // S_c = S_{c-1} M_c + R_c
      }
      sFinal = s;
      starts = (n === 1 ? carried[0] : stackAxis0(carried).transpose([1, 0, 2, 3]).reshape([x, dv, dk])) as tf.Tensor3D;
    }
    const o = read(starts).reshape([nb, n * c, dv]); // [N, n C, dv]
    return { o: (pad > 0 ? o.slice([0, 0, 0], [nb, t, dv]) : o) as tf.Tensor3D, s: sFinal };
  });
}
