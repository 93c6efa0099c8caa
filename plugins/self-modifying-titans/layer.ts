/**
 * NlSelfModifyingTitans: the self-modifying Titans sequence mixer (paper Section 8, Eqs. 83-93),
 * [B, T, D] -> [B, T, D], with a streaming API (StatefulSequenceLayer). The math lives in
 * ops/forward.ts (whole mixer), ops/recurrence.ts (Eq. 88 with momentum, naive and chunked) and
 * ops/memory.ts (Eq. 89 memory and its analytic inner gradients). See README.md.
 *
 * Outer-loop variables: the memories' meta-learned initial weights, the eta/alpha biases, W_q
 * (unless adaptiveQ), W_k / W_v (static k / v ablations) and W_o.
 */
import * as tf from '@tensorflow/tfjs';
import { getInnerLoss } from '../../core/inner-loss';
import { assertStateShapes } from '../../core/memory-state';
import type { StatefulSequenceLayer } from '../../core/stateful';
import { resolveSmtConfig, type ResolvedSmtConfig, type SelfModifyingTitansArgs } from './config';
import {
  initialSmtState,
  memoryNames,
  selfModifyingTitansForward,
  stateShapes,
  type SmtOptions,
  type SmtState,
  type SmtWeightName,
  type SmtWeights,
} from './ops/forward';

/** tfjs-layers' Initializer type (the class is not exported by @tensorflow/tfjs). */
type Init = ReturnType<typeof tf.initializers.zeros>;

export class NlSelfModifyingTitans extends tf.layers.Layer implements StatefulSequenceLayer<SmtState> {
  static className = 'NlSelfModifyingTitans';

  // No field initialisers (tfjs-layers' constructor flow; useDefineForClassFields is false).
  private readonly cfg: ResolvedSmtConfig;
  private dModelResolved: number | null;
  private vars: Partial<Record<SmtWeightName, tf.LayerVariable>>;

  constructor(args: SelfModifyingTitansArgs = {}) {
    super(args);
    this.cfg = resolveSmtConfig(args);
    this.dModelResolved = this.cfg.dModel;
    this.vars = {};
  }

  get resolvedConfig(): Readonly<ResolvedSmtConfig> {
    return { ...this.cfg, dModel: this.dModelResolved, hiddenDim: this.hiddenDim() };
  }

  private headDim(): number {
    if (this.dModelResolved === null) throw new Error(`${this.name}: dModel unknown until the layer is built (give dModel)`);
    return this.dModelResolved / this.cfg.numHeads;
  }

  private hiddenDim(): number | null {
    if (this.cfg.hiddenDim !== null) return this.cfg.hiddenDim;
    return this.dModelResolved === null ? null : 2 * (this.dModelResolved / this.cfg.numHeads);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    if (shape.length !== 3) throw new Error(`NlSelfModifyingTitans: input must be [B, T, D], got shape [${shape}]`);
    const d = shape[2];
    if (d == null) throw new Error('NlSelfModifyingTitans.dModel: the input last dimension must be known at build time');
    if (this.dModelResolved !== null && this.dModelResolved !== d) {
      throw new Error(`NlSelfModifyingTitans.dModel: input last dimension ${d} does not match dModel=${this.dModelResolved}`);
    }
    if (d % this.cfg.numHeads !== 0) throw new Error(`NlSelfModifyingTitans.numHeads: must divide dModel=${d}, got ${this.cfg.numHeads}`);
    this.dModelResolved = d;
    const c = this.cfg;
    const h = c.numHeads;
    const dh = d / h;
    const dz = this.hiddenDim() as number;
    const nm = memoryNames(c).length;
    const normal = (std: number): Init => tf.initializers.randomNormal({ mean: 0, stddev: std });
    const add = (name: SmtWeightName, shp: number[], init: Init): void => {
      this.vars[name] = this.addWeight(name, shp, 'float32', init, undefined, true);
    };
    const stable = c.parameterization === 'stable';
    // 'stable': output matrices start at 0 (every memory starts as the identity on its normalised input,
    // so k, v, q are the projections, as in a delta-rule layer); hidden matrices at std initScale / sqrt(dh)
    const w1Init = stable ? tf.initializers.zeros() : normal(c.initScale / Math.sqrt(dz));
    add('w1Init', [nm, h, dh, dz], w1Init);
    add('w2Init', [nm, h, dz, dh], normal(c.initScale / Math.sqrt(dh)));
    add('memW1Init', [h, dh, dz], w1Init);
    add('memW2Init', [h, dz, dh], normal(c.initScale / Math.sqrt(dh)));
    add('etaBias', [h], tf.initializers.constant({ value: c.etaBiasInit }));
    if (c.weightDecay) add('alphaBias', [h], tf.initializers.constant({ value: c.alphaBiasInit }));
    if (stable || !c.adaptiveQ) add('qKernel', [d, d], tf.initializers.glorotUniform({}));
    if (stable || c.staticK) add('kKernel', [d, d], tf.initializers.glorotUniform({}));
    if (stable || c.staticV) add('vKernel', [d, d], tf.initializers.glorotUniform({}));
    if (stable) {
      add('gateKernel', [d, d], tf.initializers.glorotUniform({}));
      add('normGain', [d], tf.initializers.ones());
    }
    add('outKernel', [d, d], tf.initializers.glorotUniform({}));
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
  }

