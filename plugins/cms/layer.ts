/**
 * NlContinuumMemorySystem: k MLP blocks, each a level with its own update period C(l) in tokens
 * (paper Section 7, Eqs. 70-74). [B, T, D] -> [B, T, D].
 *
 *   block_l(h) = act(h W1_l + b1_l) W2_l + b2_l                         (an MLP memory)
 *   sequential / nested:  h_0 = x,  h_{l+1} = h_l + block_l(h_l)          (Eq. 70; residual optional)
 *   independent:          y = x + sum_l a_l block_l(x)                    (Eq. 74; a = learned `mix`)
 *
 * In-context learning (Eq. 71) through the InContextLearner hook of core/stateful.ts: the state holds
 * one fast copy of each learning level's weights per sequence ([B, ...]), the pending gradient sum of
 * the current chunk, and the level's transform state. The driver (NestedTrainer) differentiates the
 * task loss against the fast copies, accumulates, and at the token counts that are multiples of C(l)
 * applies  W_l <- W_l + eta(l) * transform_l(sum over the chunk of dL/dW_l)  (default transform:
 * -sum, i.e. plain Eq. 71). Between boundaries the weights are constant, so per-segment gradients of
 * the summed loss add up to exactly the per-token sum of Eq. 71.
 *
 * Meta-learning (first order): the trainable variables are each level's initial weights, the state at
 * the start of every context. The outer gradient of a variable is the sum of the gradients its fast
 * copies saw (treating dW_t/dW_0 = I); the driver adds it (see contextGradientTargets()).
 *
 * 'nested' (Eq. 72): level l (l+1 exists, both with period > 0) also holds, per sequence, the initial
 * state of level l+1 ("child"). Its gradient is the sum of the gradients level l+1 saw (first order);
 * at each of level l's boundaries the child initial state is updated with eta(l) and level l+1 is reset
 * to it (pending gradients and transform state of level l+1 restart too). 'sequential': all initial
 * states are meta-learned by the outer (slowest) level only (Eq. 73).
 *
 * The arithmetic is the pure CMS op of ops/cms.ts (cmsForward, cmsInitialState, cmsAccumulate,
 * cmsApplyUpdates; cmsInContext runs a CMS in context on its own); this class holds the variables.
 *
 * period 0: the level is an ordinary MLP (no fast copy; trained by the outer optimizer only).
 * call(x) / forward(x, null) use the initial weights: exactly the frozen MLP chain.
 */
import * as tf from '@tensorflow/tfjs';
import type { ContextGradientTarget, ContextLevelInfo, InContextLearner } from '../../core';
import { refuseUnreportedLayerArgs } from '../../core';
import { cmsOptionsToJson, resolveCmsOptions, type CmsOptions, type ResolvedCmsOptions } from './config';
import {
  cmsAccumulate,
  cmsApplyUpdates,
  cmsForward,
  cmsInitialState,
  cmsLearns,
  cmsSpec,
  cmsWeightNames,
  fastKey,
  type CmsParams,
  type CmsSpec,
  type CmsState,
  type CmsWeightName,
} from './ops/cms';

export { fastKey, childKey, type CmsState } from './ops/cms';

export type TfLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
export type CmsLayerArgs = TfLayerArgs & CmsOptions;

export class NlContinuumMemorySystem extends tf.layers.Layer implements InContextLearner<CmsState> {
  static className = 'NlContinuumMemorySystem';

  // Declarations only (useDefineForClassFields is false): set in the constructor / build.
  private readonly spec: CmsSpec;
  private inputDim: number | null;
  private vars: Record<string, tf.LayerVariable>;
  private mix: tf.LayerVariable | null;

  constructor(args: CmsLayerArgs = {}) {
    super(args);
    this.spec = cmsSpec(resolveCmsOptions((args ?? {}) as CmsOptions & Record<string, unknown>));
    this.inputDim = null;
    this.vars = {};
    this.mix = null;
    refuseUnreportedLayerArgs(this, args, 'NlContinuumMemorySystem');
  }

