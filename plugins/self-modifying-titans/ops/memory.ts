/**
 * The residual 2-layer MLP memory of self-modifying Titans (paper Eq. 89) and its analytic inner
 * gradients (Eqs. 85, 88), batched over N = (sequence, memory, head) triples.
 *
 *   M(x) = x + W1 act(W2 x),   W2 [dhid, dh] (input-facing), W1 [dh, dhid]
 *
 * Inner loss L(M(k); v^) through core InnerLoss with e = dL/dM(k). Per token the gradients are rank 1:
 *   dL/dW1 = e h^T,  dL/dW2 = u k^T,  h = act(W2 k),  u = (W1^T e) o act'(W2 k).
 * Written as ordinary tensor ops (no nested tf.grad: tfjs second derivatives are unreliable); a test
 * checks them against autodiff.
 */
import * as tf from '@tensorflow/tfjs';
import type { InnerLoss } from '../../../core/inner-loss';
import { wideToBatched } from './layout';

export type MemoryActivation = 'silu' | 'tanh';

export const L2_EPS = 1e-6;

/** a / |a| along the last axis (eps inside the root). */
export function l2Normalize(a: tf.Tensor): tf.Tensor {
  return a.mul(tf.rsqrt(a.square().sum(-1, true).add(L2_EPS)));
}
export const MEMORY_ACTIVATIONS: readonly MemoryActivation[] = ['silu', 'tanh'];

/** act(z) */
export function activate(act: MemoryActivation, z: tf.Tensor): tf.Tensor {
  return act === 'silu' ? z.mul(tf.sigmoid(z)) : tf.tanh(z);
}

/** act'(z): silu' = s (1 + z (1 - s)) with s = sigmoid(z); tanh' = 1 - tanh^2. */
export function activateGrad(act: MemoryActivation, z: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    if (act === 'tanh') return tf.scalar(1).sub(tf.tanh(z).square());
    const s = tf.sigmoid(z);
    return s.mul(z.mul(tf.scalar(1).sub(s)).add(1));
  });
}

export interface MemoryRead {
  out: tf.Tensor3D; // M(x), [N, L, dh]
  z: tf.Tensor3D; // W2 x, [N, L, dhid]
  h: tf.Tensor3D; // act(W2 x), [N, L, dhid]
}

/** Reads M(x) for x [N, L, dh] with W1 [N, dh, dhid], W2 [N, dhid, dh] (Eq. 89). */
export function readMemory(act: MemoryActivation, w1: tf.Tensor3D, w2: tf.Tensor3D, x: tf.Tensor3D): MemoryRead {
  return tf.tidy(() => {
    const z = tf.matMul(x, w2, false, true) as tf.Tensor3D; // [N, L, dhid]
    const h = activate(act, z) as tf.Tensor3D;
    const out = x.add(tf.matMul(h, w1, false, true)) as tf.Tensor3D; // x + h W1^T, [N, L, dh]
    return { out, z, h };
  });
}

export interface InnerGradients {
  /** dL/dM(k), scaled by the clip factor, [N, L, dh] (W1 gradient = e h^T). */
  e: tf.Tensor3D;
  /** (W1^T e) o act'(W2 k), scaled by the clip factor, [N, L, dhid] (W2 gradient = u k^T). */
  u: tf.Tensor3D;
  /** act(W2 k), [N, L, dhid]: the key of the W1 write. */
  h: tf.Tensor3D;
  /** Per-token inner loss value before the update, [N, L] (diagnostics). */
  loss: tf.Tensor2D;
}

/**
 * Per-token inner gradients of L(M(k_t); vhat_t) at the state (W1, W2) (the chunk-start state, Eq. 90).
 * k, vhat [N, L, dh]. `clip` (> 0) caps the Frobenius norm of each token's full gradient
 * (|dW1|^2 + |dW2|^2 = |e|^2 |h|^2 + |u|^2 |k|^2) by scaling e and u; null = no clipping.
 * The target vhat is held fixed (it is the value of Eq. 85, not differentiated by the inner step).
 */
export function innerGradients(
  act: MemoryActivation,
  loss: InnerLoss,
  w1: tf.Tensor3D,
  w2: tf.Tensor3D,
  k: tf.Tensor3D,
  vhat: tf.Tensor3D,
  clip: number | null,
): InnerGradients {
  return tf.tidy(() => innerGradientsFromRead(act, loss, w1, readMemory(act, w1, w2, k), k, vhat, clip) as unknown as tf.TensorContainer) as unknown as InnerGradients;
}

/** innerGradients given the read r = readMemory(act, w1, w2, k) (see readKeysAndTargets). */
export function innerGradientsFromRead(
  act: MemoryActivation,
  loss: InnerLoss,
  w1: tf.Tensor3D,
  r: MemoryRead,
  k: tf.Tensor3D,
  vhat: tf.Tensor3D,
  clip: number | null,
): InnerGradients {
  return tf.tidy(() => {
    let e = loss.grad(r.out, vhat) as tf.Tensor3D; // [N, L, dh]
    let u = tf.matMul(e, w1).mul(activateGrad(act, r.z)) as tf.Tensor3D; // (e W1) o act'(z), [N, L, dhid]
    if (clip !== null) {
      const sq = (a: tf.Tensor): tf.Tensor => a.square().sum(-1);
      const norm = tf.sqrt(sq(e).mul(sq(r.h)).add(sq(u).mul(sq(k))).add(1e-12)); // [N, L]
      const scale = tf.minimum(tf.scalar(1), tf.scalar(clip).div(norm)).expandDims(2); // [N, L, 1]
      e = e.mul(scale) as tf.Tensor3D;
      u = u.mul(scale) as tf.Tensor3D;
    }
    return { e, u, h: r.h, loss: loss.value(r.out, vhat) as tf.Tensor2D } as unknown as tf.TensorContainer;
  }) as unknown as InnerGradients;
}

