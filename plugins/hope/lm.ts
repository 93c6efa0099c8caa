/**
 * Language-model assembly: token embedding -> N residual blocks -> final RMS norm -> tied or untied
 * head, as a NestedModel (plugin scheduler) so NestedTrainer carries every block's memory state across
 * segments and drives the CMS levels in context, plus a generation loop that carries the same states
 * token by token (O(1) per token for recurrent blocks, O(context) for attention's KV cache).
 */
import * as tf from '@tensorflow/tfjs';
import { refuseUnreportedLayerArgs, NestedModel, disposeStates, seededRandom, withSeededRandom, type StageStates } from '../../core';
import { createSubLayer, type LayerSpec } from './block';
import { bool, fail, posInt, posNum, rmsNorm, type BaseLayerArgs } from './util';

export interface TokenEmbeddingArgs extends BaseLayerArgs {
  vocabSize: number;
  dModel: number;
  /** Std of the normal initialisation. Default 0.02. */
  initStd?: number;
}

/** ids [B, T] (int) -> vectors [B, T, D] (a gather; its gradient is a segment sum, which wasm runs with the project's kernels). */
export class NlTokenEmbedding extends tf.layers.Layer {
  static className = 'NlTokenEmbedding';
  readonly vocabSize: number;
  readonly dModel: number;
  private readonly initStd: number;
  private table: tf.LayerVariable | null;

  constructor(args: TokenEmbeddingArgs) {
    super(args);
    const p = NlTokenEmbedding.className;
    this.vocabSize = posInt(args?.vocabSize, `${p}.vocabSize`);
    this.dModel = posInt(args?.dModel, `${p}.dModel`);
    this.initStd = posNum(args?.initStd, `${p}.initStd`, 0.02);
    this.table = null;
    refuseUnreportedLayerArgs(this, args, p);
  }

  override build(): void {
    this.table = this.addWeight('embeddings', [this.vocabSize, this.dModel], 'float32', tf.initializers.randomNormal({ mean: 0, stddev: this.initStd }), undefined, true);
    this.built = true;
  }

  /** The [V, D] table (a tied head reads it). */
  embeddings(): tf.Tensor {
    if (!this.table) fail(`${this.name}.embeddings`, 'build the layer first');
    return this.table.read();
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [...s, this.dModel];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const ids = Array.isArray(inputs) ? inputs[0] : inputs; // [B, T]
      if (ids.rank !== 2) fail(this.name, `token ids must be [B, T], got shape [${ids.shape}]`);
      if (!this.built) this.build();
      return tf.gather(this.embeddings(), ids.toInt()); // [B, T, D]
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), vocabSize: this.vocabSize, dModel: this.dModel, initStd: this.initStd };
  }
}

export interface LmHeadArgs extends BaseLayerArgs {
  vocabSize: number;
  dModel: number;
  /** Logits from the embedding table (tieTo() must be called) instead of an own [D, V] matrix. Default true. */
  tied?: boolean;
  normEps?: number;
}

/** Final RMS norm + output projection: [B, T, D] -> logits [B, T, V]. */
export class NlLmHead extends tf.layers.Layer {
  static className = 'NlLmHead';
  readonly vocabSize: number;
  readonly dModel: number;
  readonly tied: boolean;
  private readonly normEps: number;
  private scale: tf.LayerVariable | null;
  private kernel: tf.LayerVariable | null;
  private embedding: NlTokenEmbedding | null;

  constructor(args: LmHeadArgs) {
    super(args);
    const p = NlLmHead.className;
    this.vocabSize = posInt(args?.vocabSize, `${p}.vocabSize`);
    this.dModel = posInt(args?.dModel, `${p}.dModel`);
    this.tied = bool(args?.tied, `${p}.tied`, true);
    this.normEps = posNum(args?.normEps, `${p}.normEps`, 1e-6);
    this.scale = null;
    this.kernel = null;
    this.embedding = null;
    refuseUnreportedLayerArgs(this, args, p);
  }

  /** Shares the embedding table (tied head): logits = h E^T. */
  tieTo(embedding: NlTokenEmbedding): void {
    if (!this.tied) fail(`${NlLmHead.className}.tied`, 'is false: the head has its own matrix');
    if (embedding.vocabSize !== this.vocabSize || embedding.dModel !== this.dModel) fail(`${NlLmHead.className}.tieTo`, 'embedding sizes differ from the head');
    this.embedding = embedding;
  }

