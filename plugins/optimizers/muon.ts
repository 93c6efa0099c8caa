/**
 * Nonlinear output of the momentum memory (Eq. 52): W += sigma(m(u)). With a linear momentum m and
 * sigma = Newton-Schulz orthogonalisation this is Muon (Eqs. 42-44):
 *   M_t = beta M_{t-1} + g_t;  O = NS(M_t)  (or NS(g_t + beta M_t) with nesterov);
 *   W += -lr (s O + wd W)
 * The scale s is 'rms' (0.2 sqrt(max(r, c)): update RMS ~ AdamW's, so AdamW learning rates
 * transfer), 'spectral' (sqrt(max(1, c / r)) for the [in, out] layout: fan-out / fan-in) or 'none'.
 * Rank < 2 parameters (biases, gains) use AdamW with the `adam*` options (Muon is defined for matrices).
 * `orthogonalize` is sigma alone, to compose: chain(momentum, orthogonalize) is Eq. 52 with any m.
 * State: '<param>::m' for matrices; '<param>::adam/m', '<param>::adam/v' for the fallback.
 */
import * as tf from '@tensorflow/tfjs';
import { type GradientTransform, type NamedTensors, stateKey, tidyResult, tidyState } from '../../core';
import { booleanField, checkOptions, numberField, oneOfField } from '../../core/transforms/validate';
import { adamSlotStep, asMatrix, need, newtonSchulz, newtonSchulzMany, readAdam } from './util';

export type OrthoScale = 'rms' | 'spectral' | 'none';
export const ORTHO_SCALES: readonly OrthoScale[] = ['rms', 'spectral', 'none'];

/** The factor s applied to NS(.) for a matrix view [r, c]. */
export function orthoScale(mode: OrthoScale, r: number, c: number): number {
  if (mode === 'rms') return 0.2 * Math.sqrt(Math.max(r, c));
  if (mode === 'spectral') return Math.sqrt(Math.max(1, c / r));
  return 1;
}

/** NS of a parameter-shaped tensor (rank >= 2 viewed as [prod(shape[:-1]), last]). */
export function orthogonalizeLike(x: tf.Tensor, steps: number, scale: OrthoScale): tf.Tensor {
  const x2 = asMatrix(x, 'row');
  const [r, c] = x2.shape;
  return tf.reshape(tf.mul(newtonSchulz(x2, steps), orthoScale(scale, r, c)), x.shape);
}

/** orthogonalizeLike of every tensor in `xs` (rank >= 2), same-shaped matrix views batched (newtonSchulzMany). */
export function orthogonalizeMany(xs: tf.Tensor[], steps: number, scale: OrthoScale): tf.Tensor[] {
  const mats = xs.map((x) => asMatrix(x, 'row'));
  return newtonSchulzMany(mats, steps).map((o, i) => tf.reshape(tf.mul(o, orthoScale(scale, mats[i].shape[0], mats[i].shape[1])), xs[i].shape));
}

const FALLBACK_OPTIONS = ['adamLearningRate', 'adamBeta1', 'adamBeta2', 'adamEpsilon'] as const;

export interface MuonConfig {
  learningRate: number;
  /** Momentum decay. Default 0.95. */
  beta?: number;
  /** Default true. */
  nesterov?: boolean;
  /** Newton-Schulz iterations. Default 5. */
  nsSteps?: number;
  /** Default 'rms'. */
  scale?: OrthoScale;
  /** Decoupled weight decay (times learningRate), also used by the AdamW fallback. Default 0. */
  weightDecay?: number;
  /** AdamW fallback for rank < 2 (defaults: learningRate, 0.9, 0.999, 1e-8). */
  adamLearningRate?: number;
  adamBeta1?: number;
  adamBeta2?: number;
  adamEpsilon?: number;
}

