/**
 * The per-head memory M of the Titans long-term memory (Titans Eqs. 9-15; paper-notes section 5) and
 * its analytic inner gradient (no nested tf.grad: tfjs second derivatives are unreliable).
 *
 * Two kinds (fast weights are [N, out, in] with N = batch x heads, so every sequence and head owns one):
 *   'linear':  M(x) = W x                    W [d, d]
 *   'mlp':     M(x) = x + W1 act(W2 x)       W1 [d, dh], W2 [dh, d]   (residual 2-layer MLP, Eq. 89 shape)
 * Inner loss l(M(k), v) through core InnerLoss, e = dl/dpred. Its gradient w.r.t. each weight matrix is
 * rank-1 per token, u a^T:
 *   linear:  dW  = e k^T                         (u = e,  a = k)
 *   mlp:     z = W2 k, h = act(z)
 *            dW1 = e h^T                         (u = e,  a = h)
 *            dW2 = ((W1^T e) * act'(z)) k^T      (u = delta, a = k)
 */
import * as tf from '@tensorflow/tfjs';
import type { InnerLoss } from '../../../core/inner-loss';

export type MemoryKind = 'linear' | 'mlp';
export const MEMORY_KINDS: readonly MemoryKind[] = ['linear', 'mlp'];
/** Hidden activation of the 'mlp' memory. */
export type MemoryActivation = 'silu' | 'tanh' | 'relu';
export const MEMORY_ACTIVATIONS: readonly MemoryActivation[] = ['silu', 'tanh', 'relu'];

/** State keys: fast weights and their momenta (surprise S, Titans Eq. 10), in matching order. */
export const MEMORY_KEYS: Readonly<Record<MemoryKind, { weights: readonly string[]; momenta: readonly string[] }>> = {
  linear: { weights: ['W'], momenta: ['S'] },
  mlp: { weights: ['W1', 'W2'], momenta: ['S1', 'S2'] },
};

/** [out, in] of each fast-weight matrix (same order as MEMORY_KEYS[kind].weights). */
export function memoryMatrixShapes(kind: MemoryKind, d: number, hidden: number): number[][] {
  return kind === 'linear' ? [[d, d]] : [[d, hidden], [hidden, d]];
}

export interface MemorySpec {
  kind: MemoryKind;
  activation: MemoryActivation;
  loss: InnerLoss;
}

export function activate(act: MemoryActivation, z: tf.Tensor): tf.Tensor {
  switch (act) {
    case 'silu':
      return z.mul(tf.sigmoid(z));
    case 'tanh':
      return tf.tanh(z);
    case 'relu':
      return tf.relu(z);
  }
}

/** act'(z), elementwise. silu' = s (1 + z (1 - s)) with s = sigmoid(z); tanh' = 1 - tanh^2; relu' = step. */
export function activateGrad(act: MemoryActivation, z: tf.Tensor): tf.Tensor {
  switch (act) {
    case 'silu': {
      const s = tf.sigmoid(z);
      return s.mul(z.mul(s.neg().add(1)).add(1));
    }
    case 'tanh':
      return tf.tanh(z).square().neg().add(1);
    case 'relu':
      return tf.step(z);
  }
}

/** x @ W^T over the batch: x [N, C, in], W [N, out, in] -> [N, C, out]. */
export function applyMatrix(x: tf.Tensor3D, w: tf.Tensor3D): tf.Tensor3D {
  return tf.matMul(x, w, false, true);
}

/** M(x) with explicit weights: x [N, C, d] -> [N, C, d]. */
export function applyMemory(spec: MemorySpec, weights: readonly tf.Tensor3D[], x: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    if (spec.kind === 'linear') return applyMatrix(x, weights[0]);
    const h = activate(spec.activation, applyMatrix(x, weights[1])) as tf.Tensor3D; // [N, C, dh]
    return x.add(applyMatrix(h, weights[0])) as tf.Tensor3D;
  });
}

/** One rank-1 gradient factor per fast-weight matrix: per token dW = u a^T. */
export interface GradFactor {
  u: tf.Tensor3D; // [N, C, out]
  a: tf.Tensor3D; // [N, C, in]
}

/**
 * Analytic per-token inner gradients at `weights` (the same weights for every token of the block):
 * keys k, values v [N, C, d] -> factors (order of MEMORY_KEYS[kind].weights) and the squared Frobenius
 * norm of the whole per-token gradient, sum_j |u_j|^2 |a_j|^2 -> [N, C], and |e|^2 [N, C] (e = dl/dpred).
 */