/**
 * Reads the keys and the targets through the same state in one pass (one pair of batched matmuls
 * with 2L rows per N instead of two passes with L rows: half the per-slice matmul overhead on wasm):
 * returns the read at k (for innerGradientsFromRead) and vhat = M(v) (Eq. 84). k, v [N, L, dh].
 */
export function readKeysAndTargets(
  act: MemoryActivation,
  w1: tf.Tensor3D,
  w2: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
): { atK: MemoryRead; vhat: tf.Tensor3D } {
  return tf.tidy(() => {
    const [n, l] = k.shape;
    const r = readMemory(act, w1, w2, tf.concat([k, v], 1) as tf.Tensor3D); // [N, 2L, d]
    // halves of axis 1 as [N, 2, L d] slices: contiguous rows of L d floats (fast on wasm)
    const half = (a: tf.Tensor3D, i: 0 | 1): tf.Tensor3D => {
      const d = a.shape[2];
      return a.reshape([n, 2, l * d]).slice([0, i, 0], [n, 1, l * d]).reshape([n, l, d]) as tf.Tensor3D;
    };
    return { atK: { out: half(r.out, 0), z: half(r.z, 0), h: half(r.h, 0) }, vhat: half(r.out, 1) } as unknown as tf.TensorContainer;
  }) as unknown as { atK: MemoryRead; vhat: tf.Tensor3D };
}

/**
 * Memory-minor stacks (N1 = (n, memory) rows, n in N2; see recurrence.ts SharedSegmentWrites): the nm
 * memories of n read the same input x [N2, L, dh]. The input-facing product runs once per n on the wide
 * stack W2 [N2, nm dhid, dh] (N2 matmul slices instead of N1, and no tiled copies of x); the hidden
 * layer is then regrouped per memory for W1. Returns out = M_j(x) per memory [N1, L, dh], and z, h [N1, L, dhid].
 */
export function readShared(act: MemoryActivation, w1: tf.Tensor3D, w2: tf.Tensor3D, x: tf.Tensor3D, nm: number): MemoryRead {
  return tf.tidy(() => {
    const [n2, l, dh] = x.shape;
    const dz = w2.shape[1];
    const zw = tf.matMul(x, w2.reshape([n2, nm * dz, dh]) as tf.Tensor3D, false, true); // [N2, L, nm dhid]
    const z = wideToBatched(zw, nm); // [N1, L, dhid]
    const h = activate(act, z) as tf.Tensor3D;
    const hw1 = tf.matMul(h, w1, false, true); // h W1^T, [N1, L, dh]
    const out = (nm === 1 ? hw1.add(x) : hw1.reshape([n2, nm, l, dh]).add(x.expandDims(1)).reshape([n2 * nm, l, dh])) as tf.Tensor3D;
    return { out, z, h };
  });
}

/**
 * innerGradients for memory-minor stacks whose memories share the keys k and the target inputs v
 * [N2, L, dh] (targets vhat_j = M_j(v), Eq. 84): keys and targets are read by two readShared calls
 * (no concatenated [k; v] rows: splitting them again costs more on wasm than the extra products), then
 * e, u and the clip as innerGradientsFromRead. Returns e [N1, L, dh], u and h [N1, L, dhid] (same
 * values as innerGradients on the tiled keys and targets; tested).
 */
export function sharedInnerGradients(
  act: MemoryActivation,
  loss: InnerLoss,
  w1: tf.Tensor3D,
  w2: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  nm: number,
  clip: number | null,
): { e: tf.Tensor3D; u: tf.Tensor3D; h: tf.Tensor3D } {
  return tf.tidy(() => {
    const [n2, l] = k.shape;
    const n1 = n2 * nm;
    const atK = readShared(act, w1, w2, k, nm); // [N1, L, .]
    const vhat = readShared(act, w1, w2, v, nm).out;
    const h = atK.h;
    let e = loss.grad(atK.out, vhat) as tf.Tensor3D; // [N1, L, dh]
    let u = tf.matMul(e, w1).mul(activateGrad(act, atK.z)) as tf.Tensor3D; // [N1, L, dhid]
    if (clip !== null) {
      const sq = (a: tf.Tensor): tf.Tensor => a.square().sum(-1);
      const kk = nm === 1 ? sq(k) : sq(k).reshape([n2, 1, l]).add(tf.zeros([1, nm, 1])).reshape([n1, l]); // |k|^2 per memory row
      const norm = tf.sqrt(sq(e).mul(sq(h)).add(sq(u).mul(kk)).add(1e-12)); // [N1, L]
      const scale = tf.minimum(tf.scalar(1), tf.scalar(clip).div(norm)).expandDims(2);
      e = e.mul(scale) as tf.Tensor3D;
      u = u.mul(scale) as tf.Tensor3D;
    }
    return { e, u, h } as unknown as tf.TensorContainer;
  }) as unknown as { e: tf.Tensor3D; u: tf.Tensor3D; h: tf.Tensor3D };
}