  private get where(): string {
    return `NlContinuumMemorySystem '${this.name}'`;
  }

  get options(): Readonly<ResolvedCmsOptions> {
    const { transforms: _t, ...opts } = this.spec;
    return opts;
  }

  get numLevels(): number {
    return this.spec.levels.length;
  }

  /** Hidden width of level l (needs D). */
  hiddenDim(l: number): number {
    const d = this.inputDim;
    if (d === null) throw new Error(`${this.where}: dimensions are known after build`);
    return this.spec.levels[l].hiddenDim ?? Math.max(1, Math.round(this.spec.expansion * d));
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    if (shape.length !== 3) throw new Error(`${this.where}: inputs must be [B, T, D], got shape [${shape}]`);
    const d = shape[2];
    if (typeof d !== 'number' || d <= 0) throw new Error(`${this.where}: the feature size D (last input axis) must be known, got [${shape}]`);
    this.inputDim = d;
    for (let l = 0; l < this.numLevels; l++) {
      const h = this.hiddenDim(l);
      this.vars[fastKey(l, 'w1')] = this.addWeight(`level${l}_w1`, [d, h], 'float32', tf.initializers.glorotUniform({}));
      if (this.spec.useBias) this.vars[fastKey(l, 'b1')] = this.addWeight(`level${l}_b1`, [h], 'float32', tf.initializers.zeros());
      this.vars[fastKey(l, 'w2')] = this.addWeight(`level${l}_w2`, [h, d], 'float32', tf.initializers.glorotUniform({}));
      if (this.spec.useBias) this.vars[fastKey(l, 'b2')] = this.addWeight(`level${l}_b2`, [d], 'float32', tf.initializers.zeros());
    }
    if (this.spec.variant === 'independent') {
      // Eq. 74 aggregation weights a_l, initialised to 1/k (the mean of the blocks).
      this.mix = this.addWeight('mix', [this.numLevels], 'float32', tf.initializers.constant({ value: 1 / this.numLevels }));
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    this.checkInputs(x);
    return tf.tidy(() => cmsForward(x, this.params(), this.spec, null));
  }

  /** The trainable variable holding level l's initial weight `w` (needs build). */
  variable(l: number, w: CmsWeightName): tf.LayerVariable {
    const v = this.vars[fastKey(l, w)];
    if (!v) throw new Error(`${this.where}: no variable for level ${l} weight '${w}' (built? useBias?)`);
    return v;
  }

  /** The op's parameters: the variables' current values (each level's initial weights, mix). */
  params(): CmsParams {
    const read = (l: number, w: CmsWeightName): tf.Tensor | null => this.vars[fastKey(l, w)]?.read() ?? null;
    return {
      levels: this.spec.levels.map((_, l) => ({ w1: read(l, 'w1')!, b1: read(l, 'b1'), w2: read(l, 'w2')!, b2: read(l, 'b2') })),
      mix: this.mix ? this.mix.read() : null,
    };
  }

  /** The resolved options and each level's transform, as the op takes them. */
  opSpec(): CmsSpec {
    return this.spec;
  }

  // ---------------------------------------------------------------------------------------------
  // StatefulSequenceLayer

  /** Fresh context: every learning level's fast copy = its initial weights, zero accumulators. */
  initialState(batchSize: number): CmsState {
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new Error(`${this.where}.initialState: batchSize must be a positive integer, got ${JSON.stringify(batchSize)}`);
    }
    if (!this.built) throw new Error(`${this.where}.initialState: build the layer first (call it once or build([B, T, D]))`);
    return cmsInitialState(this.params(), this.spec, batchSize);
  }