  /** Current parameters (the variables' tensors; do not dispose). */
  currentWeights(): SmtWeights {
    if (!this.built) throw new Error(`${this.name}.currentWeights: the layer is not built yet`);
    const out: Partial<Record<SmtWeightName, tf.Tensor>> = {};
    for (const [k, v] of Object.entries(this.vars)) out[k as SmtWeightName] = (v as tf.LayerVariable).read();
    return out as SmtWeights;
  }

  /** Size-complete options of the functional form. */
  options(): SmtOptions {
    const c = this.cfg;
    return {
      numHeads: c.numHeads,
      headDim: this.headDim(),
      hiddenDim: this.hiddenDim() as number,
      act: c.activation,
      innerLoss: getInnerLoss(c.innerLoss, `${NlSelfModifyingTitans.className}.innerLoss`),
      momentum: c.momentum ? c.momentumDecay : null,
      dgd: c.dgd,
      weightDecay: c.weightDecay,
      staticK: c.staticK,
      staticV: c.staticV,
      adaptiveQ: c.adaptiveQ,
      normalize: c.normalize,
      chunkSize: c.chunkSize,
      memChunkSize: c.memChunkSize,
      etaMax: c.etaMax,
      alphaMin: c.alphaMin,
      gradClip: c.gradClip,
      impl: c.impl,
      gradientMode: c.gradientMode,
      sentinel: c.sentinel,
      layerName: `NlSelfModifyingTitans '${this.name}'`,
      parameterization: c.parameterization,
      slowRate: c.slowRate,
      checkpoint: c.checkpoint,
    };
  }

  private ensureBuilt(x: tf.Tensor): void {
    if (x.rank !== 3) throw new Error(`NlSelfModifyingTitans: input must be [B, T, D], got shape [${x.shape}]`);
    if ((x.shape[1] as number) < 1) throw new Error(`NlSelfModifyingTitans: sequence length must be >= 1, got shape [${x.shape}]`);
    if (!this.built) {
      this.build(x.shape);
      if (this._refCount === null) this._refCount = 1;
    } else if (x.shape[2] !== this.dModelResolved) {
      throw new Error(`NlSelfModifyingTitans.dModel: input last dimension ${x.shape[2]} does not match dModel=${this.dModelResolved}`);
    }
  }

  /** Meta-learned initial state for `batchSize` sequences (owned by the caller). Needs a built layer. */
  initialState(batchSize: number): SmtState {
    if (!this.built) throw new Error(`${this.name}.initialState: build the layer first (call it once or build([B, T, D]))`);
    return initialSmtState(this.options(), this.currentWeights(), batchSize);
  }

  /** x [B, T, D] from `state` (initialState when null) -> {y, state}; chaining calls == one call. */
  forward(x: tf.Tensor, state?: SmtState | null): { y: tf.Tensor; state: SmtState } {
    this.ensureBuilt(x);
    const o = this.options();
    if (state != null) assertStateShapes(state, stateShapes(o, x.shape[0]), `${this.name}.state`);
    return selfModifyingTitansForward(o, this.currentWeights(), x, state ?? null);
  }

  /** Streaming alias of forward (generation: x_t [B, 1, D] with the carried state). */
  step(x: tf.Tensor, state: SmtState): { y: tf.Tensor; state: SmtState } {
    if (state == null) throw new Error(`${this.name}.step: state is required (use initialState(batchSize))`);
    return this.forward(x, state);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      this.ensureBuilt(x);
      const r = selfModifyingTitansForward(this.options(), this.currentWeights(), x, null);
      return r.y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const c = this.cfg;
    return {
      ...super.getConfig(),
      dModel: this.dModelResolved,
      numHeads: c.numHeads,
      hiddenDim: this.hiddenDim(),
      activation: c.activation,
      innerLoss: c.innerLoss,
      momentum: c.momentum,
      momentumDecay: c.momentumDecay,
      dgd: c.dgd,
      weightDecay: c.weightDecay,
      staticK: c.staticK,
      staticV: c.staticV,
      adaptiveQ: c.adaptiveQ,
      normalize: c.normalize,
      chunkSize: c.chunkSize,
      memChunkSize: c.memChunkSize,
      etaMax: c.etaMax,
      alphaMin: c.alphaMin,
      etaBiasInit: c.etaBiasInit,
      alphaBiasInit: c.alphaBiasInit,
      gradClip: c.gradClip,
      impl: c.impl,
      gradientMode: c.gradientMode,
      sentinel: c.sentinel,
      initScale: c.initScale,
      parameterization: c.parameterization,
      slowRate: c.slowRate,
      checkpoint: c.checkpoint,
    };
  }
}

export function selfModifyingTitans(args: SelfModifyingTitansArgs = {}): NlSelfModifyingTitans {
  return new NlSelfModifyingTitans(args);
}
