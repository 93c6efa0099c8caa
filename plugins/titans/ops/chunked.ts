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
 * A partial last chunk is zero-padded: rows past the last real token only feed rows that are dropped
 * (c, A, E are lower-triangular), and the end state is taken at the last real row, so the pad is exact.
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../../../core/ops/stop-gradient';
import { activate, applyMatrix, clipFactor, innerGradFactors, type GradFactor } from './memory';
import { decayMatrix, lowerMask, splitAxis0, stackAxis0 } from './tf-util';
import { checkRecurrenceInputs, type TitansRecurrenceInputs, type TitansRecurrenceOptions, type TitansRecurrenceOutputs } from './types';

export function chunkedTitans(inp: TitansRecurrenceInputs, opts: TitansRecurrenceOptions): TitansRecurrenceOutputs {
  checkRecurrenceInputs(inp, opts, 'chunkedTitans');
  return tf.tidy(() => {
    const [n, t, d] = inp.q.shape;
    const sg = <T extends tf.Tensor>(x: T): T => (opts.gradientMode === 'stop' ? stopGradient(x) : x);
    const c = Math.min(opts.chunkSize, t);
    const nc = Math.ceil(t / c);
    const pad = nc * c - t;
    // [N, T, d] -> nc x [N, C, d] (chunk-major so each piece is contiguous; see tf-util splitAxis0)
    const chunks3 = (x: tf.Tensor3D): tf.Tensor3D[] => {
      const p = pad > 0 ? tf.pad(x, [[0, 0], [0, pad], [0, 0]]) : x;
      const parts = nc === 1 ? [p] : splitAxis0(p.reshape([n, nc, c, d]).transpose([1, 0, 2, 3]));
      return parts as tf.Tensor3D[];
    };
    const chunks2 = (x: tf.Tensor2D): tf.Tensor2D[] => {
      const p = pad > 0 ? tf.pad(x, [[0, 0], [0, pad]]) : x;
      const parts = nc === 1 ? [p] : splitAxis0(p.reshape([n, nc, c]).transpose([1, 0, 2]));
      return parts as tf.Tensor2D[];
    };
    const qs = chunks3(inp.q);
    const ks = chunks3(sg(inp.k));
    const vs = chunks3(sg(inp.v));
    const thetas = chunks2(sg(inp.theta));
    const logEtas = chunks2(sg(inp.logEta));
    const logKeeps = chunks2(sg(inp.logKeep));
    const lower = lowerMask(c); // [C, C]
    const col = (x: tf.Tensor): tf.Tensor => x.expandDims(-1); // [N, C] -> [N, C, 1]
    const row = (m: tf.Tensor3D, r: number): tf.Tensor2D => m.slice([0, r, 0], [n, 1, c]).reshape([n, c]) as tf.Tensor2D;
    const at = (v: tf.Tensor2D, r: number): tf.Tensor => v.slice([0, r], [n, 1]).reshape([n, 1, 1]);

    let ws = inp.weights.slice();
    let ms = inp.momenta.slice();
    const outs: tf.Tensor[] = [];
    for (let ci = 0; ci < nc; ci++) {
      const last = ci === nc - 1 ? t - ci * c - 1 : c - 1; // last real row of this chunk
      const { factors, sqNorm } = innerGradFactors(opts, ws.map(sg), ks[ci], vs[ci]); // all at M_0 of the chunk
      const thetaEff = thetas[ci].mul(clipFactor(sqNorm, opts.innerGradClip)) as tf.Tensor2D; // theta', [N, C]
      const { mat: aMat, cum: logA } = decayMatrix(logKeeps[ci], lower); // A, [N, C, C]
      const { mat: eMat, cum: logE } = decayMatrix(logEtas[ci], lower); // E, [N, C, C]
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
        y = read(0, factors[0], qs[ci]);
      } else {
        const hq = activate(opts.activation, read(1, factors[1], qs[ci])) as tf.Tensor3D; // act(W2_t q_t), [N, C, dh]
        y = qs[ci].add(read(0, factors[0], hq)) as tf.Tensor3D; // q_t + W1_t h_t
      }
      outs.push(y);

      // state after the last real token
      const cLast = row(coef, last); // c[last, :], [N, C]
      const eThetaLast = row(eMat, last).mul(thetaEff); // E[last, s] theta'_s, [N, C]
      const aL = at(aVec, last);
      const bL = at(bVec, last);
      const eL = at(eVec, last);
      const nextW = ws.map((w, j) => {
        const f = factors[j];
        return w.mul(aL).add(ms[j].mul(bL)).add(tf.matMul(f.u.mul(col(cLast)), f.a, true, false)) as tf.Tensor3D;
      });
      const nextS = ms.map((m, j) => {
        const f = factors[j];
        return m.mul(eL).sub(tf.matMul(f.u.mul(col(eThetaLast)), f.a, true, false)) as tf.Tensor3D;
      });
      ws = nextW;
      ms = nextS;
    }
    const yAll = nc === 1 ? outs[0] : stackAxis0(outs).transpose([1, 0, 2, 3]).reshape([n, nc * c, d]); // [N, nc C, d]
    const y = (pad > 0 ? yAll.slice([0, 0, 0], [n, t, d]) : yAll) as tf.Tensor3D;
    return { y, weights: ws, momenta: ms };
  });
}
