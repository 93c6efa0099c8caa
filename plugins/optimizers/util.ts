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
import { type JsonValue, type NamedTensors, stateKey } from '../../core';
import { splitAxis0 } from '../../core/ops/tensor-util';
import { fail, numberField, oneOfField } from '../../core/transforms/validate';
import { fusedKernelUsable } from '../../core/ops/fused-step';
import { NEWTON_SCHULZ_KERNEL, type NewtonSchulzAttrs } from '../../core/transforms/newton-schulz-kernel';

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

let fusedNs = true;

/**
 * Whether Newton-Schulz may use the backend's fused kernel (`NlNewtonSchulz`, core/transforms/
 * newton-schulz-kernel.ts; on wasm the whole iteration per matrix in one gemm.wasm call) when it is
 * registered and no gradient tape records. false: always the op path below (the reference; for tests and
 * same-process A/B benchmarks). Returns the previous setting.
 */
export function setFusedNewtonSchulz(enabled: boolean): boolean {
  const previous = fusedNs;
  fusedNs = enabled;
  return previous;
}

/** The fused kernel on xs (each [r, c] or [n, r, c]), or null when it is not usable here. */
function fusedNewtonSchulz(xs: tf.Tensor[], steps: number, eps: number): tf.Tensor[] | null {
  if (!fusedNs || xs.length === 0 || !fusedKernelUsable(NEWTON_SCHULZ_KERNEL)) return null;
  if (xs.some((x) => x.dtype !== 'float32')) return null;
  const [a, b, c] = NS_COEFFS;
  const attrs: NewtonSchulzAttrs = { steps, a, b, c, eps };
  const out = tf.engine().runKernel(NEWTON_SCHULZ_KERNEL, xs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap);
  return Array.isArray(out) ? out : [out];
}

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
    const fused = fusedNewtonSchulz([g], steps, eps);
    if (fused !== null) return fused[0] as tf.Tensor3D;
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
    // Fused kernel: every matrix in one call, no stacking or splitting.
    const fused = fusedNewtonSchulz(xs, steps, eps);
    if (fused !== null) return fused as tf.Tensor2D[];
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

/**
 * Whether a parameter is a matrix for Newton-Schulz. batchAxis false: rank >= 2 (viewed as
 * [prod(shape[:-1]), last]). batchAxis true: axis 0 indexes independent parameters (a CMS level's
 * per-sequence fast weights [B, ...]), so each entry is a matrix when rank >= 3.
 */
export function isNsMatrix(shape: readonly number[], batchAxis: boolean): boolean {
  return shape.length >= (batchAxis ? 3 : 2);
}

/** The [r, c] matrix each Newton-Schulz call sees for a parameter of this shape (per batch entry with batchAxis). */
export function nsMatrixShape(shape: readonly number[], batchAxis: boolean): [number, number] {
  return matrixShape(batchAxis ? shape.slice(1) : shape, 'row');
}

/**
 * Newton-Schulz of parameter-shaped tensors (each isNsMatrix), returned in their shapes. batchAxis false:
 * each tensor is one matrix, same-shaped ones batched (newtonSchulzMany). batchAxis true: each tensor
 * [B, ...] is B matrices orthogonalised separately in one newtonSchulzBatch call (no coupling across B).
 */
