/**
 * Shared pieces of the optimizer transforms: state access, matrix views of parameters,
 * Newton-Schulz orthogonalisation (Eq. 52's sigma), the AdamW step used as a fallback for 1-D
 * parameters, and the preconditioners of Eq. 47 (diagonal) and Eqs. 38-41 (learned memory).
 *
 * Layout note. tfjs dense kernels are [in, out] (the paper writes W as [out, in]); a parameter of
 * rank >= 2 is viewed as the matrix [prod(shape[:-1]), shape[-1]], so its ROWS index inputs. The
 * paper's right-multiplication W (I - x x^T) therefore becomes a LEFT-multiplication (I - x x^T) W here.
 */
import * as tf from '@tensorflow/tfjs';
import { type NamedTensors, stateKey } from '../../core';
import { splitAxis0 } from '../../core/ops/tensor-util';
import { fail, numberField, oneOfField } from '../../core/transforms/validate';

/** The state tensor at `key`; a clear error when init was not called for that parameter. */
export function need(state: NamedTensors, key: string, who: string): tf.Tensor {
  const t = state[key];
  if (t == null) throw new Error(`${who}: state '${key}' is missing (was init called for this parameter?)`);
  return t;
}

/** How a rank-1 (or rank-0) parameter is seen as a matrix: a column [n, 1] or a row [1, n]. */
export type VectorView = 'column' | 'row';

/**
 * The matrix view of a parameter: rank >= 2 -> [prod(shape[:-1]), shape[-1]] (rows = inputs);
 * rank 1 -> [n, 1] ('column') or [1, n] ('row'); rank 0 -> [1, 1].
 */
export function matrixShape(shape: readonly number[], vector: VectorView): [number, number] {
  if (shape.length === 0) return [1, 1];
  if (shape.length === 1) return vector === 'column' ? [shape[0], 1] : [1, shape[0]];
  const last = shape[shape.length - 1];
  return [shape.slice(0, -1).reduce((a, b) => a * b, 1), last];
}

export function asMatrix(x: tf.Tensor, vector: VectorView): tf.Tensor2D {
  return tf.reshape(x, matrixShape(x.shape, vector)) as tf.Tensor2D;
}

/** Quintic Newton-Schulz coefficients (Jordan et al.'s Muon): fast convergence of the singular values towards ~1. */
export const NS_COEFFS: readonly [number, number, number] = [3.4445, -4.775, 2.0315];

/**
 * Approximate orthogonalisation U V^T of G = U S V^T (Eqs. 42-44, 52) by the quintic iteration
 *   X <- a X + (b A + c A^2) X,  A = X X^T        (wide or square: A is [r, r])
 *   X <- a X + X (b A + c A^2),  A = X^T X        (tall: A is [c, c]; the same map on the singular values)
 * started from X = G / ||G||_F. The Gram matrix is formed on the SMALLER side without transposing X.
 * G: [r, c] -> [r, c]. A zero G gives zeros. (One matrix: newtonSchulzBatch with n = 1.)
 */
export function newtonSchulz(g: tf.Tensor2D, steps: number, eps = 1e-7): tf.Tensor2D {
  return tf.tidy(() => tf.reshape(newtonSchulzBatch(tf.expandDims(g, 0) as tf.Tensor3D, steps, eps), g.shape) as tf.Tensor2D);
}

/**
 * Newton-Schulz on a batch of same-shaped matrices at once, G: [n, r, c] -> [n, r, c]; each G[i] is
 * normalised by its own Frobenius norm. Every product is one batched tf.matMul (on wasm: the project's
 * gemm kernel, the whole batch in one call), so the op count does not grow with n: 5 steps cost
 * 3 products + 4 element-wise ops for the whole batch instead of per matrix.
 */
export function newtonSchulzBatch(g: tf.Tensor3D, steps: number, eps = 1e-7): tf.Tensor3D {
  return tf.tidy(() => {
    const [, r, c] = g.shape;
    const tall = r > c;
    const norm = tf.sqrt(tf.sum(tf.square(g), [1, 2], true)); // [n, 1, 1] Frobenius norms
    let x = tf.div(g, tf.add(norm, eps)) as tf.Tensor3D; // spectral norm <= Frobenius norm <= 1
    const [a, b, cc] = NS_COEFFS;
    for (let i = 0; i < steps; i++) {
      const gram = tall ? tf.matMul(x, x, true, false) : tf.matMul(x, x, false, true); // [n, s, s], s = min(r, c)
      const poly = tf.add(tf.mul(gram, b), tf.mul(tf.matMul(gram, gram), cc)); // b A + c A^2, [n, s, s]
      x = tf.add(tf.mul(x, a), tall ? tf.matMul(x, poly) : tf.matMul(poly, x)) as tf.Tensor3D; // [n, r, c]
    }
    return x;
  });
}

