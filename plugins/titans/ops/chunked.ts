/**
 * Chunk-parallel form of ops/naive.ts (same math, same inputs; naive == chunked for every C).
 *
 * Within a chunk of C tokens (rows t, s = 1..C) starting from fast weights M_0 and momentum S_0, every
 * per-token gradient is rank-1 at M_0: g_s = u_s a_s^T (ops/memory.ts), scaled by its clip factor into
 * theta'_s = theta_s min(1, clip / |g_s|). Unrolling S_t = eta_t S_{t-1} - theta'_t g_t and
 * M_t = (1 - alpha_t) M_{t-1} + S_t (Titans Eqs. 10, 13; chunked as Eqs. 16-18):
 *   A[t, r] = prod_{u=r+1..t} (1 - alpha_u),  E[r, s] = prod_{u=s+1..r} eta_u   (lower-triangular C x C)
 *   a_t = prod_{u<=t} (1 - alpha_u),  e_t = prod_{u<=t} eta_u,  b = A e
 *   S_t = e_t S_0 - sum_{s<=t} E[t, s] theta'_s g_s
 *   M_t = a_t M_0 + b_t S_0 + sum_{s<=t} c[t, s] g_s,   c = -(A E) diag(theta')
 * so a read of the matrix at x_t needs no per-token weight copy (an attention-like product):
 *   M_t x_t = a_t M_0 x_t + b_t S_0 x_t + sum_s c[t, s] (a_s . x_t) u_s
 *   -> rows: diag(a) X M_0^T + diag(b) X S_0^T + (c o (X A_f^T)) U_f   (A_f, U_f: factor rows)
 * The 'mlp' memory reads W2_t q_t with that formula, applies act, then W1_t to the result (same formula
 * with the h-factors). The chunk-end state is the same sums at the chunk's last real row.
 * Products of per-token factors come from masked differences of cumulative log sums (ops/tf-util.ts).
 * Heads and sequences share the matmul batch axis [N, C, d]; the JS loop runs over chunks only.
 * A partial chunk is zero-padded: rows past the last real token only feed rows that are dropped
 * (c, A, E are lower-triangular), and the end state is taken at the last real row, so the pad is exact.
 * Chunks are counted along the stream and run (checkpointed by default) by ops/segments.ts; this file
 * is the per-chunk block, whose inner gradients are taken at `gp` (the chunk-start weights, or the
 * carried snapshot when a call starts inside a chunk) while the decays start from the running M_0, S_0.
 */
import * as tf from '@tensorflow/tfjs';
import { activate, applyMatrix, innerGradFactors, stepFactor, type GradFactor } from './memory';
import { runChunks, type BlockFn } from './segments';
import { decayMatrix, lowerMask } from './tf-util';
import { checkRecurrenceInputs, type TitansRecurrenceInputs, type TitansRecurrenceOptions, type TitansRecurrenceOutputs } from './types';

/** One chunk of the coefficient form (see the header): rows [N, cw, *], state after row `last`. */
export const chunkedBlock: BlockFn = (opts, blk, ws, ms, gp, last) =>
  tf.tidy(() => {
    const [n, c] = blk.theta.shape;
    const col = (x: tf.Tensor): tf.Tensor => x.expandDims(-1); // [N, C] -> [N, C, 1]
    const row = (m: tf.Tensor3D, r: number): tf.Tensor2D => m.slice([0, r, 0], [n, 1, c]).reshape([n, c]) as tf.Tensor2D;
    const at = (v: tf.Tensor2D, r: number): tf.Tensor => v.slice([0, r], [n, 1]).reshape([n, 1, 1]);
    const lower = lowerMask(c); // [C, C]
    const { factors, sqNorm, errSq } = innerGradFactors(opts, gp, blk.k, blk.v); // all at the chunk-start weights
    const thetaEff = blk.theta.mul(stepFactor(sqNorm, errSq, opts.innerGradClip, opts.stepNorm)) as tf.Tensor2D; // theta', [N, C]
    const { mat: aMat, cum: logA } = decayMatrix(blk.logKeep, lower); // A, [N, C, C]
    const { mat: eMat, cum: logE } = decayMatrix(blk.logEta, lower); // E, [N, C, C]
    const aVec = tf.exp(logA) as tf.Tensor2D; // a_t, [N, C]
    const eVec = tf.exp(logE) as tf.Tensor2D; // e_t, [N, C]
    const bVec = tf.matMul(aMat, col(eVec) as tf.Tensor3D).reshape([n, c]) as tf.Tensor2D; // b = A e
    const coef = tf.matMul(aMat, eMat).mul(thetaEff.neg().expandDims(1)) as tf.Tensor3D; // c = -(A E) diag(theta')

    // rows M_t x_t of matrix j for inputs x [N, C, in]
    const read = (j: number, f: GradFactor, x: tf.Tensor3D): tf.Tensor3D =>
      col(aVec)
        .mul(applyMatrix(x, ws[j]))
        .add(col(bVec).mul(applyMatrix(x, ms[j])))
        .add(tf.matMul(coef.mul(tf.matMul(x, f.a, false, true)), f.u)) as tf.Tensor3D;
    let y: tf.Tensor3D;
    if (opts.kind === 'linear') {
      y = read(0, factors[0], blk.q);
    } else {
      const hq = activate(opts.activation, read(1, factors[1], blk.q)) as tf.Tensor3D; // act(W2_t q_t), [N, C, dh]
      y = blk.q.add(read(0, factors[0], hq)) as tf.Tensor3D; // q_t + W1_t h_t
    }

    // state after the last real token
    const cLast = row(coef, last); // c[last, :], [N, C]
    const eThetaLast = row(eMat, last).mul(thetaEff); // E[last, s] theta'_s, [N, C]
    const aL = at(aVec, last);
    const bL = at(bVec, last);
    const eL = at(eVec, last);
    const weights = ws.map((w, j) => {
      const f = factors[j];
      return w.mul(aL).add(ms[j].mul(bL)).add(tf.matMul(f.u.mul(col(cLast)), f.a, true, false)) as tf.Tensor3D;
    });
    const momenta = ms.map((m, j) => {
      const f = factors[j];
      return m.mul(eL).sub(tf.matMul(f.u.mul(col(eThetaLast)), f.a, true, false)) as tf.Tensor3D;
    });
    return { y, weights, momenta };
  });

export function chunkedTitans(inp: TitansRecurrenceInputs, opts: TitansRecurrenceOptions): TitansRecurrenceOutputs {
  checkRecurrenceInputs(inp, opts, 'chunkedTitans');
  return runChunks(inp, opts, chunkedBlock);
}
