/**
 * Token-by-token reference of the Titans memory (ground truth for ops/chunked.ts). Per sequence/head,
 * for t = 1..T with chunk size C (chunk start state M_c = state after the previous chunk):
 *   g_t = d l(M(k_t), v_t) / dM  evaluated at M_c               (Titans Eqs. 16-18; Decision for Eq. 90)
 *   g_t <- g_t * min(1, clip / |g_t|_F)                          (per-token inner-gradient clip)
 *   S_t = eta_t S_{t-1} - theta_t g_t                            (surprise momentum, Eq. 10)
 *   M_t = (1 - alpha_t) M_{t-1} + S_t                            (forgetting, Eq. 13)
 *   y_t = M_t(q_t)                                               (retrieval after the write, Eq. 15)
 * Every update is materialised as full [N, out, in] matrices (explicit outer products) and every read
 * uses the explicit per-token weights, so this shares no algebra with the chunked coefficient form
 * (it shares only the analytic factors of ops/memory.ts, which ops.test.ts checks against autodiff).
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../../../core/ops/stop-gradient';
import { applyMemory, clipFactor, innerGradFactors } from './memory';
import { splitAxis0, stackAxis0 } from './tf-util';
import { checkRecurrenceInputs, type TitansRecurrenceInputs, type TitansRecurrenceOptions, type TitansRecurrenceOutputs } from './types';

export function naiveTitans(inp: TitansRecurrenceInputs, opts: TitansRecurrenceOptions): TitansRecurrenceOutputs {
  checkRecurrenceInputs(inp, opts, 'naiveTitans');
  return tf.tidy(() => {
    const [n, t, d] = inp.q.shape;
    // 'stop': the write path (keys, values, rates, and the state the gradients are taken at) carries
    // no gradient; reads (q and the carried state) stay differentiable.
    const sg = <T extends tf.Tensor>(x: T): T => (opts.gradientMode === 'stop' ? stopGradient(x) : x);
    const tokens = (x: tf.Tensor3D): tf.Tensor[] => splitAxis0(x.transpose([1, 0, 2])); // T x [N, d]
    const scalars = (x: tf.Tensor2D): tf.Tensor[] => splitAxis0(x.transpose()); // T x [N]
    const qs = tokens(inp.q);
    const ks = tokens(sg(inp.k));
    const vs = tokens(sg(inp.v));
    const thetas = scalars(sg(inp.theta));
    const etas = scalars(tf.exp(sg(inp.logEta)) as tf.Tensor2D);
    const keeps = scalars(tf.exp(sg(inp.logKeep)) as tf.Tensor2D);
    let ws = inp.weights.slice();
    let ms = inp.momenta.slice();
    let atChunkStart = ws.map(sg);
    const outs: tf.Tensor[] = [];
    for (let i = 0; i < t; i++) {
      if (i % opts.chunkSize === 0) atChunkStart = ws.map(sg);
      const col = (x: tf.Tensor): tf.Tensor3D => x.reshape([n, 1, 1]) as tf.Tensor3D;
      const { factors, sqNorm } = innerGradFactors(opts, atChunkStart, ks[i].reshape([n, 1, d]) as tf.Tensor3D, vs[i].reshape([n, 1, d]) as tf.Tensor3D);
      // |g_t|_F^2 = sum_j |u_j|^2 |a_j|^2 (the identity is checked against autodiff in ops.test.ts)
      const step = thetas[i].mul(clipFactor(sqNorm.reshape([n]), opts.innerGradClip)).reshape([n, 1, 1]); // theta_t * clip
      // theta_t g_t = (theta_t u)^T a, materialised as a full [N, out, in] matrix per token
      ms = ms.map((m, j) => m.mul(col(etas[i])).sub(tf.matMul(factors[j].u.mul(step), factors[j].a, true, false)) as tf.Tensor3D); // Eq. 10
      ws = ws.map((w, j) => w.mul(col(keeps[i])).add(ms[j]) as tf.Tensor3D); // Eq. 13
      outs.push(applyMemory(opts, ws, qs[i].reshape([n, 1, d]) as tf.Tensor3D).reshape([n, d])); // Eq. 15
    }
    const y = stackAxis0(outs).transpose([1, 0, 2]) as tf.Tensor3D; // [T, N, d] -> [N, T, d]
    return { y, weights: ws, momenta: ms };
  });
}
