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
 * Chunks are counted along the stream: a call that starts `position` tokens into a chunk takes the
 * gradients of its first tokens at the carried `chunkStart` weights.
 * With `checkpoint: false` this is one token loop over the whole call on the tape (the reference of the
 * tests). With checkpointing (default) the same token loop runs per chunk under ops/segments.ts, which
 * recomputes each chunk in the backward pass, so memory holds one chunk's per-token matrices, not T.
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../../../core/ops/stop-gradient';
import { applyMemory, innerGradFactors, stepFactor } from './memory';
import { runChunks, type BlockFn } from './segments';
import { splitAxis0, stackAxis0 } from './tf-util';
import { checkRecurrenceInputs, type TitansRecurrenceInputs, type TitansRecurrenceOptions, type TitansRecurrenceOutputs } from './types';

/** One token update (Eqs. 10, 13, 15) with the gradient at `gp`: k, v, q [N, d]; theta, eta, keep [N]. */
function tokenStep(
  opts: TitansRecurrenceOptions,
  ws: tf.Tensor3D[],
  ms: tf.Tensor3D[],
  gp: tf.Tensor3D[],
  x: { q: tf.Tensor; k: tf.Tensor; v: tf.Tensor; theta: tf.Tensor; eta: tf.Tensor; keep: tf.Tensor },
): { ws: tf.Tensor3D[]; ms: tf.Tensor3D[]; y: tf.Tensor } {
  const [n, d] = x.q.shape;
  const col = (s: tf.Tensor): tf.Tensor3D => s.reshape([n, 1, 1]) as tf.Tensor3D;
  const { factors, sqNorm, errSq } = innerGradFactors(opts, gp, x.k.reshape([n, 1, d]) as tf.Tensor3D, x.v.reshape([n, 1, d]) as tf.Tensor3D);
  // |g_t|_F^2 = sum_j |u_j|^2 |a_j|^2 (the identity is checked against autodiff in ops.test.ts)
  const step = x.theta.mul(stepFactor(sqNorm.reshape([n]), errSq.reshape([n]), opts.innerGradClip, opts.stepNorm)).reshape([n, 1, 1]); // theta_t * clip (* normalisation)
  // theta_t g_t = (theta_t u)^T a, materialised as a full [N, out, in] matrix per token
  const nms = ms.map((m, j) => m.mul(col(x.eta)).sub(tf.matMul(factors[j].u.mul(step), factors[j].a, true, false)) as tf.Tensor3D); // Eq. 10
  const nws = ws.map((w, j) => w.mul(col(x.keep)).add(nms[j]) as tf.Tensor3D); // Eq. 13
  return { ws: nws, ms: nms, y: applyMemory(opts, nws, x.q.reshape([n, 1, d]) as tf.Tensor3D).reshape([n, d]) }; // Eq. 15
}

/** Per-chunk token loop for ops/segments.ts (rows 0..last; padding rows of y are zeros). */
export const naiveBlock: BlockFn = (opts, blk, ws0, ms0, gp, last) =>
  tf.tidy(() => {
    const [n, c, d] = blk.q.shape;
    const rows = (x: tf.Tensor3D): tf.Tensor[] => splitAxis0(x.transpose([1, 0, 2])); // cw x [N, d]
    const scal = (x: tf.Tensor2D): tf.Tensor[] => splitAxis0(x.transpose()); // cw x [N]
    const [qs, ks, vs, th] = [rows(blk.q), rows(blk.k), rows(blk.v), scal(blk.theta)];
    const etas = scal(tf.exp(blk.logEta) as tf.Tensor2D);
    const keeps = scal(tf.exp(blk.logKeep) as tf.Tensor2D);
    let ws = ws0;
    let ms = ms0;
    const outs: tf.Tensor[] = [];
    for (let i = 0; i <= last; i++) {
      const r = tokenStep(opts, ws, ms, gp, { q: qs[i], k: ks[i], v: vs[i], theta: th[i], eta: etas[i], keep: keeps[i] });
      ws = r.ws;
      ms = r.ms;
      outs.push(r.y);
    }
    let y = stackAxis0(outs).transpose([1, 0, 2]); // [N, last + 1, d]
    if (last + 1 < c) y = tf.concat([y, tf.zeros([n, c - last - 1, d])], 1);
    return { y: y as tf.Tensor3D, weights: ws, momenta: ms };
  });

export function naiveTitans(inp: TitansRecurrenceInputs, opts: TitansRecurrenceOptions): TitansRecurrenceOutputs {
  checkRecurrenceInputs(inp, opts, 'naiveTitans');
  if (opts.checkpoint !== false) return runChunks(inp, opts, naiveBlock);
  return tf.tidy(() => {
    const t = inp.q.shape[1];
    const p = inp.position ?? 0;
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
    let chunkStart = p > 0 ? (inp.chunkStart as tf.Tensor3D[]) : ws; // weights the current chunk's gradients are taken at
    const outs: tf.Tensor[] = [];
    for (let i = 0; i < t; i++) {
      if ((p + i) % opts.chunkSize === 0) chunkStart = ws;
      const r = tokenStep(opts, ws, ms, chunkStart.map(sg), { q: qs[i], k: ks[i], v: vs[i], theta: thetas[i], eta: etas[i], keep: keeps[i] });
      ws = r.ws;
      ms = r.ms;
      outs.push(r.y);
    }
    const position = (p + t) % opts.chunkSize;
    if (position === 0) chunkStart = ws;
    const y = stackAxis0(outs).transpose([1, 0, 2]) as tf.Tensor3D; // [T, N, d] -> [N, T, d]
    return { y, weights: ws, momenta: ms, chunkStart, position };
  }) as unknown as TitansRecurrenceOutputs;
}