  /**
   * A tied head in a tfjs graph (tf.model / tf.sequential, or a model.json loaded with
   * tf.loadLayersModel) finds its embedding by walking the graph back from its input: the nearest
   * NlTokenEmbedding of the same sizes. So a saved language model predicts after a plain load.
   */
  override apply(inputs: tf.Tensor | tf.Tensor[] | tf.SymbolicTensor | tf.SymbolicTensor[], kwargs?: tf.serialization.ConfigDict): tf.Tensor | tf.Tensor[] | tf.SymbolicTensor | tf.SymbolicTensor[] {
    if (this.tied && !this.embedding) {
      const found = findEmbeddingUpstream(inputs, this.vocabSize, this.dModel);
      if (found) this.embedding = found;
    }
    return super.apply(inputs, kwargs);
  }

  override build(): void {
    this.scale = this.addWeight('norm', [this.dModel], 'float32', tf.initializers.ones(), undefined, true);
    if (!this.tied) this.kernel = this.addWeight('kernel', [this.dModel, this.vocabSize], 'float32', tf.initializers.glorotUniform({}), undefined, true);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [...s.slice(0, -1), this.vocabSize];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs; // [B, T, D]
      if (!this.built) this.build();
      const [b, t, d] = x.shape as number[];
      const h = rmsNorm(x, this.scale!.read(), this.normEps).reshape([b * t, d]);
      let logits: tf.Tensor;
      if (this.tied) {
        if (!this.embedding) fail(`${this.name}`, 'tied head without an embedding: call tieTo(embedding)');
        logits = tf.matMul(h, this.embedding.embeddings() as tf.Tensor2D, false, true); // [B*T, V]
      } else {
        logits = tf.matMul(h, this.kernel!.read() as tf.Tensor2D);
      }
      return logits.reshape([b, t, this.vocabSize]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), vocabSize: this.vocabSize, dModel: this.dModel, tied: this.tied, normEps: this.normEps };
  }
}

/** The nearest NlTokenEmbedding upstream of symbolic `inputs` (breadth first), or null (eager tensors). */
function findEmbeddingUpstream(inputs: unknown, vocabSize: number, dModel: number): NlTokenEmbedding | null {
  const queue: unknown[] = Array.isArray(inputs) ? [...inputs] : [inputs];
  const seen = new Set<unknown>();
  while (queue.length > 0) {
    const t = queue.shift() as { sourceLayer?: tf.layers.Layer } | undefined;
    const layer = t?.sourceLayer;
    if (!layer || seen.has(layer)) continue;
    seen.add(layer);
    if (layer instanceof NlTokenEmbedding && layer.vocabSize === vocabSize && layer.dModel === dModel) return layer;
    for (const node of (layer as unknown as { inboundNodes?: { inputTensors: unknown[] }[] }).inboundNodes ?? []) queue.push(...node.inputTensors);
  }
  return null;
}

/** Format tag of a LanguageModel saved as a tfjs LayersModel (model.json userDefinedMetadata). */
export const LANGUAGE_MODEL_FORMAT = 'nested-learning/language-model';
export const LANGUAGE_MODEL_FORMAT_VERSION = 1;

/** What LanguageModel.save writes into model.json's userDefinedMetadata.nestedLearning. */
export interface LanguageModelMetadata {
  format: typeof LANGUAGE_MODEL_FORMAT;
  version: number;
  config: LanguageModelConfig;
  /** Anything the caller adds (the run library stores the tokenizer here). */
  extra?: Record<string, unknown>;
}

/** A language model as data: everything JSON. */
export interface LanguageModelConfig {
  vocabSize: number;
  dModel: number;
  /** The blocks, in order, each a registered block class and its config (e.g. NlHopeBlock). */
  blocks: LayerSpec[];
  /** Tied input/output embeddings. Default true. */
  tieEmbeddings?: boolean;
  normEps?: number;
  embeddingInitStd?: number;
}

