/**
 * Residual blocks of the hope plugin (paper Section 8, Eqs. 94-97):
 *
 *   x1 = x  + mixer(norm1(x))          (self-modifying Titans for HOPE, softmax attention, Titans LMM, DeltaNet ...)
 *   y  = x1 + ffn(norm2(x1))           (CMS chain for HOPE / HOPE-Attention, gated MLP for the baselines)
 *
 * Both parts are tfjs layers named by registered class name ({className, config}), so a third-party
 * mixer or memory registered by its plugin plugs in the same way. The block is a StatefulSequenceLayer
 * whose state is both parts' states (keys 'mixer/...' and 'ffn/...'), and an InContextLearner by
 * delegation: the levels of a part that learns in context (CMS) are exposed as '<part>/<level id>', so
 * NestedTrainer (plugin scheduler) drives the CMS levels of every block of a language model.
 */
import * as tf from '@tensorflow/tfjs';
import {
  refuseUnreportedLayerArgs,
  catalog,
  isInContextLearner,
  isStatefulSequenceLayer,
  type ContextGradientTarget,
  type ContextLevelInfo,
  type InContextLearner,
  type MemoryState,
} from '../../core';
import { NlContinuumMemorySystem } from '../cms';
import { NlLinearAttention } from '../linear-attention';
import { NlSelfModifyingTitans } from '../self-modifying-titans';
import { NlTitansMemory } from '../titans';
import { NlCausalAttention, NlGatedMlp } from './attention';
import { bool, fail, posInt, posNum, rmsNorm, type BaseLayerArgs } from './util';

/** A layer named by its registered class name and a JSON config. */
export interface LayerSpec {
  className: string;
  config?: Record<string, unknown>;
}

export interface ResidualBlockArgs extends BaseLayerArgs {
  /** Model width D; inferred from the input when omitted. */
  dModel?: number | null;
  /** Sequence mixer (first half). */
  mixer?: LayerSpec;
  /** Channel memory / MLP (second half). */
  ffn?: LayerSpec;
  /** RMS-norm epsilon. Default 1e-6. */
  normEps?: number;
  /**
   * The ffn's output already contains its input (y = h + ...), as the CMS chain's residual levels do:
   * the block then adds ffn(h) - h. Default: true for NlContinuumMemorySystem unless its config says
   * residual: false; false otherwise.
   */
  ffnIncludesInput?: boolean;
  /**
   * Window K of a short causal depthwise convolution on the mixer input, h + sum_{j<K} w_j * h_{t-j}
   * (Section 8: short convolutions of window 4); 0 = none. Kernel starts at zero (identity). Default:
   * 4 for NlHopeBlock, 0 otherwise. State: the last K-1 inputs ('conv/tail' [B, K-1, D]).
   */
  shortConv?: number;
}

/**
 * The classes hope itself requires, so blocks build without a runtime. Every other name resolves through
 * the catalogue (core/catalog.ts: the layer classes of every plugin a runtime loaded, third-party ones
 * included), then tfjs' class table (tfjs' own layers, e.g. Dense).
 */
function known(): Record<string, new (cfg: any) => tf.layers.Layer> {
  return {
    NlSelfModifyingTitans,
    NlContinuumMemorySystem,
    NlCausalAttention,
    NlGatedMlp,
    NlTitansMemory,
    NlLinearAttention,
    NlResidualBlock,
    NlHopeBlock,
    NlHopeAttentionBlock,
  };
}

/** Builds a layer from {className, config}; errors name `path`. */
export function createSubLayer(spec: unknown, path: string, name: string): tf.layers.Layer {
  if (typeof spec !== 'object' || spec === null || typeof (spec as LayerSpec).className !== 'string') {
    fail(path, `must be {className, config}, got ${JSON.stringify(spec)}`);
  }
  const { className, config } = spec as LayerSpec;
  if (config !== undefined && (typeof config !== 'object' || config === null || Array.isArray(config))) fail(`${path}.config`, 'must be an object');
  const args = { ...(config ?? {}), name };
  const cls = catalog.layerClass(className) ?? known()[className];
  if (cls) return new cls(args);
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (!entry) {
    const names = [...new Set([...Object.keys(known()), ...catalog.layerClasses().keys()])];
    fail(`${path}.className`, `unknown layer class '${className}' (known: ${names.join(', ')}; others must be provided by a plugin loaded with createRuntime)`);
  }
  const made = entry[1](entry[0] as any, args as any) as unknown;
  if (!(made instanceof tf.layers.Layer)) fail(`${path}.className`, `'${className}' is not a tfjs layer`);
  return made;
}