export function newtonSchulzParams(xs: tf.Tensor[], steps: number, batchAxis: boolean): tf.Tensor[] {
  if (!batchAxis) return newtonSchulzMany(xs.map((x) => asMatrix(x, 'row')), steps).map((o, i) => tf.reshape(o, xs[i].shape));
  return tf.tidy(() => {
    const batches = xs.map((x) => tf.reshape(x, [x.shape[0], ...nsMatrixShape(x.shape, true)]) as tf.Tensor3D);
    const fused = fusedNewtonSchulz(batches, steps, 1e-7); // all tensors in one call
    return (fused ?? batches.map((x) => newtonSchulzBatch(x, steps))).map((o, i) => tf.reshape(o, xs[i].shape));
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

export type PreconditionerKind = 'none' | 'diagonal' | 'learned' | 'matrix' | 'learnedMatrix';
export const PRECONDITIONER_KINDS: readonly PreconditionerKind[] = ['none', 'diagonal', 'learned', 'matrix', 'learnedMatrix'];

/**
 * Which side a matrix P acts on, in the paper's layout (g in R^{out x in}): 'out' = P g with P [out, out]
 * (Eq. 49 as printed), 'in' = g P with P [in, in]. In the tfjs layout (G = g^T, [in, out] viewed as
 * [r, c]) these are G P^T (P [c, c]) and P^T G (P [r, r]). A rank-1 parameter is the vector g itself: P g.
 */
export type PreconditionerSide = 'out' | 'in';
export const PRECONDITIONER_SIDES: readonly PreconditionerSide[] = ['out', 'in'];

export interface PreconditionerParams {
  kind: PreconditionerKind;
  /** 'diagonal': decay of the second-moment memory. */
  beta2: number;
  /** 'diagonal': added to sqrt(v^). */
  epsilon: number;
  /** 'learned' / 'learnedMatrix': step size of GD on the preconditioner's own objective (0 = P stays at its start). */
  pLearningRate: number;
  /** 'learned': upper bound on P (keeps P finite where gradients stay zero). */
  pMax: number;
  /** 'matrix' / 'learnedMatrix': the side P acts on. */
  pSide: PreconditionerSide;
  /** 'matrix': the fixed P ([d, d], row-major, paper layout); 'learnedMatrix': its start (null = I). */
  pMatrix: number[][] | null;
}

export const PRECONDITIONER_OPTIONS = ['preconditioner', 'beta2', 'epsilon', 'pLearningRate', 'pMax', 'pSide', 'pMatrix'] as const;

function readMatrix(raw: unknown, path: string): number[][] | null {
  if (raw === undefined || raw === null) return null;
  const ok = Array.isArray(raw) && raw.length > 0 && raw.every((row) => Array.isArray(row) && row.length === raw.length && row.every((v) => typeof v === 'number' && Number.isFinite(v)));
  if (!ok) fail(path, `must be a square matrix of finite numbers (an array of d rows of d numbers), got ${JSON.stringify(raw).slice(0, 80)}`);
  return (raw as number[][]).map((row) => [...row]);
}

export function readPreconditioner(c: Record<string, unknown>, path: string): PreconditionerParams {
  const kind = oneOfField(c, 'preconditioner', path, PRECONDITIONER_KINDS, 'none');
  const pMatrix = readMatrix(c.pMatrix, `${path}.pMatrix`);
  if (kind === 'matrix' && pMatrix === null) fail(`${path}.pMatrix`, "is required with preconditioner 'matrix' (the fixed P, [d, d])");
  if (pMatrix !== null && kind !== 'matrix' && kind !== 'learnedMatrix') fail(`${path}.pMatrix`, `is only used with preconditioner 'matrix' or 'learnedMatrix', got '${kind}'`);
  return {
    kind,
    beta2: numberField(c, 'beta2', path, { min: 0, max: 1, default: 0.999 }),
    epsilon: numberField(c, 'epsilon', path, { above: 0, default: 1e-8 }),
    pLearningRate: numberField(c, 'pLearningRate', path, { min: 0, default: 0.1 }),
    pMax: numberField(c, 'pMax', path, { above: 0, default: 1e4 }),
    pSide: oneOfField(c, 'pSide', path, PRECONDITIONER_SIDES, 'out'),
    pMatrix,
  };
}

/** The JSON config fields of a preconditioner (for a transform's `config`). */
export function preconditionerConfig(pc: PreconditionerParams): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = { preconditioner: pc.kind, beta2: pc.beta2, epsilon: pc.epsilon, pLearningRate: pc.pLearningRate, pMax: pc.pMax, pSide: pc.pSide };
  if (pc.pMatrix) out.pMatrix = pc.pMatrix.map((r) => [...r]);
  return out;
}

/** The size d of a matrix P for a parameter of this shape (see PreconditionerSide). */
export function preconditionerMatrixSize(shape: readonly number[], side: PreconditionerSide): number {
  if (shape.length <= 1) return shape.length === 0 ? 1 : shape[0];
  const [r, c] = matrixShape(shape, 'column');
  return side === 'out' ? c : r;
}

/** Shape check for a given P: a clear error naming the parameter. */
function checkMatrixFits(name: string, shape: readonly number[], pc: PreconditionerParams, who: string): number {
  const d = preconditionerMatrixSize(shape, pc.pSide);
  if (pc.pMatrix && pc.pMatrix.length !== d) {
    throw new Error(`${who}.pMatrix: is ${pc.pMatrix.length} x ${pc.pMatrix.length}, but parameter '${name}' of shape [${shape.join(', ')}] needs ${d} x ${d} (pSide '${pc.pSide}')`);
  }
  return d;
}

/**
 * The parameter-layout view X of g and the products with P (paper: P g or g P). Vectors: X = [1, n]
 * (row), P g = X P^T. Matrices [r, c]: 'out' -> X P^T, 'in' -> P^T X.
 */
function matrixPView(g: tf.Tensor, side: PreconditionerSide): { x: tf.Tensor2D; right: boolean } {
  if (g.rank <= 1) return { x: tf.reshape(g, [1, g.size]) as tf.Tensor2D, right: true };
  return { x: asMatrix(g, 'column'), right: side === 'out' };
}

/** The preconditioner's per-parameter state slots (fresh zeros; 'learnedMatrix': P at its start). */
export function preconditionerInit(name: string, p: tf.Tensor, pc: PreconditionerParams, into: NamedTensors, ns = 'P', who = 'preconditioner'): void {
  if (pc.kind === 'diagonal') into[stateKey(name, `${ns}/v`)] = tf.zerosLike(p); // second moments, [...P]
  if (pc.kind === 'learned') into[stateKey(name, `${ns}/logp`)] = tf.zerosLike(p); // log P, P = 1 at init, [...P]
  if (pc.kind === 'matrix') checkMatrixFits(name, p.shape, pc, who);
  if (pc.kind === 'learnedMatrix') {
    const d = checkMatrixFits(name, p.shape, pc, who);
    into[stateKey(name, `${ns}/mat`)] = pc.pMatrix ? tf.tensor2d(pc.pMatrix) : tf.eye(d); // P, [d, d]
  }
}

/**
 * Writes g into the preconditioner memory, then reads P g. [...P] -> [...P].
 * - 'none': P = I.
 * - 'diagonal' (Adam-like): v = b2 v + (1-b2) g^2, P = 1 / (sqrt(v / (1 - b2^t)) + eps).
 * - 'learned' (Eqs. 38-41; Decision): P = exp(s) is a diagonal memory trained by one GD step per
 *   call on its own objective l(s; g) = 1/2 exp(2s) g^2 - s, whose minimiser over a stream of
 *   gradients is P = 1 / sqrt(E[g^2]) (Adam's preconditioner, reached by learning instead of by
 *   formula). dl/ds = P^2 g^2 - 1, clipped to <= 1 (one huge gradient cannot collapse P); s <= log pMax.
 * - 'matrix' (Eq. 49's P_i g as a matrix product): a fixed P given in the config, P g or g P (pSide).
 * - 'learnedMatrix' (Eqs. 38-41 with a matrix memory; Decision): P [d, d] is trained by one GD step per call
 *   on l(P; g) = 1/2 ||P g||_F^2 - tr(P) ('out'; 'in': 1/2 ||g P||_F^2 - tr(P)). The objective is convex, its
 *   gradient is P g g^T - I ('in': g^T g P - I), and its minimiser over a stream is P = E[g g^T]^-1 (full-matrix
 *   second-moment inverse). The write P <- P - pLr (P g g^T - I) is itself a delta rule. It is stable only while
 *   pLr ||g||^2 < 2: pLearningRate must be chosen for the gradient scale (pLearningRate 0 = P fixed at pMatrix or I).
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
  if (pc.kind === 'matrix' || pc.kind === 'learnedMatrix') {
    const { x, right } = matrixPView(g, pc.pSide); // [r, c]
    let p: tf.Tensor2D;
    if (pc.kind === 'matrix') p = tf.tensor2d(pc.pMatrix!); // [d, d]
    else {
      const key = stateKey(name, `${ns}/mat`);
      const p0 = need(state, key, who) as tf.Tensor2D;
      // paper g g^T ('out') = X^T X [c, c]; g^T g ('in') = X X^T [r, r]
      const gram = right ? tf.matMul(x, x, true, false) : tf.matMul(x, x, false, true);
      const grad = right ? tf.sub(tf.matMul(p0, gram), tf.eye(gram.shape[0])) : tf.sub(tf.matMul(gram, p0), tf.eye(gram.shape[0])); // dl/dP
      p = tf.sub(p0, tf.mul(grad, pc.pLearningRate)) as tf.Tensor2D;
      next[key] = p;
    }
    const read = right ? tf.matMul(x, p, false, true) : tf.matMul(p, x, true, false); // (P g)^T = X P^T, or (g P)^T = P^T X
    return tf.reshape(read, g.shape);
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