export function muon(config: MuonConfig, path = 'muon'): GradientTransform {
  const c = checkOptions(config, ['learningRate', 'beta', 'nesterov', 'nsSteps', 'scale', 'weightDecay', ...FALLBACK_OPTIONS], path);
  const lr = numberField(c, 'learningRate', path, { min: 0 });
  const beta = numberField(c, 'beta', path, { min: 0, max: 1, default: 0.95 });
  const nesterov = booleanField(c, 'nesterov', path, true);
  const nsSteps = numberField(c, 'nsSteps', path, { integer: true, min: 1, default: 5 });
  const scale = oneOfField(c, 'scale', path, ORTHO_SCALES, 'rms');
  const wd = numberField(c, 'weightDecay', path, { min: 0, default: 0 });
  const adam = { ...readAdam(c, path, 'adam'), weightDecay: wd };
  const who = 'muon';
  return {
    name: 'muon',
    config: { learningRate: lr, beta, nesterov, nsSteps, scale, weightDecay: wd, adamLearningRate: adam.learningRate, adamBeta1: adam.beta1, adamBeta2: adam.beta2, adamEpsilon: adam.epsilon },
    init: (params) =>
      tidyState(() => {
        const s: NamedTensors = {};
        for (const [n, p] of Object.entries(params)) {
          if (p.rank >= 2) s[stateKey(n, 'm')] = tf.zerosLike(p);
          else {
            s[stateKey(n, 'adam/m')] = tf.zerosLike(p);
            s[stateKey(n, 'adam/v')] = tf.zerosLike(p);
          }
        }
        return s;
      }),
    update: (grads, state, params, step) =>
      tidyResult(() => {
        const updates: NamedTensors = {};
        const next: NamedTensors = {};
        const reads: Array<{ n: string; read: tf.Tensor }> = [];
        for (const [n, g] of Object.entries(grads)) {
          if (g.rank < 2) {
            adamSlotStep(n, g, state, params, step, adam, who, 'adam/', updates, next);
            continue;
          }
          const key = stateKey(n, 'm');
          const m = tf.add(tf.mul(need(state, key, who), beta), g); // linear momentum memory, [...P]
          next[key] = m;
          reads.push({ n, read: nesterov ? tf.add(g, tf.mul(m, beta)) : m });
        }
        // sigma(m(u)), Eq. 52: Newton-Schulz of all matrices at once (one fused kernel call where the backend
        // has it, else same-shaped ones batched).
        const mats = reads.map((e) => asMatrix(e.read, 'row'));
        const os = newtonSchulzMany(mats, nsSteps);
        reads.forEach((e, i) => {
          const s = orthoScale(scale, mats[i].shape[0], mats[i].shape[1]);
          const o = tf.reshape(os[i], e.read.shape);
          // -lr (s O + wd W); without decay one multiply by -lr s
          updates[e.n] = wd > 0 ? tf.mul(tf.add(tf.mul(o, s), tf.mul(params[e.n], wd)), -lr) : tf.mul(o, -lr * s);
        });
        return { updates, state: next };
      }),
  };
}

export interface OrthogonalizeConfig {
  /** Newton-Schulz iterations. Default 5. */
  nsSteps?: number;
  /** Default 'none' (the raw orthogonal factor). */
  scale?: OrthoScale;
}

/** Stateless sigma of Eq. 52: updates = s NS(incoming) for rank >= 2, passed through otherwise. */
export function orthogonalize(config: OrthogonalizeConfig = {}, path = 'orthogonalize'): GradientTransform {
  const c = checkOptions(config, ['nsSteps', 'scale'], path);
  const nsSteps = numberField(c, 'nsSteps', path, { integer: true, min: 1, default: 5 });
  const scale = oneOfField(c, 'scale', path, ORTHO_SCALES, 'none');
  return {
    name: 'orthogonalize',
    config: { nsSteps, scale },
    init: () => ({}),
    update: (grads) =>
      tidyResult(() => {
        const updates: NamedTensors = {};
        const mats = Object.entries(grads).filter(([, g]) => g.rank >= 2);
        const dirs = orthogonalizeMany(mats.map(([, g]) => g), nsSteps, scale);
        mats.forEach(([n], i) => (updates[n] = dirs[i]));
        for (const [n, g] of Object.entries(grads)) if (g.rank < 2) updates[n] = g.clone();
        return { updates, state: {} };
      }),
  };
}
