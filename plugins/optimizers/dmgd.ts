/**
 * Deep Momentum Gradient Descent, DMGD (Eq. 50): the momentum is an MLP memory m(.) with its own
 * parameters, trained online by GD on an internal loss; the parameter update reads it:
 *   m_{i+1} = alpha m_i - eta_m grad L2(m_i; u_i)      (memory write, u_i = dL/dW_i)
 *   W_{i+1} = W_i + lr * m_{i+1}(u_i)                 (read; lr = 1 is Eq. 50 as printed)
 *
 * The memory (Decisions, documented in README.md):
 * - Factorised + shared: m acts on the ROWS of a parameter's matrix view [prod(shape[:-1]), b] and
 *   one memory is shared by every parameter whose last axis is b. Its state is 2 b h + b + 1 floats,
 *   so the optimizer's state is a small fraction of the model (not d^2 per parameter).
 * - Form: m(u) = u * c + act(u W1) W2  (c [b] a diagonal skip, W1 [b, h], W2 [h, b]); rows are fed
 *   scale-free, u^ = u / rms(u) per parameter, and the read is rescaled by rms(P u), so the memory
 *   sees O(1) inputs whatever the gradient scale.
 * - Internal loss: a core InnerLoss on (m(u^), target), mean over rows:
 *     'dot' (paper):  L = -<m(u^), -u^> = <m(u^), u^>   (the memory learns to point against u)
 *     'l2':           L = 1/2 ||m(u^) + P u / rms(P u)||^2 (regress the preconditioned descent direction)
 *   Gradients are analytic (backprop through the 2-layer MLP by hand; no nested tf.grad).
 * - The forget gate alpha (memoryDecay) multiplies the memory's output side (c, W2); W1 (its
 *   features) is trained without decay, else it would vanish geometrically.
 * - W1 starts N(0, 1/b) from a fixed seed (per width), c and W2 at 0: the first read is 0 only
 *   before the first write; the write happens first, so step 1 already moves W.
 * The latest inner loss (before the write) is kept in state as '::mem<b>/loss' for monitoring.
 * State: global '::mem<b>/w1' [b, h], '::mem<b>/w2' [h, b], '::mem<b>/c' [b], '::mem<b>/loss' [];
 * per-parameter preconditioner slots for 'l2' with a preconditioner.
 */
import * as tf from '@tensorflow/tfjs';
import { getInnerLoss, type GradientTransform, type NamedTensors, stateKey, tidyResult, tidyState } from '../../core';
import { booleanField, checkOptions, numberField, oneOfField } from '../../core/transforms/validate';
import { need, type PreconditionerKind, preconditionerApply, preconditionerConfig, preconditionerInit, readPreconditioner, PRECONDITIONER_OPTIONS } from './util';

export type DmgdInnerLoss = 'dot' | 'l2';
export const DMGD_INNER_LOSSES: readonly DmgdInnerLoss[] = ['dot', 'l2'];
export type DmgdActivation = 'tanh' | 'relu' | 'linear';
export const DMGD_ACTIVATIONS: readonly DmgdActivation[] = ['tanh', 'relu', 'linear'];

export interface DmgdConfig {
  /** Read scale lr > 0 (W += lr * m(u)). Default 1 (Eq. 50). */
  learningRate?: number;
  /** Step eta_m of GD on the internal loss. Default 0.1. */
  memoryLearningRate?: number;
  /** Forget gate alpha of the memory's output side, in [0, 1]. Default 0.9 for 'dot', 1 for 'l2'. */
  memoryDecay?: number;
  /** Hidden width h of the memory MLP. Default 16. */
  hidden?: number;
  /** Default 'tanh'. */
  activation?: DmgdActivation;
  /** Default 'l2'. */
  innerLoss?: DmgdInnerLoss;
  /** Seed of W1's initialisation. Default 0. */
  seed?: number;
  /**
   * Axis 0 of every tensor indexes independent parameters (a CMS level's per-sequence fast weights [B, ...]):
   * each entry gets its own memory (state [B, ...], the same initial W1), so sequences do not share one. Default false.
   */
  batchAxis?: boolean;
  /** 'l2' target's P (util.ts). Default 'none'. */
  preconditioner?: PreconditionerKind;
  beta2?: number;
  epsilon?: number;
  pLearningRate?: number;
  pMax?: number;
}

const RMS_EPS = 1e-12;

/** Width b of the rows a parameter is cut into (last axis; 1 for a scalar). */
export function dmgdWidth(shape: readonly number[]): number {
  return shape.length === 0 ? 1 : shape[shape.length - 1];
}