type Part = 'mixer' | 'ffn';
const PARTS: readonly Part[] = ['mixer', 'ffn'];

function pick(state: MemoryState | null | undefined, part: Part): MemoryState | null {
  if (!state) return null;
  const out: Record<string, tf.Tensor> = {};
  const pre = `${part}/`;
  for (const [k, v] of Object.entries(state)) if (k.startsWith(pre)) out[k.slice(pre.length)] = v;
  return out;
}

function prefixed(state: MemoryState | null, part: Part, into: Record<string, tf.Tensor>): void {
  for (const [k, v] of Object.entries(state ?? {})) into[`${part}/${k}`] = v;
}

export class NlResidualBlock extends tf.layers.Layer implements InContextLearner {
  static className = 'NlResidualBlock';
  protected readonly specs: Record<Part, LayerSpec>;
  protected readonly parts: Record<Part, tf.layers.Layer>;
  private readonly normEps: number;
  private readonly ffnIncludesInput: boolean;
  private readonly shortConv: number;
  private convKernel: tf.LayerVariable | null;
  private dModel: number | null;
  private norms: tf.LayerVariable[];

  constructor(args: ResidualBlockArgs = {}) {
    super(args);
    const p = (this.constructor as typeof NlResidualBlock).className;
    const defaults = (this.constructor as typeof NlResidualBlock).defaultParts();
    const mixer = args.mixer ?? defaults.mixer;
    const ffn = args.ffn ?? defaults.ffn;
    if (!mixer) fail(`${p}.mixer`, 'is required ({className, config})');
    if (!ffn) fail(`${p}.ffn`, 'is required ({className, config})');
    this.specs = { mixer: JSON.parse(JSON.stringify(mixer)), ffn: JSON.parse(JSON.stringify(ffn)) };
    this.parts = {
      mixer: createSubLayer(mixer, `${p}.mixer`, `${this.name}_mixer`),
      ffn: createSubLayer(ffn, `${p}.ffn`, `${this.name}_ffn`),
    };
    this.normEps = posNum(args.normEps, `${p}.normEps`, 1e-6);
    const cmsResidual = ffn.className === NlContinuumMemorySystem.className && (ffn.config?.residual ?? true) !== false;
    this.ffnIncludesInput = bool(args.ffnIncludesInput, `${p}.ffnIncludesInput`, cmsResidual);
    this.dModel = args.dModel == null ? null : posInt(args.dModel, `${p}.dModel`);
    this.norms = [];
    const sc = args.shortConv ?? (this.constructor as typeof NlResidualBlock).defaultShortConv();
    if (!Number.isInteger(sc) || sc < 0) fail(`${p}.shortConv`, `must be an integer >= 0 (0 = none), got ${JSON.stringify(args.shortConv)}`);
    this.shortConv = sc;
    this.convKernel = null;
    refuseUnreportedLayerArgs(this, args, p);
  }

  /** Short-conv window when the config gives none. */
  static defaultShortConv(): number {
    return 0;
  }

  /** Parts used when the config gives none (NlResidualBlock has none: both are required). */
  static defaultParts(): Partial<Record<Part, LayerSpec>> {
    return {};
  }

  get mixer(): tf.layers.Layer {
    return this.parts.mixer;
  }

  get ffn(): tf.layers.Layer {
    return this.parts.ffn;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const d = shape[shape.length - 1];
    const p = (this.constructor as typeof NlResidualBlock).className;
    if (shape.length !== 3 || d == null) fail(`${p}.dModel`, `input must be [B, T, D] with known D, got [${shape}]`);
    if (this.dModel !== null && this.dModel !== d) fail(`${p}.dModel`, `input width ${d} does not match dModel=${this.dModel}`);
    this.dModel = d;
    const ones = tf.initializers.ones();
    this.norms = [this.addWeight('norm1', [d], 'float32', ones, undefined, true), this.addWeight('norm2', [d], 'float32', ones, undefined, true)];
    if (this.shortConv > 0) this.convKernel = this.addWeight('convKernel', [this.shortConv, d], 'float32', tf.initializers.zeros(), undefined, true);
    for (const part of PARTS) {
      const l = this.parts[part];
      if (!l.built) {
        l.build([null, null, d] as unknown as tf.Shape);
        l.built = true;
      }
    }
    this.built = true;
  }

