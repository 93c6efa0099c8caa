/**
 * AdamW, the baseline. In the paper's reading (Eqs. 101-105) Adam's two moments are the optimal
 * associative memories of an element-wise, exponentially weighted L2 objective over past
 * gradients: m^_t = argmin_m sum_i b1^(t-i) ||m - g_i||^2 and v^_t likewise for g_i^2
 * (adamw.test.ts checks this closed form against the transform's step).
 * State: '<param>::m', '<param>::v' ([...P] each, zero at init).
 */
import * as tf from '@tensorflow/tfjs';
import { type GradientTransform, type NamedTensors, stateKey, tidyResult, tidyState } from '../../core';
import { checkOptions } from '../../core/transforms/validate';
import { ADAM_OPTIONS, adamSlotStep, readAdam } from './util';

export interface AdamWConfig {
  /** Step size >= 0. */
  learningRate: number;
  /** First-moment decay in [0, 1]. Default 0.9. */
  beta1?: number;
  /** Second-moment decay in [0, 1]. Default 0.999. */
  beta2?: number;
  /** Added to sqrt(v^). Default 1e-8. */
  epsilon?: number;
  /** Decoupled weight decay (multiplied by learningRate). Default 0. */
  weightDecay?: number;
}

export function adamw(config: AdamWConfig, path = 'adamw'): GradientTransform {
  const c = checkOptions(config, ADAM_OPTIONS, path);
  const a = readAdam(c, path);
  return {
    name: 'adamw',
    config: { ...a },
    init: (params) =>
      tidyState(() => {
        const s: NamedTensors = {};
        for (const [n, p] of Object.entries(params)) {
          s[stateKey(n, 'm')] = tf.zerosLike(p); // [...P]
          s[stateKey(n, 'v')] = tf.zerosLike(p); // [...P]
        }
        return s;
      }),
    update: (grads, state, params, step) =>
      tidyResult(() => {
        const updates: NamedTensors = {};
        const next: NamedTensors = {};
        for (const [n, g] of Object.entries(grads)) {
          adamSlotStep(n, g, state, params, step, a, 'adamw', '', updates, next);
        }
        return { updates, state: next };
      }),
  };
}
