/**
 * NlLinearAttention: multi-head causal linear-memory mixer [B, T, D] -> [B, T, D] (paper Eqs. 14-18,
 * DeltaNet, and gated DeltaNet = DGD on a linear memory, Eqs. 57/93). See README.md.
 *
 *   q, k = x Wq, x Wk (+ bias)      -> [B, T, H, dk], optionally L2-normalised per head, q scaled
 *   v    = x Wv (+ bias)            -> [B, T, H, dv]
 *   beta = sigmoid(x Wbeta + b)     -> [B, T, H]   (delta rules)
 *   log alpha = log sigmoid(x Walpha + b) -> [B, T, H] ('gated-delta'; computed in log space)
 *   o_t = S_t q_t per head (ops/naive.ts, ops/chunked.ts), y = concat_h(o) Wo (+ bias)
 *
 * Two levels (paper Section 1): the outer optimizer trains the projections; the inner level writes S
 * once per token. Gradients flow through the writes (the training signal of the projections).
 */
import * as tf from '@tensorflow/tfjs';
import { refuseUnreportedLayerArgs } from '../../core';
import {
  headWidthFromModel,
  type Initializer,
  resolveLinearAttentionConfig,
  serializeInitializer,
  type LinearAttentionArgs,
  type LinearAttentionImpl,
  type QkNorm,
  type QueryScale,
  type ResolvedLinearAttentionConfig,
} from './config';
import { chunkedRecurrence } from './ops/chunked';
import { naiveRecurrence } from './ops/naive';
import type { TrilInverseMethod } from '../../core/ops/tril-inverse';
import type { LinearAttentionRule, RecurrenceInputs } from './ops/types';
import { checkLinearAttentionState, zeroLinearAttentionState, type LinearAttentionState } from './state';

/** The per-call options of the functional form (the resolved, size-complete config). */
export interface LinearAttentionOptions {
  numHeads: number;
  keyDim: number;
  valueDim: number;
  rule: LinearAttentionRule;
  qkNorm: QkNorm;
  queryScale: QueryScale;
  impl: LinearAttentionImpl;
  chunkSize: number;
  inverse: TrilInverseMethod;
}

/** Parameters of the layer as plain tensors (so tf.grads can differentiate w.r.t. each of them). */
export interface LinearAttentionWeights {
  qKernel: tf.Tensor; // [D, H dk]
  kKernel: tf.Tensor; // [D, H dk]
  vKernel: tf.Tensor; // [D, H dv]
  outKernel: tf.Tensor; // [H dv, D]
  qBias?: tf.Tensor; // [H dk]
  kBias?: tf.Tensor; // [H dk]
  vBias?: tf.Tensor; // [H dv]
  outBias?: tf.Tensor; // [D]
  betaKernel?: tf.Tensor; // [D, H]   (delta rules)
  betaBias?: tf.Tensor; // [H]
  gateKernel?: tf.Tensor; // [D, H]   ('gated-delta')
  gateBias?: tf.Tensor; // [H]
}
export type LinearAttentionWeightName = keyof LinearAttentionWeights;

/** eps inside the L2 norm: q / sqrt(|q|^2 + eps). */
export const QK_NORM_EPS = 1e-6;

/** [B T, D] x [D, F] (+ [F]) -> [B T, F] */
function project(x2: tf.Tensor2D, kernel: tf.Tensor, bias: tf.Tensor | undefined): tf.Tensor2D {
  const y = tf.matMul(x2, kernel as tf.Tensor2D);
  return (bias ? y.add(bias) : y) as tf.Tensor2D;
}

/** [B T, H d] -> [B H, T, d] (heads into the batch axis of the recurrence). */
function splitHeads(y: tf.Tensor2D, b: number, t: number, h: number, d: number): tf.Tensor3D {
  return y.reshape([b, t, h, d]).transpose([0, 2, 1, 3]).reshape([b * h, t, d]) as tf.Tensor3D;
}