  // Weights: the block's norm scales, then the mixer's, then the ffn's (so tfjs' getWeights,
  // setWeights, countParams and NestedModel see every parameter of the block).
  override get trainableWeights(): tf.LayerVariable[] {
    if (!this.trainable) return [];
    return [...super.trainableWeights, ...this.parts.mixer.trainableWeights, ...this.parts.ffn.trainableWeights];
  }

  override set trainableWeights(w: tf.LayerVariable[]) {
    super.trainableWeights = w;
  }

  override get nonTrainableWeights(): tf.LayerVariable[] {
    return [...super.nonTrainableWeights, ...this.parts.mixer.nonTrainableWeights, ...this.parts.ffn.nonTrainableWeights];
  }

  override set nonTrainableWeights(w: tf.LayerVariable[]) {
    super.nonTrainableWeights = w;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
  }

  private ensureBuilt(x: tf.Tensor): void {
    if (x.rank !== 3) fail(this.name, `input must be [B, T, D], got shape [${x.shape}]`);
    if (!this.built) {
      this.build(x.shape);
      if (this._refCount === null) this._refCount = 1;
    }
  }

  private runPart(part: Part, h: tf.Tensor, state: MemoryState | null): { y: tf.Tensor; state: MemoryState | null } {
    const l = this.parts[part];
    if (isStatefulSequenceLayer(l)) return l.forward(h, state);
    return { y: l.apply(h) as tf.Tensor, state: null };
  }

  /** Causal depthwise conv h [B, T, D] -> h + sum_j w_j * h_{t-j}; writes the new tail into `out`. */
  private conv(h: tf.Tensor, tail: tf.Tensor | null, out: Record<string, tf.Tensor>): tf.Tensor {
    const k = this.shortConv;
    if (k === 0) return h;
    const [b, t, d] = h.shape as number[];
    const past = k > 1 ? (tail ?? tf.zeros([b, k - 1, d])) : null;
    const hp = past ? tf.concat([past, h], 1) : h; // [B, K-1+T, D]
    const w = this.convKernel!.read(); // [K, D]
    let y = h;
    for (let j = 0; j < k; j++) y = y.add(hp.slice([0, k - 1 - j, 0], [b, t, d]).mul(w.slice([j, 0], [1, d]).reshape([d]))); // tap j reads h_{t-j}
    if (k > 1) out['conv/tail'] = hp.slice([0, t, 0], [b, k - 1, d]); // the last K-1 inputs
    return y;
  }

  initialState(batchSize: number): MemoryState {
    if (!this.built) fail(`${this.name}.initialState`, 'build the layer first (call it once or build([B, T, D]))');
    const out: Record<string, tf.Tensor> = {};
    if (this.shortConv > 1) out['conv/tail'] = tf.zeros([batchSize, this.shortConv - 1, this.dModel as number]);
    for (const part of PARTS) {
      const l = this.parts[part];
      if (isStatefulSequenceLayer(l)) prefixed(l.initialState(batchSize), part, out);
    }
    return out;
  }

