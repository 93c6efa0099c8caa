/**
 * Delta momentum (Eq. 49): the momentum memory is written by the delta rule instead of the
 * Hebbian one, so it forgets what it stored along the current gradient before writing:
 *   paper layout (g in R^{out x in}):  m_{t+1} = m_t (alpha I - g^T g) - eta P g
 * (Decision, notes section 2: right-multiplied, the dimensionally consistent form; it is a GD step
 * on ||m g^T - P||^2-style objectives). tfjs kernels are [in, out] = the transpose, so here
 *   m_{t+1} = (alpha I - beta k k^T) m_t - eta P g,    k = g (keyNorm 'none') or g / ||g||_F
 * computed as alpha m - beta k (k^T m) or alpha m - beta (k k^T) m, whichever Gram is on the
 * smaller side: no [max, max] matrix is formed.
 * - keyNorm 'none', beta 1 is Eq. 49 exactly; the factor's eigenvalues are alpha - ||g||^2 (unstable
 *   for large gradients). keyNorm 'frobenius' (default) normalises the key: the factor then has
 *   eigenvalues in [alpha - beta, alpha] (a projection when beta = 1), the usual delta-rule choice.
 * - A rank-1 parameter of length n is the vector case: k k^T is the [n, n] outer product (the
 *   Figure 4 toy); a rank-0 parameter is a [1, 1] matrix.
 * State: '<param>::m' plus the preconditioner's slots (util.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { type GradientTransform, type NamedTensors, stateKey, tidyResult, tidyState } from '../../core';
import { checkOptions, numberField, oneOfField } from '../../core/transforms/validate';
import { asMatrix, need, PRECONDITIONER_OPTIONS, type PreconditionerKind, type PreconditionerSide, preconditionerApply, preconditionerConfig, preconditionerInit, readPreconditioner } from './util';

export type DeltaKeyNorm = 'frobenius' | 'none';
export const DELTA_KEY_NORMS: readonly DeltaKeyNorm[] = ['frobenius', 'none'];

export interface DeltaMomentumConfig {
  /** eta >= 0. */
  learningRate: number;
  /** Forget gate alpha in [0, 1]. Default 0.9. */
  alpha?: number;
  /** Strength of the delta (erase) term, >= 0. Default 1. */
  beta?: number;
  /** Key normalisation of the erase term. Default 'frobenius'. */
  keyNorm?: DeltaKeyNorm;
  /** P of Eq. 49 (same options as assocMomentum; 'matrix' / 'learnedMatrix' are Eq. 49's matrix product P g). Default 'none'. */
  preconditioner?: PreconditionerKind;
  /** 'matrix' / 'learnedMatrix': P g with P [out, out] ('out', default) or g P with P [in, in] ('in'), paper layout. */
  pSide?: PreconditionerSide;
  /** 'matrix': the fixed P (required); 'learnedMatrix': its start (default I). Paper layout, [d, d]. */
  pMatrix?: number[][];
  beta2?: number;
  epsilon?: number;
  pLearningRate?: number;
  pMax?: number;
}

/** (k k^T) m without forming the larger Gram matrix. k, m: [r, c] -> [r, c]. */
export function outerProjectLeft(k: tf.Tensor2D, m: tf.Tensor2D): tf.Tensor2D {
  const [r, c] = k.shape;
  return c <= r
    ? tf.matMul(k, tf.matMul(k, m, true, false)) // k (k^T m): [c, c] Gram
    : tf.matMul(tf.matMul(k, k, false, true), m); // (k k^T) m: [r, r] Gram
}

export function deltaMomentum(config: DeltaMomentumConfig, path = 'deltaMomentum'): GradientTransform {
  const c = checkOptions(config, ['learningRate', 'alpha', 'beta', 'keyNorm', ...PRECONDITIONER_OPTIONS], path);
  const lr = numberField(c, 'learningRate', path, { min: 0 });
  const alpha = numberField(c, 'alpha', path, { min: 0, max: 1, default: 0.9 });
  const beta = numberField(c, 'beta', path, { min: 0, default: 1 });
  const keyNorm = oneOfField(c, 'keyNorm', path, DELTA_KEY_NORMS, 'frobenius');
  const pc = readPreconditioner(c, path);
  const who = 'deltaMomentum';
  return {
    name: 'deltaMomentum',
    config: { learningRate: lr, alpha, beta, keyNorm, ...preconditionerConfig(pc) },
    init: (params) =>
      tidyState(() => {
        const s: NamedTensors = {};
        for (const [n, p] of Object.entries(params)) {
          s[stateKey(n, 'm')] = tf.zerosLike(p); // [...P]
          preconditionerInit(n, p, pc, s, 'P', path);
        }
        return s;
      }),
    update: (grads, state, _params, step) =>
      tidyResult(() => {
        const updates: NamedTensors = {};
        const next: NamedTensors = {};
        for (const [n, g] of Object.entries(grads)) {
          const key = stateKey(n, 'm');
          const m = need(state, key, who);
          const pg = preconditionerApply(n, g, state, step, pc, next, who); // P g, [...P]
          let k = asMatrix(g, 'column'); // [r, c], rows = inputs
          if (keyNorm === 'frobenius') k = tf.div(k, tf.add(tf.norm(k), 1e-12)) as tf.Tensor2D;
          const erase = tf.reshape(outerProjectLeft(k, asMatrix(m, 'column')), m.shape); // k k^T m, [...P]
          const mNext = tf.sub(tf.sub(tf.mul(m, alpha), tf.mul(erase, beta)), tf.mul(pg, lr)); // Eq. 49
          next[key] = mNext;
          updates[n] = mNext.clone();
        }
        return { updates, state: next };
      }),
  };
}