/**
 * newtonSchulz of every matrix in `xs`, batching the matrices that share a shape into one
 * newtonSchulzBatch call (stacked on a new axis 0, split back afterwards). xs[i]: [r_i, c_i] ->
 * result[i]: [r_i, c_i], in input order.
 */
export function newtonSchulzMany(xs: tf.Tensor2D[], steps: number, eps = 1e-7): tf.Tensor2D[] {
  return tf.tidy(() => {
    const out: tf.Tensor2D[] = new Array(xs.length);
    const groups = new Map<string, number[]>();
    xs.forEach((x, i) => {
      const key = x.shape.join('x');
      const list = groups.get(key);
      if (list) list.push(i);
      else groups.set(key, [i]);
    });
    for (const idx of groups.values()) {
      if (idx.length === 1) {
        out[idx[0]] = newtonSchulz(xs[idx[0]], steps, eps);
        continue;
      }
      const o = newtonSchulzBatch(tf.stack(idx.map((i) => xs[i])) as tf.Tensor3D, steps, eps); // [n, r, c]
      splitAxis0(o).forEach((p, j) => (out[idx[j]] = p as tf.Tensor2D)); // O(size log n) copying on wasm
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// AdamW (also the 1-D fallback of Muon and M3)

export interface AdamParams {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
}

export const ADAM_OPTIONS = ['learningRate', 'beta1', 'beta2', 'epsilon', 'weightDecay'] as const;

export function readAdam(c: Record<string, unknown>, path: string, prefix = ''): AdamParams {
  const f = (k: string): string => (prefix ? `${prefix}${k[0].toUpperCase()}${k.slice(1)}` : k);
  return {
    learningRate: numberField(c, f('learningRate'), path, prefix ? { min: 0, default: numberField(c, 'learningRate', path, { min: 0 }) } : { min: 0 }),
    beta1: numberField(c, f('beta1'), path, { min: 0, max: 1, default: 0.9 }),
    beta2: numberField(c, f('beta2'), path, { min: 0, max: 1, default: 0.999 }),
    epsilon: numberField(c, f('epsilon'), path, { above: 0, default: 1e-8 }),
    weightDecay: numberField(c, f('weightDecay'), path, { min: 0, default: 0 }),
  };
}

/**
 * One AdamW step for one parameter (Kingma & Ba with decoupled decay, Loshchilov & Hutter):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  u = -lr (m^ / (sqrt(v^) + eps) + wd p)
 * with m^ = m / (1 - b1^t), v^ = v / (1 - b2^t). All [...P].
 */
export function adamStep(
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  p: tf.Tensor,
  step: number,
  a: AdamParams,
): { update: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  const m1 = tf.add(tf.mul(m, a.beta1), tf.mul(g, 1 - a.beta1));
  const v1 = tf.add(tf.mul(v, a.beta2), tf.mul(tf.square(g), 1 - a.beta2));
  const mHat = tf.div(m1, 1 - Math.pow(a.beta1, step));
  const vHat = tf.div(v1, 1 - Math.pow(a.beta2, step));
  let dir = tf.div(mHat, tf.add(tf.sqrt(vHat), a.epsilon));
  if (a.weightDecay > 0) dir = tf.add(dir, tf.mul(p, a.weightDecay));
  return { update: tf.mul(dir, -a.learningRate), m: m1, v: v1 };
}

/**
 * One AdamW step for parameter `n` whose moments live in the slots `<prefix>m` and `<prefix>v` of
 * `state` (prefix '' for AdamW itself, 'adam/' for the 1-D fallback of Muon and M3): writes the update
 * into `updates[n]` and the new moments into `next`.
 */
export function adamSlotStep(
  n: string,
  g: tf.Tensor,
  state: NamedTensors,
  params: NamedTensors,
  step: number,
  a: AdamParams,
  who: string,
  prefix: '' | 'adam/',
  updates: NamedTensors,
  next: NamedTensors,
): void {
  const km = stateKey(n, `${prefix}m`);
  const kv = stateKey(n, `${prefix}v`);
  const r = adamStep(g, need(state, km, who), need(state, kv, who), params[n], step, a);
  updates[n] = r.update;
  next[km] = r.m;
  next[kv] = r.v;
}

// ---------------------------------------------------------------------------------------------
// Preconditioners (Eq. 47's P; Eqs. 38-41 for the learned one)

export type PreconditionerKind = 'none' | 'diagonal' | 'learned';
export const PRECONDITIONER_KINDS: readonly PreconditionerKind[] = ['none', 'diagonal', 'learned'];

export interface PreconditionerParams {
  kind: PreconditionerKind;
  /** 'diagonal': decay of the second-moment memory. */
  beta2: number;
  /** 'diagonal': added to sqrt(v^). */
  epsilon: number;
  /** 'learned': step size of GD on the preconditioner's own objective. */
  pLearningRate: number;
  /** 'learned': upper bound on P (keeps P finite where gradients stay zero). */
  pMax: number;
}

export const PRECONDITIONER_OPTIONS = ['preconditioner', 'beta2', 'epsilon', 'pLearningRate', 'pMax'] as const;

export function readPreconditioner(c: Record<string, unknown>, path: string): PreconditionerParams {
  return {
    kind: oneOfField(c, 'preconditioner', path, PRECONDITIONER_KINDS, 'none'),
    beta2: numberField(c, 'beta2', path, { min: 0, max: 1, default: 0.999 }),
    epsilon: numberField(c, 'epsilon', path, { above: 0, default: 1e-8 }),
    pLearningRate: numberField(c, 'pLearningRate', path, { above: 0, default: 0.1 }),
    pMax: numberField(c, 'pMax', path, { above: 0, default: 1e4 }),
  };
}

/** The preconditioner's per-parameter state slots (fresh zeros). */
export function preconditionerInit(name: string, p: tf.Tensor, pc: PreconditionerParams, into: NamedTensors, ns = 'P'): void {
  if (pc.kind === 'diagonal') into[stateKey(name, `${ns}/v`)] = tf.zerosLike(p); // second moments, [...P]
  if (pc.kind === 'learned') into[stateKey(name, `${ns}/logp`)] = tf.zerosLike(p); // log P, P = 1 at init, [...P]
}

/**
 * Writes g into the preconditioner memory, then reads P g (element-wise). [...P] -> [...P].
 * - 'none': P = I.
 * - 'diagonal' (Adam-like): v = b2 v + (1-b2) g^2, P = 1 / (sqrt(v / (1 - b2^t)) + eps).
 * - 'learned' (Eqs. 38-41; Decision): P = exp(s) is a diagonal memory trained by one GD step per
 *   call on its own objective l(s; g) = 1/2 exp(2s) g^2 - s, whose minimiser over a stream of
 *   gradients is P = 1 / sqrt(E[g^2]) (Adam's preconditioner, reached by learning instead of by
 *   formula). dl/ds = P^2 g^2 - 1, clipped to <= 1 (one huge gradient cannot collapse P); s <= log pMax.
 */
export function preconditionerApply(
  name: string,
  g: tf.Tensor,
  state: NamedTensors,
  step: number,
  pc: PreconditionerParams,
  next: NamedTensors,
  who: string,
  ns = 'P',
): tf.Tensor {
  if (pc.kind === 'none') return g;
  if (pc.kind === 'diagonal') {
    const key = stateKey(name, `${ns}/v`);
    const v = tf.add(tf.mul(need(state, key, who), pc.beta2), tf.mul(tf.square(g), 1 - pc.beta2)); // [...P]
    next[key] = v;
    const vHat = tf.div(v, 1 - Math.pow(pc.beta2, step));
    return tf.div(g, tf.add(tf.sqrt(vHat), pc.epsilon));
  }
  const key = stateKey(name, `${ns}/logp`);
  const s = need(state, key, who);
  const resid = tf.sub(tf.mul(tf.exp(tf.mul(s, 2)), tf.square(g)), 1); // dl/ds = P^2 g^2 - 1, [...P]
  const s1 = tf.minimum(tf.sub(s, tf.mul(tf.minimum(resid, 1), pc.pLearningRate)), Math.log(pc.pMax));
  next[key] = s1;
  return tf.mul(tf.exp(s1), g);
}

/** Value of the learned preconditioner's objective, mean over entries (for tests and monitoring). */
export function learnedPreconditionerLoss(logp: tf.Tensor, g: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.sub(tf.mul(tf.exp(tf.mul(logp, 2)), tf.square(g)).mul(0.5), logp)) as tf.Scalar);
}

export { fail };
