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
 * period 0: the level is an ordinary MLP (no fast copy; trained by the outer optimizer only).
 * call(x) / forward(x, null) use the initial weights: exactly the frozen MLP chain.
 */
import * as tf from '@tensorflow/tfjs';
import {
  buildTransform,
  type ContextGradientTarget,
  type ContextLevelInfo,
  type GradientTransform,
  type InContextLearner,
  type MemoryState,
  type NamedTensors,
} from '../../core';
import { cmsOptionsToJson, resolveCmsOptions, type CmsActivation, type CmsOptions, type ResolvedCmsOptions } from './config';

export type TfLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
export type CmsLayerArgs = TfLayerArgs & CmsOptions;

/** CMS memory state: fast weights 'L<l>/<w>' [B, ...], accumulators 'acc/...', transform state 'opt/...'. */
export type CmsState = MemoryState;

const WEIGHTS = ['w1', 'b1', 'w2', 'b2'] as const;
type WeightName = (typeof WEIGHTS)[number];

/** Shapes and values of one block's weights: shared [D, H] (variables) or per sequence [B, D, H]. */
interface BlockWeights {
  w1: tf.Tensor;
  b1: tf.Tensor | null;
  w2: tf.Tensor;
  b2: tf.Tensor | null;
}

function activate(x: tf.Tensor, a: CmsActivation): tf.Tensor {
  switch (a) {
    case 'gelu':
      return x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5); // exact GELU
    case 'relu':
      return tf.relu(x);
    case 'silu':
      return x.mul(tf.sigmoid(x));
    case 'tanh':
      return tf.tanh(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'linear':
      return x;
  }
}

/** Key of level l's fast weight `w` in the state. */
export const fastKey = (l: number, w: string): string => `L${l}/${w}`;
/** Key of the child initial state of level l+1 held by level l ('nested'). */
export const childKey = (l: number, w: string): string => `L${l}/child/${w}`;
const accKey = (k: string): string => `acc/${k}`;
const optKey = (k: string): string => `opt/${k}`;
/** Where level l keeps its transform's state key k: per-parameter keys ('L0/w1::m') are unique already;
 * global keys ('::slot', e.g. DMGD's shared memory or a schedule's count) get the level: 'opt/L<l>::slot'. */
const levelOptKey = (l: number, k: string): string => (k.startsWith('::') ? `opt/L${l}${k}` : optKey(k));

export class NlContinuumMemorySystem extends tf.layers.Layer implements InContextLearner<CmsState> {
  static className = 'NlContinuumMemorySystem';

  // Declarations only (useDefineForClassFields is false): set in the constructor / build.
  private readonly opts: ResolvedCmsOptions;
  private readonly transforms: Array<GradientTransform | null>;
  private inputDim: number | null;
  private vars: Record<string, tf.LayerVariable>;
  private mix: tf.LayerVariable | null;

  constructor(args: CmsLayerArgs = {}) {
    super(args);
    this.opts = resolveCmsOptions((args ?? {}) as CmsOptions & Record<string, unknown>);
    this.transforms = this.opts.levels.map((l, i) =>
      l.transform ? buildTransform(l.transform, `NlContinuumMemorySystem.levels[${i}].transform`) : null,
    );
    this.inputDim = null;
    this.vars = {};
    this.mix = null;
  }

  private get where(): string {
    return `NlContinuumMemorySystem '${this.name}'`;
  }

  get options(): Readonly<ResolvedCmsOptions> {
    return this.opts;
  }

  get numLevels(): number {
    return this.opts.levels.length;
  }

  private weightNames(): WeightName[] {
    return this.opts.useBias ? [...WEIGHTS] : ['w1', 'w2'];
  }

  /** Level l learns in context (has a fast copy in the state). */
  private learns(l: number): boolean {
    return this.opts.levels[l].period > 0;
  }

  /** Level l holds the child initial state of level l+1 ('nested' only). */
  private hasChild(l: number): boolean {
    return this.opts.variant === 'nested' && l + 1 < this.numLevels && this.learns(l) && this.learns(l + 1);
  }