  /** Runs x [B, T, D] with the fast weights of `state` (constant inside the call). The returned
   * state is a copy of the input state: weights change only in applyContextUpdates (Eq. 71). */
  forward(x: tf.Tensor, state?: CmsState | null): { y: tf.Tensor; state: CmsState } {
    if (!this.built) this.build(x.shape);
    this.checkInputs(x);
    if (state) this.checkState(state, x.shape[0]);
    return tf.tidy(() => {
      const s = state ?? this.initialState(x.shape[0]);
      const y = cmsForward(x, this.params(), this.spec, state ?? null);
      const out: Record<string, tf.Tensor> = {};
      for (const [k, v] of Object.entries(s)) out[k] = state ? v.clone() : v;
      return { y, state: out } as unknown as tf.TensorContainer;
    }) as unknown as { y: tf.Tensor; state: CmsState };
  }

  // ---------------------------------------------------------------------------------------------
  // InContextLearner (core/stateful.ts): the driver owns the clocks, the op the arithmetic.

  contextLevels(): readonly ContextLevelInfo[] {
    return this.spec.levels.map((lv, l) => ({
      id: `level${l}`,
      period: lv.period,
      learningRate: lv.learningRate,
      ...(lv.transform ? { transform: lv.transform.transform } : {}),
      variables: this.built ? cmsWeightNames(this.spec).map((w) => (this.vars[fastKey(l, w)].read() as tf.Variable).name) : [],
    }));
  }

  contextGradientTargets(): readonly ContextGradientTarget[] {
    if (!this.built) throw new Error(`${this.where}.contextGradientTargets: build the layer first`);
    const out: ContextGradientTarget[] = [];
    for (let l = 0; l < this.numLevels; l++) {
      if (!cmsLearns(this.spec, l)) continue;
      for (const w of cmsWeightNames(this.spec)) {
        const k = fastKey(l, w);
        out.push({ stateKey: k, variable: this.vars[k].read() as tf.Variable });
      }
    }
    return out;
  }

  accumulateContextGradients(state: CmsState, grads: Readonly<Record<string, tf.Tensor>>): CmsState {
    return cmsAccumulate(state, grads);
  }

  applyContextUpdates(state: CmsState, levels: ReadonlyArray<{ id: string; step: number }>): CmsState {
    const firing = new Map<number, number>();
    for (const { id, step } of levels) {
      const m = /^level(\d+)$/.exec(id);
      const l = m ? Number(m[1]) : -1;
      if (l < 0 || l >= this.numLevels) throw new Error(`${this.where}.applyContextUpdates: unknown level id '${id}'`);
      if (!cmsLearns(this.spec, l)) throw new Error(`${this.where}.applyContextUpdates: level '${id}' has period 0 and never updates`);
      firing.set(l, step);
    }
    return cmsApplyUpdates(state, firing, this.spec);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...(cmsOptionsToJson(this.spec) as tf.serialization.ConfigDict) };
  }

  // ---------------------------------------------------------------------------------------------

  private checkInputs(x: tf.Tensor): void {
    const d = this.inputDim;
    const ok = x instanceof tf.Tensor && x.rank === 3 && (d === null || x.shape[2] === d) && (x.shape[1] ?? 0) >= 1;
    if (!ok) throw new Error(`${this.where}: inputs must be [B, T >= 1, D${d !== null ? `=${d}` : ''}], got shape [${(x as tf.Tensor)?.shape}]`);
  }

  private checkState(state: CmsState, b: number): void {
    for (let l = 0; l < this.numLevels; l++) {
      if (!cmsLearns(this.spec, l)) continue;
      for (const w of cmsWeightNames(this.spec)) {
        const k = fastKey(l, w);
        const t = state[k];
        const want = [b, ...this.vars[k].shape];
        if (!t) throw new Error(`${this.where}: state.${k} is missing (expected [${want}])`);
        if (t.shape.join() !== want.join()) throw new Error(`${this.where}: state.${k} has shape [${t.shape}], expected [${want}]`);
      }
    }
  }
}

/** Factory mirroring tf.layers.*: `continuumMemorySystem({ levels: [{ period: 16 }, { period: 64 }] })`. */
export function continuumMemorySystem(args: CmsLayerArgs = {}): NlContinuumMemorySystem {
  return new NlContinuumMemorySystem(args);
}