/** [B T, H] -> [B H, T] */
function splitHeadScalars(y: tf.Tensor2D, b: number, t: number, h: number): tf.Tensor2D {
  return y.reshape([b, t, h]).transpose([0, 2, 1]).reshape([b * h, t]) as tf.Tensor2D;
}

function l2Normalize(a: tf.Tensor3D): tf.Tensor3D {
  return a.mul(tf.rsqrt(a.square().sum(-1, true).add(QK_NORM_EPS))) as tf.Tensor3D;
}

/**
 * The layer's computation as a pure function: x [B, T, D], state S [B, H, dv, dk] (null = zeros)
 * -> {y [B, T, D], s [B, H, dv, dk]}. Runs in tf.tidy; the results are new tensors owned by the caller.
 */
export function linearAttentionForward(
  opts: LinearAttentionOptions,
  w: LinearAttentionWeights,
  x: tf.Tensor,
  s0: tf.Tensor | null,
): { y: tf.Tensor3D; s: tf.Tensor4D } {
  return tf.tidy(() => {
    const { numHeads: h, keyDim: dk, valueDim: dv, rule } = opts;
    const [b, t, d] = x.shape;
    const x2 = x.reshape([b * t, d]) as tf.Tensor2D; // [B T, D]
    let q = splitHeads(project(x2, w.qKernel, w.qBias), b, t, h, dk); // [B H, T, dk]
    let k = splitHeads(project(x2, w.kKernel, w.kBias), b, t, h, dk); // [B H, T, dk]
    const v = splitHeads(project(x2, w.vKernel, w.vBias), b, t, h, dv); // [B H, T, dv]
    if (opts.qkNorm === 'l2') {
      q = l2Normalize(q);
      k = l2Normalize(k);
    }
    if (opts.queryScale === 'rsqrt-dk') q = q.mul(1 / Math.sqrt(dk)) as tf.Tensor3D;
    const inp: RecurrenceInputs = {
      q,
      k,
      v,
      s0: (s0 ? s0.reshape([b * h, dv, dk]) : tf.zeros([b * h, dv, dk])) as tf.Tensor3D,
    };
    if (rule !== 'additive') {
      if (!w.betaKernel || !w.betaBias) throw new Error(`linearAttentionForward: rule '${rule}' needs betaKernel and betaBias`);
      inp.beta = tf.sigmoid(splitHeadScalars(project(x2, w.betaKernel, w.betaBias), b, t, h)) as tf.Tensor2D; // [B H, T]
    }
    if (rule === 'gated-delta') {
      if (!w.gateKernel || !w.gateBias) throw new Error("linearAttentionForward: rule 'gated-delta' needs gateKernel and gateBias");
      // log alpha = log sigmoid(z) = -softplus(-z): finite and <= 0 for any logit. (Not tf.logSigmoid:
      // its custom gradient closes over its input, which this tf.tidy disposes before backprop.)
      const z = splitHeadScalars(project(x2, w.gateKernel, w.gateBias), b, t, h); // [B H, T]
      inp.logAlpha = tf.softplus(z.neg()).neg() as tf.Tensor2D;
    }
    const r =
      opts.impl === 'naive'
        ? naiveRecurrence(rule, inp)
        : chunkedRecurrence(rule, inp, { chunkSize: opts.chunkSize, inverse: opts.inverse });
    const o = r.o.reshape([b, h, t, dv]).transpose([0, 2, 1, 3]).reshape([b * t, h * dv]) as tf.Tensor2D; // [B T, H dv]
    const y = project(o, w.outKernel, w.outBias).reshape([b, t, d]) as tf.Tensor3D; // [B, T, D]
    return { y, s: r.s.reshape([b, h, dv, dk]) as tf.Tensor4D };
  });
}

export class NlLinearAttention extends tf.layers.Layer {
  static className = 'NlLinearAttention';

