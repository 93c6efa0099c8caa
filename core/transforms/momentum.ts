/**
 * Momentum in the paper's memory form (Eq. 33): the momentum m is a second-level memory that
 * compresses past gradients, and the parameter update reads it out.
 *   m_t = beta * m_{t-1} - eta * g_t        (the paper's alpha is `beta` here)
 *   W_t = W_{t-1} + m_t                      (updates = m_t)
 * Nesterov variant: updates = beta * m_t - eta * g_t (the look-ahead read of the same memory).
 * State: '<param>::m' (shape of the parameter), zero at init.
 */
import * as tf from '@tensorflow/tfjs';
import { type GradientTransform, type NamedTensors, stateKey, tidyResult, tidyState } from './transform';
import { booleanField, checkOptions, numberField } from './validate';

export interface MomentumConfig {
  /** Step size eta >= 0. */
  learningRate: number;
  /** Momentum decay in [0, 1] (the paper's alpha in Eq. 33). Default 0.9. */
  beta?: number;
  /** Nesterov look-ahead read: updates = beta*m - eta*g instead of m. Default false. */
  nesterov?: boolean;
}

const MOMENTUM_OPTIONS = ['learningRate', 'beta', 'nesterov'] as const;

export function momentum(config: MomentumConfig, path = 'momentum'): GradientTransform {
  const c = checkOptions(config, MOMENTUM_OPTIONS, path);
  const learningRate = numberField(c, 'learningRate', path, { min: 0 });
  const beta = numberField(c, 'beta', path, { min: 0, max: 1, default: 0.9 });
  const nesterov = booleanField(c, 'nesterov', path, false);
  return {
    name: 'momentum',
    config: { learningRate, beta, nesterov },
    init(params) {
      return tidyState(() => {
        const state: NamedTensors = {};
        for (const [k, p] of Object.entries(params)) state[stateKey(k, 'm')] = tf.zerosLike(p); // [...P]
        return state;
      });
    },
    update(grads, state, _params, _step) {
      return tidyResult(() => {
        const updates: NamedTensors = {};
        const next: NamedTensors = {};
        for (const [k, g] of Object.entries(grads)) {
          const key = stateKey(k, 'm');
          const m = state[key];
          if (m == null) throw new Error(`momentum: state '${key}' is missing (was init called for '${k}'?)`);
          const step = tf.mul(g, learningRate); // eta * g, [...P]
          const mNext = tf.sub(tf.mul(m, beta), step); // Eq. 33: m = alpha*m - eta*g
          next[key] = mNext;
          updates[k] = nesterov ? tf.sub(tf.mul(mNext, beta), step) : mNext.clone();
        }
        return { updates, state: next };
      });
    },
  };
}