export interface GenerateOptions {
  /** New tokens to produce. */
  tokens: number;
  /** Softmax temperature; 0 = greedy. Default 1. */
  temperature?: number;
  /** Sample among the k most likely tokens; 0 = all. Default 0. */
  topK?: number;
  /** Seed of the sampler (deterministic sampling). Default 1. */
  seed?: number;
  /** Called with each new token id as soon as it is chosen (streaming). */
  onToken?: (id: number) => void;
}

export { seededRandom } from '../../core';

export interface LanguageModelOptions {
  /**
   * Seed of the weight initialisation: every initialiser of every layer (built in the constructor)
   * draws from seededRandom(seed) through a scoped Math.random swap (see random.ts), so two models
   * of the same config and seed have identical weights. Absent = Math.random (not reproducible).
   */
  seed?: number;
}

export class LanguageModel {
  readonly config: Readonly<LanguageModelConfig>;
  readonly embedding: NlTokenEmbedding;
  readonly blocks: readonly tf.layers.Layer[];
  readonly head: NlLmHead;
  /** What NestedTrainer runs: [embedding, block_0, ..., block_{N-1}, head]. */
  readonly nested: NestedModel;

  constructor(config: LanguageModelConfig, options: LanguageModelOptions = {}) {
    const p = 'LanguageModel';
    if (options.seed !== undefined && (!Number.isInteger(options.seed) || options.seed < 0)) fail(`${p}: options.seed`, `must be an integer >= 0, got ${options.seed}`);
    if (typeof config !== 'object' || config === null) fail(p, 'config must be an object');
    const vocabSize = posInt(config.vocabSize, `${p}.vocabSize`);
    const dModel = posInt(config.dModel, `${p}.dModel`);
    if (!Array.isArray(config.blocks) || config.blocks.length === 0) fail(`${p}.blocks`, 'must be a non-empty array of {className, config}');
    const tied = bool(config.tieEmbeddings, `${p}.tieEmbeddings`, true);
    this.config = JSON.parse(JSON.stringify(config));
    // Layer construction and build (where every initialiser draws) in one seeded scope when a seed is given.
    const assemble = (): { embedding: NlTokenEmbedding; blocks: tf.layers.Layer[]; head: NlLmHead; nested: NestedModel } => {
      const embedding = new NlTokenEmbedding({ vocabSize, dModel, initStd: config.embeddingInitStd, name: 'embedding' });
      const blocks = config.blocks.map((b, i) => createSubLayer(b, `${p}.blocks[${i}]`, `block${i}`));
      const head = new NlLmHead({ vocabSize, dModel, tied, normEps: config.normEps, name: 'head' });
      if (tied) head.tieTo(embedding);
      const nested = new NestedModel([embedding, ...blocks, head]);
      const probe = tf.zeros([1, 1], 'int32'); // builds every layer's weights
      try {
        nested.build(probe);
      } finally {
        probe.dispose();
      }
      return { embedding, blocks, head, nested };
    };
    const parts = options.seed === undefined ? assemble() : withSeededRandom(options.seed, assemble);
    this.embedding = parts.embedding;
    this.blocks = parts.blocks;
    this.head = parts.head;
    this.nested = parts.nested;
  }

  /** Number of parameters (tied embeddings counted once). */
  countParams(): number {
    return this.nested.trainableVariables().reduce((a, v) => a + v.size, 0);
  }

  initialStates(batchSize: number): StageStates {
    return this.nested.initialStates(batchSize);
  }

  /** ids [B, T] from `states` (not disposed) -> logits [B, T, V] and new states (caller owns both). */
  forward(ids: tf.Tensor, states: StageStates | null): { logits: tf.Tensor; states: StageStates } {
    return tf.tidy(() => {
      const s = states ?? this.initialStates(ids.shape[0]);
      const r = this.nested.forward(ids, s);
      return { logits: r.y, states: r.states } as unknown as tf.TensorContainer;
    }) as unknown as { logits: tf.Tensor; states: StageStates };
  }

