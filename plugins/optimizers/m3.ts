/**
 * M3, Multi-scale Momentum Muon (Algorithm 1). For a matrix parameter, each step t:
 *   M1 <- M1 + b1 g                      fast momentum
 *   V  <- V + b2 g^2                     second moment
 *   S  <- S + g                          sum of the gradients since the last refresh
 *   every f steps (t % f == 0):  M2 <- M2 + b3 S;  S <- 0     slow momentum
 *   W  <- W - eta (NS(M1) + a NS(M2)) / (sqrt(V) + eps)
 * (Decision, notes section 2: Algorithm 1 as printed is canonical; Eq. 75 disagrees in sign.)
 * momentum 'ema' replaces the accumulators by EMAs: M1 <- b1 M1 + (1-b1) g, V <- b2 V + (1-b2) g^2
 * (bias-corrected: V / (1 - b2^t)), M2 <- b3 M2 + (1-b3) S.
 * NS is the quintic Newton-Schulz of util.ts with no extra scale; NS(0) = 0 before the first refresh.
 * Rank < 2 parameters fall back to AdamW (adam* options; weightDecay shared).
 * State: '<param>::m1', '::m2', '::o2' (NS(M2), recomputed only at a refresh: halves the NS cost),
 * '::v', '::s' for matrices; '<param>::adam/m', '::adam/v' otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import { type GradientTransform, type NamedTensors, stateKey, tidyResult, tidyState } from '../../core';
import { checkOptions, numberField, oneOfField } from '../../core/transforms/validate';
import { adamSlotStep, asMatrix, need, newtonSchulz, readAdam } from './util';

export type M3Momentum = 'accumulate' | 'ema';
export const M3_MOMENTA: readonly M3Momentum[] = ['accumulate', 'ema'];

export interface M3Config {
  /** eta >= 0. */
  learningRate: number;
  /** Fast momentum coefficient b1. Default 0.9. */
  beta1?: number;
  /** Second-moment coefficient b2. Default 0.999. */
  beta2?: number;
  /** Slow momentum coefficient b3. Default 0.9. */
  beta3?: number;
  /** Weight a of the slow momentum. Default 1. */
  alpha?: number;
  /** Refresh period f of the slow momentum, in steps (integer >= 1). Default 10. */
  frequency?: number;
  /** Default 'accumulate' (Algorithm 1 as printed). */
  momentum?: M3Momentum;
  /** Default 1e-8. */
  epsilon?: number;
  /** Default 5. */
  nsSteps?: number;
  /** Decoupled weight decay (times learningRate). Default 0. */
  weightDecay?: number;
  adamLearningRate?: number;
  adamBeta1?: number;
  adamBeta2?: number;
  adamEpsilon?: number;
}

const M3_OPTIONS = [
  'learningRate', 'beta1', 'beta2', 'beta3', 'alpha', 'frequency', 'momentum', 'epsilon', 'nsSteps', 'weightDecay',
  'adamLearningRate', 'adamBeta1', 'adamBeta2', 'adamEpsilon',
] as const;

export function m3(config: M3Config, path = 'm3'): GradientTransform {
  const c = checkOptions(config, M3_OPTIONS, path);
  const lr = numberField(c, 'learningRate', path, { min: 0 });
  const b1 = numberField(c, 'beta1', path, { min: 0, max: 1, default: 0.9 });
  const b2 = numberField(c, 'beta2', path, { above: 0, max: 1, default: 0.999 });
  const b3 = numberField(c, 'beta3', path, { min: 0, max: 1, default: 0.9 });
  const alpha = numberField(c, 'alpha', path, { min: 0, default: 1 });
  const f = numberField(c, 'frequency', path, { integer: true, min: 1, default: 10 });
  const mode = oneOfField(c, 'momentum', path, M3_MOMENTA, 'accumulate');
  const eps = numberField(c, 'epsilon', path, { above: 0, default: 1e-8 });
  const nsSteps = numberField(c, 'nsSteps', path, { integer: true, min: 1, default: 5 });
  const wd = numberField(c, 'weightDecay', path, { min: 0, default: 0 });
  const adam = { ...readAdam(c, path, 'adam'), weightDecay: wd };
  const who = 'm3';
  const ema = mode === 'ema';
  return {
    name: 'm3',
    config: {
      learningRate: lr, beta1: b1, beta2: b2, beta3: b3, alpha, frequency: f, momentum: mode, epsilon: eps, nsSteps, weightDecay: wd,
      adamLearningRate: adam.learningRate, adamBeta1: adam.beta1, adamBeta2: adam.beta2, adamEpsilon: adam.epsilon,
    },
    init: (params) =>
      tidyState(() => {
        const s: NamedTensors = {};
        for (const [n, p] of Object.entries(params)) {
          const slots = p.rank >= 2 ? ['m1', 'm2', 'o2', 'v', 's'] : ['adam/m', 'adam/v'];
          for (const slot of slots) s[stateKey(n, slot)] = tf.zerosLike(p); // [...P]
        }
        return s;
      }),
    update: (grads, state, params, step) =>
      tidyResult(() => {
        const updates: NamedTensors = {};
        const next: NamedTensors = {};
        for (const [n, g] of Object.entries(grads)) {
          if (g.rank < 2) {
            adamSlotStep(n, g, state, params, step, adam, who, 'adam/', updates, next);
            continue;
          }
          const k = (slot: string): string => stateKey(n, slot);
          const m1Old = need(state, k('m1'), who);
          const vOld = need(state, k('v'), who);
          const m1 = ema ? tf.add(tf.mul(m1Old, b1), tf.mul(g, 1 - b1)) : tf.add(m1Old, tf.mul(g, b1)); // [...P]
          const v = ema ? tf.add(tf.mul(vOld, b2), tf.mul(tf.square(g), 1 - b2)) : tf.add(vOld, tf.mul(tf.square(g), b2));
          const sum = tf.add(need(state, k('s'), who), g); // gradients since the last refresh
          let m2 = need(state, k('m2'), who);
          let o2 = need(state, k('o2'), who); // NS(M2), cached: M2 only changes every f steps
          if (step % f === 0) {
            m2 = ema ? tf.add(tf.mul(m2, b3), tf.mul(sum, 1 - b3)) : tf.add(m2, tf.mul(sum, b3));
            o2 = tf.reshape(newtonSchulz(asMatrix(m2, 'row'), nsSteps), g.shape);
            next[k('s')] = tf.zerosLike(sum);
          } else {
            m2 = m2.clone();
            o2 = o2.clone();
            next[k('s')] = sum;
          }
          next[k('o2')] = o2;
          next[k('m1')] = m1;
          next[k('m2')] = m2;
          next[k('v')] = v;
          const o1 = tf.reshape(newtonSchulz(asMatrix(m1, 'row'), nsSteps), g.shape);
          const vRead = ema ? tf.div(v, 1 - Math.pow(b2, step)) : v;
          let dir = tf.div(tf.add(o1, tf.mul(o2, alpha)), tf.add(tf.sqrt(vRead), eps));
          if (wd > 0) dir = tf.add(dir, tf.mul(params[n], wd));
          updates[n] = tf.mul(dir, -lr);
        }
        return { updates, state: next };
      }),
  };
}
