/**
 * Token-by-token reference of the linear-memory recurrences (the ground truth for ops/chunked.ts).
 * A JS loop over t of small batched tf ops; slow (O(T) kernel launches) but obviously right.
 *
 * Per sequence and head, S in R^{dv x dk}, and for t = 1..T:
 *   additive    (linear attention, paper Eq. 18):  S_t = S_{t-1} + v_t k_t^T
 *   delta       (DeltaNet):                        S_t = S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T
 *   gated-delta (gated DeltaNet; DGD, Eq. 57/93):  S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T
 *   read:                                          o_t = S_t q_t
 * The delta rules are evaluated in the equivalent "error" form S' + beta (v - S' k) k^T with S' = alpha S,
 * which is one gradient step on 1/2 ||S' k - v||^2 with step beta.
 */
import * as tf from '@tensorflow/tfjs';
import { splitAxis0, stackAxis0 } from '../../../core/ops/tensor-util';
import { checkRecurrenceInputs, type LinearAttentionRule, type RecurrenceInputs, type RecurrenceOutputs } from './types';

export function naiveRecurrence(rule: LinearAttentionRule, inp: RecurrenceInputs): RecurrenceOutputs {
  checkRecurrenceInputs(rule, inp, 'naiveRecurrence');
  return tf.tidy(() => {
    const [n, t, dk] = inp.q.shape;
    const dv = inp.v.shape[2];
    // Time-major, so each token's slice is contiguous; splitAxis0 slices in O(size log T) on wasm
    // (tf.unstack would copy the whole input once per token there, see core/ops/tensor-util.ts).
    const qs = splitAxis0(inp.q.transpose([1, 0, 2])); // T x [N, dk]
    const ks = splitAxis0(inp.k.transpose([1, 0, 2])); // T x [N, dk]
    const vs = splitAxis0(inp.v.transpose([1, 0, 2])); // T x [N, dv]
    const betas = rule === 'additive' ? [] : splitAxis0((inp.beta as tf.Tensor2D).transpose()); // T x [N]
    const alphas = rule === 'gated-delta' ? splitAxis0(tf.exp(inp.logAlpha as tf.Tensor2D).transpose()) : []; // T x [N]
    let s: tf.Tensor3D = inp.s0; // [N, dv, dk]
    const outs: tf.Tensor2D[] = [];
    for (let i = 0; i < t; i++) {
      const kCol = ks[i].reshape([n, dk, 1]) as tf.Tensor3D; // [N, dk, 1]
      const vCol = vs[i].reshape([n, dv, 1]) as tf.Tensor3D; // [N, dv, 1]
      let write: tf.Tensor3D; // [N, dv, 1], the vector written along k_t
      if (rule === 'additive') {
        write = vCol;
      } else {
        if (rule === 'gated-delta') s = s.mul(alphas[i].reshape([n, 1, 1])); // alpha_t S_{t-1}
        const pred = tf.matMul(s, kCol); // S' k_t, [N, dv, 1]
        write = vCol.sub(pred).mul(betas[i].reshape([n, 1, 1])); // beta_t (v_t - S' k_t)
      }
      s = s.add(tf.matMul(write, kCol, false, true)); // + write k_t^T, [N, dv, dk]
      outs.push(tf.matMul(s, qs[i].reshape([n, dk, 1])).reshape([n, dv]) as tf.Tensor2D); // o_t = S_t q_t
    }
    const o = stackAxis0(outs).transpose([1, 0, 2]) as tf.Tensor3D; // [T, N, dv] -> [N, T, dv]
    return { o, s };
  });
}
