/**
 * M3, Multi-scale Momentum Muon (Algorithm 1). For a matrix parameter, each step t:
 *   M1 <- M1 + b1 g                      fast momentum
 *   V  <- V + b2 g^2                     second moment
 *   S  <- S + g                          sum of the gradients since the last refresh
 *   W  <- W - eta (NS(M1) + a O2) / (sqrt(V) + eps)     O2 = NS(M2) of the PREVIOUS refresh (0 for t = 1..f)
 *   at the end of every block (t % f == 0):  M2 <- M2 + b3 S;  O2 <- NS(M2);  S <- 0   (serves from t + 1)
 * (Algorithm 1 computes O2 at the start of outer iteration k from the gradients of block k - 1, then
 * runs that block's f inner steps with it.)
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
import { booleanField, checkOptions, numberField, oneOfField } from '../../core/transforms/validate';
import { adamSlotStep, isNsMatrix, need, newtonSchulzParams, readAdam } from './util';

export type M3Momentum = 'accumulate' | 'ema';
export const M3_MOMENTA: readonly M3Momentum[] = ['accumulate', 'ema'];
/**
 * Where the second moment enters. 'afterNs' (Algorithm 1): (NS(M1) + a O2) / (sqrt(V) + eps). NS output is
 * scale-free (entries ~ 1/sqrt(dim)), so this step scales like 1/|g| element-wise: entries with tiny gradients
 * get huge steps (hope-tiny, lr 1e-3: step 1 moves a gate kernel by RMS 172 against weights of RMS 0.18, both
 * momentum modes; README). 'beforeNs' (not in the paper): NS(M1 / (sqrt(V) + eps)) + a NS(M2 / (sqrt(V) + eps)),
 * a scale-free step like Muon's.
 */
export type M3Precondition = 'afterNs' | 'beforeNs';
export const M3_PRECONDITIONS: readonly M3Precondition[] = ['afterNs', 'beforeNs'];

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
  /** Default 'afterNs' (Algorithm 1 as printed); 'beforeNs' divides by sqrt(V) before Newton-Schulz (see M3Precondition). */
  precondition?: M3Precondition;
  /**
   * Axis 0 of every tensor indexes independent parameters (a CMS level's per-sequence fast weights [B, ...]):
   * Newton-Schulz runs per entry, and per-entry vectors (rank 2 here) use the AdamW fallback. Default false.
   */
  batchAxis?: boolean;
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
  'learningRate', 'beta1', 'beta2', 'beta3', 'alpha', 'frequency', 'momentum', 'precondition', 'batchAxis', 'epsilon', 'nsSteps', 'weightDecay',
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
  const pre = oneOfField(c, 'precondition', path, M3_PRECONDITIONS, 'afterNs');
  const batchAxis = booleanField(c, 'batchAxis', path, false);
  const eps = numberField(c, 'epsilon', path, { above: 0, default: 1e-8 });
  const nsSteps = numberField(c, 'nsSteps', path, { integer: true, min: 1, default: 5 });
  const wd = numberField(c, 'weightDecay', path, { min: 0, default: 0 });
  const adam = { ...readAdam(c, path, 'adam'), weightDecay: wd };
  const who = 'm3';
  const ema = mode === 'ema';
  return {
    name: 'm3',
    config: {
      learningRate: lr, beta1: b1, beta2: b2, beta3: b3, alpha, frequency: f, momentum: mode, precondition: pre, batchAxis, epsilon: eps, nsSteps, weightDecay: wd,
      adamLearningRate: adam.learningRate, adamBeta1: adam.beta1, adamBeta2: adam.beta2, adamEpsilon: adam.epsilon,
    },
    init: (params) =>
      tidyState(() => {
        const s: NamedTensors = {};
        for (const [n, p] of Object.entries(params)) {
          const slots = isNsMatrix(p.shape, batchAxis) ? ['m1', 'm2', 'o2', 'v', 's'] : ['adam/m', 'adam/v'];
          for (const slot of slots) s[stateKey(n, slot)] = tf.zerosLike(p); // [...P]
        }
        return s;
      }),
    update: (grads, state, params, step) =>
      tidyResult(() => {
        const updates: NamedTensors = {};
        const next: NamedTensors = {};
        // Algorithm 1: the step at t uses the O2 of the previous refresh (0 for t = 1..f); the refresh
        // at the end of a block (t % f == 0) folds that block's gradients, g_t included, into M2 and
        // serves from step t + 1 on.
        const refresh = step % f === 0;
        const mats: Array<{ n: string; m1: tf.Tensor; m2: tf.Tensor; v: tf.Tensor; o2: tf.Tensor }> = [];
        for (const [n, g] of Object.entries(grads)) {
          if (!isNsMatrix(g.shape, batchAxis)) {
            adamSlotStep(n, g, state, params, step, adam, who, 'adam/', updates, next);
            continue;
          }
          const k = (slot: string): string => stateKey(n, slot);
          const m1Old = need(state, k('m1'), who);
          const vOld = need(state, k('v'), who);
          const m1 = ema ? tf.add(tf.mul(m1Old, b1), tf.mul(g, 1 - b1)) : tf.add(m1Old, tf.mul(g, b1)); // [...P]
          const v = ema ? tf.add(tf.mul(vOld, b2), tf.mul(tf.square(g), 1 - b2)) : tf.add(vOld, tf.mul(tf.square(g), b2));
          const sum = tf.add(need(state, k('s'), who), g); // gradients of the current block (since the last refresh)
          const m2Old = need(state, k('m2'), who);
          const o2 = need(state, k('o2'), who); // NS(M2) of the previous refresh, cached: M2 only changes every f steps
          let m2: tf.Tensor;
          if (refresh) {
            m2 = ema ? tf.add(tf.mul(m2Old, b3), tf.mul(sum, 1 - b3)) : tf.add(m2Old, tf.mul(sum, b3));
            next[k('s')] = tf.zerosLike(sum);
          } else {
            m2 = m2Old.clone();
            next[k('o2')] = o2.clone();
            next[k('s')] = sum;
          }
          next[k('m1')] = m1;
          next[k('m2')] = m2;
          next[k('v')] = v;
          mats.push({ n, m1, m2, v, o2 });
        }
        // Newton-Schulz of every matrix at once, same-shaped ones batched (util.ts newtonSchulzMany).
        const before = pre === 'beforeNs';
        const denoms = mats.map((e) => tf.add(tf.sqrt(ema ? tf.div(e.v, 1 - Math.pow(b2, step)) : e.v), eps)); // sqrt(V) + eps, [...P]
        const nsIn = (x: tf.Tensor, i: number): tf.Tensor => (before ? tf.div(x, denoms[i]) : x);
        const o1s = newtonSchulzParams(mats.map((e, i) => nsIn(e.m1, i)), nsSteps, batchAxis);
        const o2New = refresh ? newtonSchulzParams(mats.map((e, i) => nsIn(e.m2, i)), nsSteps, batchAxis) : null;
        mats.forEach((e, i) => {
          const o1 = tf.reshape(o1s[i], e.m1.shape);
          const sum = tf.add(o1, tf.mul(e.o2, alpha)); // uses the O2 of the previous refresh
          let dir = before ? sum : tf.div(sum, denoms[i]);
          if (wd > 0) dir = tf.add(dir, tf.mul(params[e.n], wd));
          updates[e.n] = tf.mul(dir, -lr);
          if (o2New) next[stateKey(e.n, 'o2')] = tf.reshape(o2New[i], e.m1.shape);
        });
        return { updates, state: next };
      }),
  };
}