/** The memory's state keys for width b. */
export function dmgdKeys(b: number): { w1: string; w2: string; c: string; loss: string } {
  return { w1: stateKey('', `mem${b}/w1`), w2: stateKey('', `mem${b}/w2`), c: stateKey('', `mem${b}/c`), loss: stateKey('', `mem${b}/loss`) };
}

function act(z: tf.Tensor, kind: DmgdActivation): tf.Tensor {
  return kind === 'tanh' ? tf.tanh(z) : kind === 'relu' ? tf.relu(z) : z;
}

/** d act / dz given z and a = act(z). */
function actGrad(z: tf.Tensor, a: tf.Tensor, kind: DmgdActivation): tf.Tensor {
  if (kind === 'tanh') return tf.sub(1, tf.square(a));
  if (kind === 'relu') return tf.cast(tf.greater(z, 0), 'float32');
  return tf.onesLike(z);
}

/** m(U) = U * c + act(U W1) W2. U: [R, b] -> [R, b], or per entry [E, R, b] with W1 [E, b, h], W2 [E, h, b], c [E, 1, b]
 * (also returns z, a for the backward pass). */
export function dmgdForward<T extends tf.Tensor2D | tf.Tensor3D>(u: T, w1: tf.Tensor, w2: tf.Tensor, c: tf.Tensor, kind: DmgdActivation): { out: T; z: tf.Tensor; a: tf.Tensor } {
  const z = tf.matMul(u, w1 as T); // [(E,) R, h]
  const a = act(z, kind);
  const out = tf.add(tf.mul(u, c), tf.matMul(a as T, w2 as T)) as T; // [(E,) R, b]
  return { out, z, a };
}