  /** Hidden width of level l (needs D). */
  hiddenDim(l: number): number {
    const d = this.inputDim;
    if (d === null) throw new Error(`${this.where}: dimensions are known after build`);
    return this.opts.levels[l].hiddenDim ?? Math.max(1, Math.round(this.opts.expansion * d));
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
      if (this.opts.useBias) this.vars[fastKey(l, 'b1')] = this.addWeight(`level${l}_b1`, [h], 'float32', tf.initializers.zeros());
      this.vars[fastKey(l, 'w2')] = this.addWeight(`level${l}_w2`, [h, d], 'float32', tf.initializers.glorotUniform({}));
      if (this.opts.useBias) this.vars[fastKey(l, 'b2')] = this.addWeight(`level${l}_b2`, [d], 'float32', tf.initializers.zeros());
    }
    if (this.opts.variant === 'independent') {
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
    return tf.tidy(() => this.run(x, null));
  }

  /** The trainable variable holding level l's initial weight `w` (needs build). */
  variable(l: number, w: WeightName): tf.LayerVariable {
    const v = this.vars[fastKey(l, w)];
    if (!v) throw new Error(`${this.where}: no variable for level ${l} weight '${w}' (built? useBias?)`);
    return v;
  }

  // ---------------------------------------------------------------------------------------------
  // StatefulSequenceLayer