  /** x [B, T, D] from `state` (initialState when null) -> {y [B, T, D], state}; chained calls == one call. */
  forward(x: tf.Tensor, state?: MemoryState | null): { y: tf.Tensor; state: MemoryState } {
    this.ensureBuilt(x);
    return tf.tidy(() => {
      const [g1, g2] = this.norms.map((n) => n.read());
      const n1 = rmsNorm(x, g1, this.normEps); // [B, T, D]
      const out: Record<string, tf.Tensor> = {};
      const h1 = this.conv(n1, state?.['conv/tail'] ?? null, out);
      const r1 = this.runPart('mixer', h1, pick(state, 'mixer'));
      const x1 = x.add(r1.y); // Eq. 94-95: residual around the mixer
      const h2 = rmsNorm(x1, g2, this.normEps);
      const r2 = this.runPart('ffn', h2, pick(state, 'ffn'));
      const y = x1.add(this.ffnIncludesInput ? r2.y.sub(h2) : r2.y); // Eq. 96-97: residual around the CMS chain
      prefixed(r1.state, 'mixer', out);
      prefixed(r2.state, 'ffn', out);
      return { y, state: out } as unknown as tf.TensorContainer;
    }) as unknown as { y: tf.Tensor; state: MemoryState };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const r = this.forward(x, null);
      tf.dispose(Object.values(r.state));
      return r.y;
    });
  }

  // ---------------------------------------------------------------------------------------------
  // InContextLearner by delegation to the parts that learn in context.

  private learners(): Array<{ part: Part; layer: InContextLearner }> {
    const out: Array<{ part: Part; layer: InContextLearner }> = [];
    for (const part of PARTS) {
      const l = this.parts[part];
      if (isInContextLearner(l)) out.push({ part, layer: l });
    }
    return out;
  }

  contextLevels(): readonly ContextLevelInfo[] {
    return this.learners().flatMap(({ part, layer }) => layer.contextLevels().map((lv) => ({ ...lv, id: `${part}/${lv.id}` })));
  }

  contextGradientTargets(): readonly ContextGradientTarget[] {
    return this.learners().flatMap(({ part, layer }) => layer.contextGradientTargets().map((t) => ({ ...t, stateKey: `${part}/${t.stateKey}` })));
  }

  /** Returns a state whose tensors are all new: the learners' results plus clones of the rest. */
  private delegate(state: MemoryState, fn: (part: Part, layer: InContextLearner, sub: MemoryState) => MemoryState | null): MemoryState {
    return tf.tidy(() => {
      const out: Record<string, tf.Tensor> = {};
      const done = new Set<Part>();
      for (const { part, layer } of this.learners()) {
        const r = fn(part, layer, pick(state, part)!);
        if (r) {
          prefixed(r, part, out);
          done.add(part);
        }
      }
      for (const [k, v] of Object.entries(state)) if (!PARTS.some((p) => done.has(p) && k.startsWith(`${p}/`))) out[k] = v.clone(); // other parts, conv tail
      return out;
    });
  }

  accumulateContextGradients(state: MemoryState, grads: Readonly<Record<string, tf.Tensor>>): MemoryState {
    return this.delegate(state, (part, layer, sub) => {
      const g = pick(grads, part)!;
      return Object.keys(g).length ? layer.accumulateContextGradients(sub, g) : null;
    });
  }

  applyContextUpdates(state: MemoryState, levels: ReadonlyArray<{ id: string; step: number }>): MemoryState {
    const byPart = new Map<Part, Array<{ id: string; step: number }>>();
    for (const { id, step } of levels) {
      const i = id.indexOf('/');
      const part = id.slice(0, i) as Part;
      if (i < 0 || !PARTS.includes(part) || !isInContextLearner(this.parts[part])) fail(`${this.name}.applyContextUpdates`, `unknown level id '${id}'`);
      if (!byPart.has(part)) byPart.set(part, []);
      byPart.get(part)!.push({ id: id.slice(i + 1), step });
    }
    return this.delegate(state, (part, layer, sub) => (byPart.has(part) ? layer.applyContextUpdates(sub, byPart.get(part)!) : null));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      dModel: this.dModel,
      mixer: this.specs.mixer as unknown as tf.serialization.ConfigDictValue,
      ffn: this.specs.ffn as unknown as tf.serialization.ConfigDictValue,
      normEps: this.normEps,
      ffnIncludesInput: this.ffnIncludesInput,
      shortConv: this.shortConv,
    };
  }
}

/** Default HOPE CMS chain: one fast in-context level (period 16) and one frozen level. Periods are our choice (the paper fixes none). */
export const DEFAULT_HOPE_CMS: LayerSpec = {
  className: 'NlContinuumMemorySystem',
  config: { levels: [{ period: 16, learningRate: 0.01 }, { period: 0 }], variant: 'sequential', expansion: 2 },
};

/** HOPE block (Eqs. 94-97): self-modifying Titans -> CMS chain, each pre-normed with a residual. */
export class NlHopeBlock extends NlResidualBlock {
  static override className = 'NlHopeBlock';
  static override defaultShortConv(): number {
    return 4;
  }
  static override defaultParts(): Partial<Record<Part, LayerSpec>> {
    return { mixer: { className: 'NlSelfModifyingTitans', config: { numHeads: 4, chunkSize: 16, memChunkSize: 16 } }, ffn: DEFAULT_HOPE_CMS };
  }
}

/** HOPE-Attention block: causal softmax attention (RoPE) -> CMS chain. */
export class NlHopeAttentionBlock extends NlResidualBlock {
  static override className = 'NlHopeAttentionBlock';
  static override defaultParts(): Partial<Record<Part, LayerSpec>> {
    return { mixer: { className: 'NlCausalAttention', config: { numHeads: 4 } }, ffn: DEFAULT_HOPE_CMS };
  }
}