  // No field initialisers: tfjs-layers' constructor flow relies on fields set in the constructor.
  private readonly cfg: ResolvedLinearAttentionConfig;
  private dModelResolved: number | null;
  private keyDimResolved: number | null;
  private valueDimResolved: number | null;
  private vars: Partial<Record<LinearAttentionWeightName, tf.LayerVariable>>;

  constructor(args: LinearAttentionArgs = {}) {
    super(args);
    this.cfg = resolveLinearAttentionConfig(args);
    this.dModelResolved = this.cfg.dModel;
    this.keyDimResolved = this.cfg.keyDim;
    this.valueDimResolved = this.cfg.valueDim;
    this.vars = {};
    refuseUnreportedLayerArgs(this, args, 'NlLinearAttention');
  }

  /** The resolved config (dModel, keyDim, valueDim filled in once built). */
  get resolvedConfig(): Readonly<ResolvedLinearAttentionConfig> {
    return { ...this.cfg, dModel: this.dModelResolved, keyDim: this.keyDimResolved, valueDim: this.valueDimResolved };
  }

  private resolveSizes(dModel: number): void {
    if (this.dModelResolved !== null && this.dModelResolved !== dModel) {
      throw new Error(`NlLinearAttention.dModel: input last dimension ${dModel} does not match dModel=${this.dModelResolved}`);
    }
    this.dModelResolved = dModel;
    if (this.keyDimResolved === null || this.valueDimResolved === null) {
      const w = headWidthFromModel(dModel, this.cfg.numHeads);
      this.keyDimResolved = this.keyDimResolved ?? w;
      this.valueDimResolved = this.valueDimResolved ?? w;
    }
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    if (shape.length !== 3) throw new Error(`NlLinearAttention: input must be [B, T, D], got shape [${shape}]`);
    const dModel = shape[2];
    if (dModel == null) throw new Error('NlLinearAttention.dModel: the input last dimension must be known at build time');
    this.resolveSizes(dModel);
    const h = this.cfg.numHeads;
    const dk = this.keyDimResolved as number;
    const dv = this.valueDimResolved as number;
    const ki = this.cfg.kernelInitializer;
    const bi = this.cfg.biasInitializer;
    const add = (name: LinearAttentionWeightName, shp: number[], init: Initializer): void => {
      this.vars[name] = this.addWeight(name, shp, 'float32', init, undefined, true);
    };
    add('qKernel', [dModel, h * dk], ki);
    add('kKernel', [dModel, h * dk], ki);
    add('vKernel', [dModel, h * dv], ki);
    add('outKernel', [h * dv, dModel], ki);
    if (this.cfg.useBias) {
      add('qBias', [h * dk], bi);
      add('kBias', [h * dk], bi);
      add('vBias', [h * dv], bi);
      add('outBias', [dModel], bi);
    }
    if (this.cfg.rule !== 'additive') {
      add('betaKernel', [dModel, h], ki);
      add('betaBias', [h], tf.initializers.constant({ value: this.cfg.betaBiasInit }));
    }
    if (this.cfg.rule === 'gated-delta') {
      add('gateKernel', [dModel, h], ki);
      add('gateBias', [h], tf.initializers.constant({ value: this.cfg.gateBiasInit }));
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [...shape.slice(0, -1), this.dModelResolved ?? shape[shape.length - 1]];
  }

  /** Current parameter values (the variables themselves, no copies; do not dispose them). */
  currentWeights(): LinearAttentionWeights {
    if (!this.built) throw new Error('NlLinearAttention.currentWeights: the layer is not built yet');
    const out: Partial<Record<LinearAttentionWeightName, tf.Tensor>> = {};
    for (const [name, v] of Object.entries(this.vars)) out[name as LinearAttentionWeightName] = (v as tf.LayerVariable).read();
    return out as unknown as LinearAttentionWeights;
  }

  /** Per-call options of the functional form (needs the sizes, i.e. a built layer or dModel given). */
  options(): LinearAttentionOptions {
    const dk = this.keyDimResolved;
    const dv = this.valueDimResolved;
    if (dk === null || dv === null) {
      throw new Error('NlLinearAttention.keyDim: unknown until the layer is built (give dModel or keyDim and valueDim)');
    }
    const c = this.cfg;
    return {
      numHeads: c.numHeads,
      keyDim: dk,
      valueDim: dv,
      rule: c.rule,
      qkNorm: c.qkNorm,
      queryScale: c.queryScale,
      impl: c.impl,
      chunkSize: c.chunkSize,
      inverse: c.inverse,
    };
  }

  /** Zero memory for `batchSize` sequences: {S: [B, H, dv, dk]}. The caller owns (and disposes) it. */
  initialState(batchSize: number): LinearAttentionState {
    const o = this.options();
    return zeroLinearAttentionState(batchSize, o.numHeads, o.valueDim, o.keyDim);
  }

  private checkInput(x: tf.Tensor): void {
    if (x.rank !== 3) throw new Error(`NlLinearAttention: input must be [B, T, D], got shape [${x.shape}]`);
    if ((x.shape as number[])[1] < 1) throw new Error(`NlLinearAttention: input sequence length must be >= 1, got shape [${x.shape}]`);
    if (this.dModelResolved !== null && x.shape[2] !== this.dModelResolved) {
      throw new Error(`NlLinearAttention.dModel: input last dimension ${x.shape[2]} does not match dModel=${this.dModelResolved}`);
    }
  }

  /**
   * Runs x [B, T, D] from `state` (default: zero memory) and returns {y [B, T, D], state {S}}.
   * Both are new tensors owned by the caller; `state` is not disposed (the caller disposes it).
   * Chaining calls with the returned state equals one call on the concatenated sequence.
   */
  forward(x: tf.Tensor, state?: LinearAttentionState | null): { y: tf.Tensor3D; state: LinearAttentionState } {
    this.checkInput(x);
    if (!this.built) {
      this.build(x.shape);
      // What Layer.apply does on first eager use, so that layer.dispose() also works for a layer
      // that only ever ran through forward/step.
      if (this._refCount === null) this._refCount = 1;
    }
    const opts = this.options();
    if (state != null) checkLinearAttentionState(state, x.shape[0], opts.numHeads, opts.valueDim, opts.keyDim);
    const r = linearAttentionForward(opts, this.currentWeights(), x, state?.S ?? null);
    return { y: r.y, state: { S: r.s } };
  }

  /** Streaming alias of forward for generation: x_t [B, 1, D] (or [B, T, D]) with the carried state. */
  step(x: tf.Tensor, state: LinearAttentionState): { y: tf.Tensor3D; state: LinearAttentionState } {
    if (state == null) throw new Error('NlLinearAttention.step: state is required (use initialState(batchSize))');
    return this.forward(x, state);
  }

  /** y [B, T, D] from a zero memory (the tf.layers path: apply / predict / fit). */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      this.checkInput(x);
      return linearAttentionForward(this.options(), this.currentWeights(), x, null).y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const c = this.cfg;
    return {
      ...super.getConfig(),
      dModel: this.dModelResolved,
      numHeads: c.numHeads,
      keyDim: this.keyDimResolved,
      valueDim: this.valueDimResolved,
      rule: c.rule,
      qkNorm: c.qkNorm,
      queryScale: c.queryScale,
      chunkSize: c.chunkSize,
      impl: c.impl,
      inverse: c.inverse,
      useBias: c.useBias,
      kernelInitializer: serializeInitializer(c.kernelInitializer) as unknown as tf.serialization.ConfigDict,
      biasInitializer: serializeInitializer(c.biasInitializer) as unknown as tf.serialization.ConfigDict,
      betaBiasInit: c.betaBiasInit,
      gateBiasInit: c.gateBiasInit,
    };
  }
}

/** Factory mirroring tf.layers.*: `linearAttention({numHeads: 4, rule: 'delta'})`. */
export function linearAttention(args: LinearAttentionArgs = {}): NlLinearAttention {
  return new NlLinearAttention(args);
}