  /** Fresh context: every learning level's fast copy = its initial weights, zero accumulators. */
  initialState(batchSize: number): CmsState {
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new Error(`${this.where}.initialState: batchSize must be a positive integer, got ${JSON.stringify(batchSize)}`);
    }
    if (!this.built) throw new Error(`${this.where}.initialState: build the layer first (call it once or build([B, T, D]))`);
    return tf.tidy(() => {
      const s: Record<string, tf.Tensor> = {};
      const tile = (v: tf.LayerVariable): tf.Tensor => {
        const t = v.read();
        return tf.tile(t.expandDims(0), [batchSize, ...t.shape.map(() => 1)]); // [B, ...]
      };
      for (let l = 0; l < this.numLevels; l++) {
        if (!this.learns(l)) continue;
        const fast: NamedTensors = {};
        for (const w of this.weightNames()) {
          const k = fastKey(l, w);
          s[k] = fast[k] = tile(this.vars[k]);
          s[accKey(k)] = tf.zerosLike(s[k]);
          if (this.hasChild(l)) {
            const ck = childKey(l, w);
            s[ck] = fast[ck] = tile(this.vars[fastKey(l + 1, w)]);
            s[accKey(ck)] = tf.zerosLike(s[ck]);
          }
        }
        const tr = this.transforms[l];
        if (tr) for (const [k, v] of Object.entries(tr.init(fast))) s[levelOptKey(l, k)] = v;
      }
      return s;
    });
  }

  /** Runs x [B, T, D] with the fast weights of `state` (constant inside the call). The returned
   * state is a copy of the input state: weights change only in applyContextUpdates (Eq. 71). */
  forward(x: tf.Tensor, state?: CmsState | null): { y: tf.Tensor; state: CmsState } {
    if (!this.built) this.build(x.shape);
    this.checkInputs(x);
    if (state) this.checkState(state, x.shape[0]);
    return tf.tidy(() => {
      const s = state ?? this.initialState(x.shape[0]);
      const y = this.run(x, state ?? null);
      const out: Record<string, tf.Tensor> = {};
      for (const [k, v] of Object.entries(s)) out[k] = state ? v.clone() : v;
      return { y, state: out } as unknown as tf.TensorContainer;
    }) as unknown as { y: tf.Tensor; state: CmsState };
  }

  // ---------------------------------------------------------------------------------------------
  // InContextLearner (core/stateful.ts)

  contextLevels(): readonly ContextLevelInfo[] {
    return this.opts.levels.map((lv, l) => ({
      id: `level${l}`,
      period: lv.period,
      learningRate: lv.learningRate,
      ...(lv.transform ? { transform: lv.transform.transform } : {}),
      variables: this.built ? this.weightNames().map((w) => (this.vars[fastKey(l, w)].read() as tf.Variable).name) : [],
    }));
  }

  contextGradientTargets(): readonly ContextGradientTarget[] {
    if (!this.built) throw new Error(`${this.where}.contextGradientTargets: build the layer first`);
    const out: ContextGradientTarget[] = [];
    for (let l = 0; l < this.numLevels; l++) {
      if (!this.learns(l)) continue;
      for (const w of this.weightNames()) {
        const k = fastKey(l, w);
        out.push({ stateKey: k, variable: this.vars[k].read() as tf.Variable });
      }
    }
    return out;
  }

  accumulateContextGradients(state: CmsState, grads: Readonly<Record<string, tf.Tensor>>): CmsState {
    return tf.tidy(() => {
      const out: Record<string, tf.Tensor> = {};
      for (const [k, v] of Object.entries(state)) {
        if (!k.startsWith('acc/')) {
          out[k] = v.clone();
          continue;
        }
        const target = k.slice(4);
        // nested: the child initial state of level l accumulates what level l+1 saw (first order).
        const m = /^L(\d+)\/child\/(\w+)$/.exec(target);
        const src = m ? fastKey(Number(m[1]) + 1, m[2]) : target;
        const g = grads[src];
        out[k] = g ? v.add(g) : v.clone();
      }
      return out;
    });
  }

  applyContextUpdates(state: CmsState, levels: ReadonlyArray<{ id: string; step: number }>): CmsState {
    const firing = new Map<number, number>();
    for (const { id, step } of levels) {
      const m = /^level(\d+)$/.exec(id);
      const l = m ? Number(m[1]) : -1;
      if (l < 0 || l >= this.numLevels) throw new Error(`${this.where}.applyContextUpdates: unknown level id '${id}'`);
      if (!this.learns(l)) throw new Error(`${this.where}.applyContextUpdates: level '${id}' has period 0 and never updates`);
      firing.set(l, step);
    }
    return tf.tidy(() => {
      const out: Record<string, tf.Tensor> = {};
      const done = new Set<string>();
      const order = [...firing.keys()].sort((a, b) => a - b);
      for (const l of order) {
        const keys = this.weightNames().map((w) => fastKey(l, w));
        if (this.hasChild(l)) keys.push(...this.weightNames().map((w) => childKey(l, w)));
        const params: NamedTensors = {};
        const grads: NamedTensors = {};
        for (const k of keys) {
          params[k] = state[k];
          grads[k] = state[accKey(k)];
        }
        const eta = this.opts.levels[l].learningRate;
        const tr = this.transforms[l];
        let updates: NamedTensors;
        if (tr) {
          const prefix = 'opt/';
          const optState: NamedTensors = {};
          for (const [k, v] of Object.entries(state)) {
            if (k.startsWith(prefix) && keys.some((p) => k.startsWith(`${prefix}${p}::`))) optState[k.slice(prefix.length)] = v;
            else if (k.startsWith(`${prefix}L${l}::`)) optState[k.slice(`${prefix}L${l}`.length)] = v; // the level's global state
          }
          const r = tr.update(grads, optState, params, firing.get(l)!);
          updates = {};
          for (const k of keys) updates[k] = r.updates[k].mul(eta); // eta(l) * transform(sum of grads)
          for (const [k, v] of Object.entries(r.state)) {
            out[levelOptKey(l, k)] = v;
            done.add(levelOptKey(l, k));
          }
        } else {
          updates = {};
          for (const k of keys) updates[k] = grads[k].mul(-eta); // Eq. 71: -eta(l) * sum over the chunk
        }
        for (const k of keys) {
          out[k] = params[k].add(updates[k]);
          out[accKey(k)] = tf.zerosLike(params[k]);
          done.add(k);
          done.add(accKey(k));
        }
      }
      // nested: after level l's update, level l+1 restarts from the (updated) child initial state.
      for (const l of order) {
        if (!this.hasChild(l)) continue;
        const fresh: NamedTensors = {};
        for (const w of this.weightNames()) {
          const k = fastKey(l + 1, w);
          out[k] = fresh[k] = out[childKey(l, w)].clone();
          out[accKey(k)] = tf.zerosLike(out[k]);
          done.add(k);
          done.add(accKey(k));
        }
        const tr = this.transforms[l + 1];
        if (tr) {
          for (const [k, v] of Object.entries(tr.init(fresh))) {
            out[levelOptKey(l + 1, k)] = v;
            done.add(levelOptKey(l + 1, k));
          }
        }
      }
      for (const [k, v] of Object.entries(state)) if (!done.has(k)) out[k] = v.clone();
      return out;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...(cmsOptionsToJson(this.opts) as tf.serialization.ConfigDict) };
  }

  // ---------------------------------------------------------------------------------------------

  private checkInputs(x: tf.Tensor): void {
    const d = this.inputDim;
    const ok = x instanceof tf.Tensor && x.rank === 3 && (d === null || x.shape[2] === d) && (x.shape[1] ?? 0) >= 1;
    if (!ok) throw new Error(`${this.where}: inputs must be [B, T >= 1, D${d !== null ? `=${d}` : ''}], got shape [${(x as tf.Tensor)?.shape}]`);
  }

  private checkState(state: CmsState, b: number): void {
    for (let l = 0; l < this.numLevels; l++) {
      if (!this.learns(l)) continue;
      for (const w of this.weightNames()) {
        const k = fastKey(l, w);
        const t = state[k];
        const want = [b, ...this.vars[k].shape];
        if (!t) throw new Error(`${this.where}: state.${k} is missing (expected [${want}])`);
        if (t.shape.join() !== want.join()) throw new Error(`${this.where}: state.${k} has shape [${t.shape}], expected [${want}]`);
      }
    }
  }

  /** Weights of block l: the fast copy [B, ...] from `state` when the level learns, else the variables. */
  private blockWeights(l: number, state: CmsState | null): BlockWeights {
    const fast = state !== null && this.learns(l);
    const get = (w: WeightName): tf.Tensor | null => {
      const k = fastKey(l, w);
      if (!this.vars[k]) return null;
      return fast ? state![k] : this.vars[k].read();
    };
    return { w1: get('w1')!, b1: get('b1'), w2: get('w2')!, b2: get('b2') };
  }

  /** One MLP block on h [B, T, D]; per-sequence weights use batched matmuls. */
  private block(h: tf.Tensor, w: BlockWeights): tf.Tensor {
    const [b, t, d] = h.shape;
    if (w.w1.rank === 2) {
      // shared weights: 2-D matmuls (the fast path on wasm)
      let z = tf.matMul(h.reshape([b * t, d]) as tf.Tensor2D, w.w1 as tf.Tensor2D); // [B*T, H]
      if (w.b1) z = z.add(w.b1);
      let o = tf.matMul(activate(z, this.opts.activation) as tf.Tensor2D, w.w2 as tf.Tensor2D); // [B*T, D]
      if (w.b2) o = o.add(w.b2);
      return o.reshape([b, t, d]);
    }
    let z = tf.matMul(h as tf.Tensor3D, w.w1 as tf.Tensor3D); // [B, T, H]
    if (w.b1) z = z.add(w.b1.expandDims(1));
    let o = tf.matMul(activate(z, this.opts.activation) as tf.Tensor3D, w.w2 as tf.Tensor3D); // [B, T, D]
    if (w.b2) o = o.add(w.b2.expandDims(1));
    return o;
  }

  private run(x: tf.Tensor, state: CmsState | null): tf.Tensor {
    const k = this.numLevels;
    if (this.opts.variant === 'independent') {
      const a = this.mix!.read(); // [k]
      let y: tf.Tensor | null = this.opts.residual ? x : null;
      for (let l = 0; l < k; l++) {
        const part = this.block(x, this.blockWeights(l, state)).mul(a.slice([l], [1])); // Eq. 74
        y = y ? y.add(part) : part;
      }
      return y!;
    }
    let h = x;
    for (let l = 0; l < k; l++) {
      const o = this.block(h, this.blockWeights(l, state));
      h = this.opts.residual ? h.add(o) : o; // Eq. 70 chain
    }
    return h;
  }
}

/** Factory mirroring tf.layers.*: `continuumMemorySystem({ levels: [{ period: 16 }, { period: 64 }] })`. */
export function continuumMemorySystem(args: CmsLayerArgs = {}): NlContinuumMemorySystem {
  return new NlContinuumMemorySystem(args);
}