export function innerGradFactors(
  spec: MemorySpec,
  weights: readonly tf.Tensor3D[],
  k: tf.Tensor3D,
  v: tf.Tensor3D,
): { factors: GradFactor[]; sqNorm: tf.Tensor2D; errSq: tf.Tensor2D } {
  type Out = { factors: GradFactor[]; sqNorm: tf.Tensor2D; errSq: tf.Tensor2D };
  return tf.tidy((): tf.TensorContainer => {
    let factors: GradFactor[];
    if (spec.kind === 'linear') {
      const e = spec.loss.grad(applyMatrix(k, weights[0]), v) as tf.Tensor3D; // [N, C, d]
      factors = [{ u: e, a: k }];
    } else {
      const z = applyMatrix(k, weights[1]); // W2 k, [N, C, dh]
      const h = activate(spec.activation, z) as tf.Tensor3D;
      const pred = k.add(applyMatrix(h, weights[0])); // k + W1 h, [N, C, d]
      const e = spec.loss.grad(pred, v) as tf.Tensor3D; // [N, C, d]
      const delta = tf.matMul(e, weights[0]).mul(activateGrad(spec.activation, z)) as tf.Tensor3D; // (W1^T e) * act'(z), [N, C, dh]
      factors = [
        { u: e, a: h },
        { u: delta, a: k },
      ];
    }
    const sq = (t: tf.Tensor): tf.Tensor => t.square().sum(-1);
    const sqNorm = tf.addN(factors.map((f) => sq(f.u).mul(sq(f.a)))) as tf.Tensor2D;
    const errSq = sq(factors[0].u) as tf.Tensor2D; // |e|^2: the first factor's u is e for both kinds
    return { factors, sqNorm, errSq } as unknown as tf.TensorContainer;
  }) as unknown as Out;
}

/** Floor inside the norm of the clip: sqrt(|g|^2 + eps) keeps the gradient finite at g = 0. */
export const CLIP_NORM_EPS = 1e-12;

/**
 * Per-token clip factor min(1, clip / |g|_F) from |g|_F^2 [...]; clip <= 0 disables clipping (factor 1).
 * Written as clip / max(|g|, clip) so it is one smooth-enough expression for autodiff.
 */
export function clipFactor(sqNorm: tf.Tensor, clip: number): tf.Tensor {
  if (!(clip > 0)) return tf.onesLike(sqNorm);
  return tf.tidy(() => tf.scalar(clip).div(tf.maximum(tf.sqrt(sqNorm.add(CLIP_NORM_EPS)), clip)));
}

/** How theta scales the inner gradient: 'none' (Titans: theta g) or 'normalized' (theta |e|^2 g / |g|^2). */
export type StepNorm = 'none' | 'normalized';
export const STEP_NORMS: readonly StepNorm[] = ['none', 'normalized'];

/** Floor of |g|^2 in the normalised step (so a zero gradient gives a zero step, not 0/0). */
export const STEP_NORM_EPS = 1e-6;

/**
 * Per-token factor f with which theta_t multiplies the inner gradient g_t = sum_j u_j a_j^T (its squared
 * Frobenius norm `sqNorm` = |g|^2 and the squared norm of the loss gradient e = dl/dpred `errSq` = |e|^2, [N, C]):
 *   'none':        f = min(1, clip / |g|)                                (Titans, the per-token clip)
 *   'normalized':  f = |e|^2 / |g|^2 * min(1, clip / |g_n|),  |g_n| = |e|^2 / |g|
 * 'normalized' is a normalised-LMS (Polyak) step: the write -theta f g changes the memory's output at the key by
 * -theta e to first order along e (e^T J J^T e = |g|^2 for J = dM(k)/dW, so the change along e/|e| is
 * theta f |g|^2 / |e| = theta |e|), i.e. theta is the fraction of the error at the key one write corrects,
 * whatever |k|, |h| or the weights' scale (for the linear memory with unit keys f = 1: the delta rule).
 * The clip then bounds the step's norm |theta f g| <= theta clip (a small |g| with a large |e| would
 * otherwise make the step huge).
 */
export function stepFactor(sqNorm: tf.Tensor, errSq: tf.Tensor, clip: number, norm: StepNorm = 'none'): tf.Tensor {
  if (norm === 'none') return clipFactor(sqNorm, clip);
  return tf.tidy(() => {
    const g2 = sqNorm.add(STEP_NORM_EPS);
    const f = errSq.div(g2); // |e|^2 / |g|^2
    if (!(clip > 0)) return f;
    const unitNorm = errSq.div(tf.sqrt(g2)); // |f g| = |e|^2 / |g|
    return f.mul(tf.scalar(clip).div(tf.maximum(unitNorm, clip)));
  });
}
