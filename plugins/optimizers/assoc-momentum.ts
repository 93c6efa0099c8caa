/**
 * Momentum as an associative memory with a forget gate and a preconditioner (Eqs. 33, 47, 38-41):
 *   m_t = alpha * m_{t-1} - eta * P(g_t),   W_t = W_{t-1} + m_t.
 * - preconditioner 'none': Eq. 33 (P = I; alpha is the forget gate of the gradient memory).
 * - 'diagonal': Eq. 47 with P = 1 / (sqrt(v^) + eps), v an EMA of g^2 (Adam-like second moments).
 * - 'learned': Eq. 47 with P a diagonal memory trained by GD on its own objective (Eqs. 38-41;
 *   see util.ts preconditionerApply for the objective, a documented Decision).
 * State: '<param>::m' plus the preconditioner's '<param>::P/v' or '<param>::P/logp'.
 */
import * as tf from '@tensorflow/tfjs';
import { type GradientTransform, type NamedTensors, stateKey, tidyResult, tidyState } from '../../core';
import { checkOptions, numberField } from '../../core/transforms/validate';
import { need, PRECONDITIONER_OPTIONS, type PreconditionerKind, type PreconditionerSide, preconditionerApply, preconditionerConfig, preconditionerInit, readPreconditioner } from './util';

export interface AssocMomentumConfig {
  /** eta >= 0. */
  learningRate: number;
  /** Forget gate alpha in [0, 1]. Default 0.9. */
  alpha?: number;
  /** Default 'none'. */
  preconditioner?: PreconditionerKind;
  /** 'diagonal' only: second-moment decay. Default 0.999. */
  beta2?: number;
  /** 'diagonal' only. Default 1e-8. */
  epsilon?: number;
  /** 'learned' only: GD step of the preconditioner memory. Default 0.1. */
  pLearningRate?: number;
  /** 'learned' only: upper bound on P. Default 1e4. */
  pMax?: number;
  /** 'matrix' / 'learnedMatrix': P g with P [out, out] ('out', default) or g P with P [in, in] ('in'), paper layout. */
  pSide?: PreconditionerSide;
  /** 'matrix': the fixed P (required); 'learnedMatrix': its start (default I). Paper layout, [d, d]. */
  pMatrix?: number[][];
}

export function assocMomentum(config: AssocMomentumConfig, path = 'assocMomentum'): GradientTransform {
  const c = checkOptions(config, ['learningRate', 'alpha', ...PRECONDITIONER_OPTIONS], path);
  const lr = numberField(c, 'learningRate', path, { min: 0 });
  const alpha = numberField(c, 'alpha', path, { min: 0, max: 1, default: 0.9 });
  const pc = readPreconditioner(c, path);
  const who = 'assocMomentum';
  return {
    name: 'assocMomentum',
    config: { learningRate: lr, alpha, ...preconditionerConfig(pc) },
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
          const pg = preconditionerApply(n, g, state, step, pc, next, who); // P g, [...P]
          const key = stateKey(n, 'm');
          const m = tf.sub(tf.mul(need(state, key, who), alpha), tf.mul(pg, lr)); // Eq. 47
          next[key] = m;
          updates[n] = m.clone();
        }
        return { updates, state: next };
      }),
  };
}