export function dmgd(config: DmgdConfig = {}, path = 'dmgd'): GradientTransform {
  const c0 = checkOptions(config, ['learningRate', 'memoryLearningRate', 'memoryDecay', 'hidden', 'activation', 'innerLoss', 'seed', 'batchAxis', ...PRECONDITIONER_OPTIONS], path);
  const lr = numberField(c0, 'learningRate', path, { above: 0, default: 1 });
  const etaM = numberField(c0, 'memoryLearningRate', path, { min: 0, default: 0.1 });
  const lossName = oneOfField(c0, 'innerLoss', path, DMGD_INNER_LOSSES, 'l2');
  const decay = numberField(c0, 'memoryDecay', path, { min: 0, max: 1, default: lossName === 'dot' ? 0.9 : 1 });
  const hidden = numberField(c0, 'hidden', path, { integer: true, min: 1, default: 16 });
  const activation = oneOfField(c0, 'activation', path, DMGD_ACTIVATIONS, 'tanh');
  const seed = numberField(c0, 'seed', path, { integer: true, min: 0, default: 0 });
  const batchAxis = booleanField(c0, 'batchAxis', path, false);
  const pc = readPreconditioner(c0, path);
  const loss = getInnerLoss(lossName, `${path}.innerLoss`);
  const who = 'dmgd';
  return {
    name: 'dmgd',
    config: {
      learningRate: lr, memoryLearningRate: etaM, memoryDecay: decay, hidden, activation, innerLoss: lossName, seed, batchAxis,
      ...preconditionerConfig(pc),
    },
    init: (params) =>
      tidyState(() => {
        const s: NamedTensors = {};
        for (const [n, p] of Object.entries(params)) {
          if (lossName === 'l2') preconditionerInit(n, p, pc, s, 'P', path);
          const b = dmgdWidth(p.shape);
          const k = dmgdKeys(b);
          if (s[k.w1]) continue;
          const w1 = tf.randomNormal([b, hidden], 0, 1 / Math.sqrt(b), 'float32', seed * 100003 + b); // [b, h]
          const e = p.shape[0]; // batchAxis: one memory per entry, all from the same W1
          s[k.w1] = batchAxis ? tf.tile(tf.expandDims(w1, 0), [e, 1, 1]) : w1; // [(B,) b, h]
          s[k.w2] = tf.zeros(batchAxis ? [e, hidden, b] : [hidden, b]); // [(B,) h, b]
          s[k.c] = tf.zeros(batchAxis ? [e, b] : [b]); // [(B,) b]
          s[k.loss] = batchAxis ? tf.zeros([e]) : tf.scalar(0);
        }
        return s;
      }),
    update: (grads, state, _params, step) =>
      tidyResult(() => {
        const next: NamedTensors = {};
        const updates: NamedTensors = {};
        const groups = new Map<number, string[]>();
        for (const [n, g] of Object.entries(grads)) {
          const b = dmgdWidth(g.shape);
          groups.set(b, [...(groups.get(b) ?? []), n]);
        }
        for (const [b, names] of groups) {
          const k = dmgdKeys(b);
          // E = entries with their own memory: 1, or B with batchAxis (a CMS level's per-sequence fast weights [B, ...])
          const e = batchAxis ? grads[names[0]].shape[0] : 1;
          const uRows: tf.Tensor[] = [];
          const tRows: tf.Tensor[] = [];
          const scales: tf.Tensor[] = [];
          const counts: number[] = [];
          const rms = (x: tf.Tensor): tf.Tensor => // per entry: [E, 1, 1]
            tf.reshape(tf.add(tf.sqrt(tf.mean(tf.square(tf.reshape(x, [e, -1])), 1)), RMS_EPS), [e, 1, 1]);
          for (const n of names) {
            const g = grads[n];
            if (batchAxis && g.shape[0] !== e) throw new Error(`${who}: batchAxis: parameter '${n}' has ${g.shape[0]} entries on axis 0, expected ${e} (as '${names[0]}')`);
            const gRows = tf.reshape(g, [e, -1, b]); // [E, R_n, b]
            const uHat = tf.div(gRows, rms(g)); // scale-free input
            uRows.push(uHat);
            counts.push(gRows.shape[1] as number);
            if (lossName === 'l2') {
              const pg = preconditionerApply(n, g, state, step, pc, next, who); // P u, [...P]
              const r = rms(pg);
              tRows.push(tf.neg(tf.div(tf.reshape(pg, [e, -1, b]), r))); // target -P u / rms(P u)
              scales.push(r);
            } else {
              tRows.push(tf.neg(uHat)); // dot target -u^
              scales.push(rms(g));
            }
          }
          const u = (uRows.length === 1 ? uRows[0] : tf.concat(uRows, 1)) as tf.Tensor3D; // [E, R, b]
          const t = tRows.length === 1 ? tRows[0] : tf.concat(tRows, 1); // [E, R, b]
          const rows = u.shape[1];
          const w1 = tf.reshape(need(state, k.w1, who), [e, b, hidden]); // [E, b, h]
          const w2 = tf.reshape(need(state, k.w2, who), [e, hidden, b]); // [E, h, b]
          const c = tf.reshape(need(state, k.c, who), [e, 1, b]); // [E, 1, b]
          // Write: one GD step on the internal loss (Eq. 50), analytic backprop through the MLP.
          const f = dmgdForward(u, w1, w2, c, activation);
          const lossNow = tf.mean(loss.value(f.out, t), 1); // [E] inner loss before the write
          next[k.loss] = batchAxis ? lossNow : tf.reshape(lossNow, []);
          const dOut = tf.div(loss.grad(f.out, t), rows); // dL/dout for L = mean over rows, [E, R, b]
          const dc = tf.sum(tf.mul(u, dOut), 1, true); // [E, 1, b]
          const dW2 = tf.matMul(f.a as tf.Tensor3D, dOut as tf.Tensor3D, true, false); // [E, h, b]
          const dz = tf.mul(tf.matMul(dOut as tf.Tensor3D, w2 as tf.Tensor3D, false, true), actGrad(f.z, f.a, activation)); // [E, R, h]
          const dW1 = tf.matMul(u, dz as tf.Tensor3D, true, false); // [E, b, h]
          const c1 = tf.sub(tf.mul(c, decay), tf.mul(dc, etaM));
          const w21 = tf.sub(tf.mul(w2, decay), tf.mul(dW2, etaM));
          const w11 = tf.sub(w1, tf.mul(dW1, etaM));
          next[k.c] = tf.reshape(c1, need(state, k.c, who).shape);
          next[k.w2] = tf.reshape(w21, need(state, k.w2, who).shape);
          next[k.w1] = tf.reshape(w11, need(state, k.w1, who).shape);
          // Read with the written memory: W += lr * rms * m(u^).
          const out = dmgdForward(u, w11, w21, c1, activation).out; // [E, R, b]
          const parts = names.length === 1 ? [out] : tf.split(out, counts, 1);
          names.forEach((n, i) => {
            updates[n] = tf.reshape(tf.mul(parts[i], tf.mul(scales[i], lr)), grads[n].shape);
          });
        }
        // Memories (and preconditioner slots) not touched this step: carried over as copies.
        for (const [key, v] of Object.entries(state)) if (!(key in next) && isOwnedBy(key, grads) === false) next[key] = v.clone();
        return { updates, state: next };
      }),
  };
}

/** Whether a per-parameter key belongs to a parameter in `grads` (global keys: false). */
function isOwnedBy(key: string, grads: NamedTensors): boolean {
  const at = key.indexOf('::');
  const param = key.slice(0, at);
  return param !== '' && param in grads;
}