  /** Parallel forward from fresh states: ids [B, T] -> logits [B, T, V]. */
  logits(ids: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const r = this.forward(ids, null);
      disposeStates(r.states);
      return r.logits;
    });
  }

  /**
   * Streams `opts.tokens` new ids after `prompt` (one sequence): the prompt runs in one parallel
   * call, then each new token is one call of length 1 with the carried states (one sync per token to
   * pick it: that is the output). `states` (optional) continues a context, e.g. after memorize; it is
   * not disposed. Returns the new ids.
   */
  async generate(prompt: readonly number[], opts: GenerateOptions, states: StageStates | null = null): Promise<number[]> {
    const p = 'LanguageModel.generate';
    if (prompt.length === 0) fail(`${p}: prompt`, 'must hold at least one token');
    const n = posInt(opts.tokens, `${p}: tokens`);
    const temperature = opts.temperature ?? 1;
    if (!(temperature >= 0) || !Number.isFinite(temperature)) fail(`${p}: temperature`, `must be a finite number >= 0, got ${temperature}`);
    const topK = opts.topK ?? 0;
    if (!Number.isInteger(topK) || topK < 0) fail(`${p}: topK`, `must be an integer >= 0, got ${topK}`);
    for (const id of prompt) if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) fail(`${p}: prompt`, `token ${id} outside [0, ${this.config.vocabSize})`);
    const rand = seededRandom(opts.seed ?? 1);
    const out: number[] = [];
    let st: StageStates = states ?? this.initialStates(1);
    let owned = states === null;
    let input = tf.tensor2d([prompt as number[]], [1, prompt.length], 'int32');
    try {
      for (let i = 0; i < n; i++) {
        const r = this.forward(input, st);
        input.dispose();
        if (owned) disposeStates(st);
        st = r.states;
        owned = true;
        const last = tf.tidy(() => r.logits.slice([0, (r.logits.shape[1] as number) - 1, 0], [1, 1, -1]).reshape([-1])); // [V]
        r.logits.dispose();
        const id = await this.sample(last, temperature, topK, rand);
        last.dispose();
        out.push(id);
        opts.onToken?.(id);
        input = tf.tensor2d([[id]], [1, 1], 'int32');
      }
    } finally {
      input.dispose();
      if (owned) disposeStates(st);
    }
    return out;
  }

  private async sample(logits: tf.Tensor, temperature: number, topK: number, rand: () => number): Promise<number> {
    if (temperature === 0) {
      const a = tf.argMax(logits);
      const id = (await a.data())[0];
      a.dispose();
      return id;
    }
    const k = topK > 0 ? Math.min(topK, logits.size) : logits.size;
    const { values, indices } = tf.tidy(() => tf.topk(logits.div(temperature), k)); // the scaled logits are freed here
    const [v, ix] = await Promise.all([values.data(), indices.data()]);
    tf.dispose([values, indices]);
    const m = Math.max(...v);
    const w = Array.from(v, (x) => Math.exp(x - m));
    let u = rand() * w.reduce((a, b) => a + b, 0);
    for (let i = 0; i < w.length; i++) {
      u -= w[i];
      if (u <= 0) return ix[i];
    }
    return ix[w.length - 1];
  }

  /**
   * The same layers (and weights) as a tfjs LayersModel: ids [B, T] (int32, any T) -> logits [B, T, V],
   * a parallel forward from fresh states (what logits() computes). The model shares the weights: do
   * not dispose it while this LanguageModel is in use.
   */
  toLayersModel(): tf.LayersModel {
    const ids = tf.input({ shape: [null], dtype: 'int32', name: 'ids' });
    let h = this.embedding.apply(ids) as tf.SymbolicTensor;
    for (const b of this.blocks) h = b.apply(h) as tf.SymbolicTensor;
    const logits = this.head.apply(h) as tf.SymbolicTensor;
    return tf.model({ inputs: ids, outputs: logits, name: 'language_model' });
  }

  /**
   * Saves as a tfjs LayersModel (model.json + weights): tf.loadLayersModel reads it (with the plugins
   * imported) and LanguageModel.load rebuilds this class from it. `handlerOrUrl`: any tfjs IO handler or
   * URL ('file://dir' after importing nested-learning/node, 'indexeddb://name', 'downloads://name', ...).
   */
  async save(handlerOrUrl: string | tf.io.IOHandler, extra?: Record<string, unknown>): Promise<tf.io.SaveResult> {
    const model = this.toLayersModel();
    const meta: LanguageModelMetadata = { format: LANGUAGE_MODEL_FORMAT, version: LANGUAGE_MODEL_FORMAT_VERSION, config: JSON.parse(JSON.stringify(this.config)) };
    if (extra !== undefined) meta.extra = JSON.parse(JSON.stringify(extra));
    let handler: tf.io.IOHandler;
    if (typeof handlerOrUrl === 'string') {
      const hs = tf.io.getSaveHandlers(handlerOrUrl);
      if (hs.length === 0) {
        fail('LanguageModel.save', `no IO handler for '${handlerOrUrl}'` + (handlerOrUrl.startsWith('file://') ? "; in Node, import 'nested-learning/node' (it registers file://)" : ''));
      }
      handler = hs[0];
    } else {
      handler = handlerOrUrl;
    }
    if (typeof handler.save !== 'function') fail('LanguageModel.save', 'the IO handler cannot save');
    const modelTopology = model.toJSON(null, false) as tf.io.ModelArtifacts['modelTopology'];
    // Weight names as a freshly loaded copy of this topology calls them (tf.loadLayersModel matches by
    // name; layers built outside a name scope here, e.g. a block's sub-layers, lack the block prefix).
    const fresh = await tf.models.modelFromJSON({ modelTopology } as unknown as tf.io.ModelJSON);
    const named: tf.NamedTensorMap = {};
    try {
      fresh.layers.forEach((fl, i) => {
        const ours = model.layers[i];
        if (fl.weights.length !== ours.weights.length) fail('LanguageModel.save', `layer '${ours.name}' rebuilds with ${fl.weights.length} weights, not ${ours.weights.length}`);
        fl.weights.forEach((fw, j) => {
          if (fw.originalName in named) fail('LanguageModel.save', `two weights would be named '${fw.originalName}'`);
          named[fw.originalName] = ours.weights[j].read();
        });
      });
    } finally {
      fresh.dispose();
    }
    const { data, specs } = await tf.io.encodeWeights(named);
    return handler.save({
      modelTopology,
      format: 'layers-model',
      generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
      convertedBy: null,
      weightSpecs: specs,
      weightData: data,
      userDefinedMetadata: { nestedLearning: meta as unknown as {} },
    });
  }

  /**
   * Loads a model written by save() (or by the run library's exportRun): a LanguageModel with the saved
   * weights, and the metadata (config and what the saver added, e.g. the tokenizer).
   */
  static async load(handlerOrUrl: string | tf.io.IOHandler): Promise<LanguageModel & { metadata: LanguageModelMetadata }> {
    const where = typeof handlerOrUrl === 'string' ? handlerOrUrl : 'LanguageModel.load';
    const loaded = await tf.loadLayersModel(handlerOrUrl);
    try {
      const meta = (loaded.getUserDefinedMetadata() as { nestedLearning?: LanguageModelMetadata } | undefined)?.nestedLearning;
      if (!meta || meta.format !== LANGUAGE_MODEL_FORMAT) {
        fail(where, `not a nested-learning language model (model.json userDefinedMetadata.nestedLearning.format is not '${LANGUAGE_MODEL_FORMAT}')`);
      }
      if (meta.version !== LANGUAGE_MODEL_FORMAT_VERSION) fail(`${where}: version`, `${meta.version} is not supported (this library reads ${LANGUAGE_MODEL_FORMAT_VERSION})`);
      const lm = new LanguageModel(meta.config) as LanguageModel & { metadata: LanguageModelMetadata };
      try {
        for (const layer of [lm.embedding, ...lm.blocks, lm.head]) {
          const src = loaded.getLayer(layer.name);
          const ws = src.getWeights();
          if (ws.length !== layer.weights.length) fail(`${where}: layer '${layer.name}'`, `has ${ws.length} weights, the config builds ${layer.weights.length}`);
          layer.setWeights(ws);
        }
      } catch (e) {
        lm.dispose();
        throw e;
      }
      lm.metadata = meta;
      return lm;
    } finally {
      loaded.dispose();
    }
  }

  dispose(): void {
    for (const l of [this.embedding, ...this.blocks, this.head]) if (l.built) for (const w of l.weights) w.dispose();
  }
}
