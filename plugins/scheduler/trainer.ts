/**
 * NestedTrainer: nested training across frequency levels (paper Eqs. 19-20, 71) for any NestedModel.
 *
 * One call = one piece of a context, [B, T] tokens:
 *   1. The piece is cut into segments at every level boundary (multiples of each period C(l), counted
 *      in tokens of the context since its start), at multiples of `segmentLength` (default: the
 *      fastest period) and at the end of the piece. Inside a segment every fast weight is constant.
 *   2. Per segment: forward from the carried states, per-token task loss l[b, t], ONE backward pass
 *      (tf.engine().gradients) of sum_{b,t} l for both the outer parameters and every in-context
 *      level's fast copies. Fast-copy gradients go to the levels' pending accumulators (per sequence:
 *      the sum over tokens of Eq. 71); outer gradients are accumulated for the batch.
 *   3. After the segment, the levels whose period divides the token count fire (scheduler.plan):
 *      their update is applied, so the tokens after the boundary see the new weights.
 *   4. At the end of the piece: partialChunk 'flush' applies every non-empty pending chunk now;
 *      'carry' keeps it (the next piece of the same context continues the count).
 *   5. train(): after `accumulationSteps` pieces the outer optimizer steps on the meta-parameters
 *      (mean over tokens of the outer gradients, optional global-norm clip). memorize() never does.
 *
 * Meta-gradients (gradientMode 'full', default): first order. A level's initial weights get the batch
 * sum of the gradients its fast copies saw (dW_t/dW_0 taken as I); all other parameters get their
 * ordinary gradient. 'stop': the initial weights of in-context levels are not meta-learned (writes are
 * not differentiated); the other parameters still are. States carried from one segment to the next are
 * values (truncated backpropagation at segment boundaries).
 *
 * Loss scaling: fast weights follow Eq. 71 literally (sum over the chunk's tokens of each sequence's
 * per-token loss gradient); the outer gradient is that of the mean per-token loss of the piece.
 */
import * as tf from '@tensorflow/tfjs';
import {
  createPeriodicScheduler,
  disposeState,
  levelsPending,
  segmentCuts,
  validateGradientMode,
  type GradientMode,
  type InContextLearner,
  type LevelSpec,
  type MemoryState,
  type Scheduler,
} from '../../core';
import { disposeStates, type NestedModel, type StageStates } from '../../core';
import { failAt, is, withDefault } from '../../core/validate';
import { OuterAccumulator } from './outer-step';

/** What happens to a level's partial chunk at the end of a piece (train/memorize call). 'carry': it
 * stays pending and the count continues in the next piece of the same context (boundaries stay at
 * multiples of C(l) of the whole stream). 'flush': it is applied now; later boundaries stay at
 * multiples of C(l) (the next chunk is the remainder up to the next multiple). */
export type PartialChunkPolicy = 'flush' | 'carry';
export const PARTIAL_CHUNK_POLICIES: readonly PartialChunkPolicy[] = ['flush', 'carry'];

function validatePartialChunkPolicy(v: unknown, path: string): PartialChunkPolicy {
  return withDefault(is.oneOf(PARTIAL_CHUNK_POLICIES), 'carry', 'undefined')(v, path);
}

/** Per-token task loss: output y [B, T, ...] and targets [B, T, ...] -> [B, T]. */
export type TokenLoss = (y: tf.Tensor, targets: tf.Tensor) => tf.Tensor;

export interface LevelClock {
  /** Level id '<layer name>/<level id>'. */
  id: string;
  period: number;
  /** Tokens of the current context seen so far. */
  tokensSeen: number;
  /** Updates applied in the current context (boundaries + flushes). */
  updatesFired: number;
  /** Tokens since the level's last update (its pending chunk). */
  tokensPending: number;
}

export interface ProgressEvent {
  kind: 'train' | 'memorize';
  /** Outer optimizer steps taken so far. */
  outerSteps: number;
  /** Tokens (B x T) processed by this call. */
  tokens: number;
  tokensPerSecond: number;
  /** Mean per-token loss of the call. */
  loss: number;
  /** Level updates fired during the call, by level id. */
  levelUpdatesFired: Record<string, number>;
  /** True when this call made an outer step. */
  outerStep: boolean;
}

export interface SegmentEvent {
  /** Context token range of the segment [start, end). */
  start: number;
  end: number;
  /** Level ids updated after the segment (boundaries, then flushes at the end of a piece). */
  fired: string[];
}

export interface NestedTrainerOptions {
  /** Per-token task loss (e.g. tokenCrossEntropy, tokenMeanSquaredError). */
  loss: TokenLoss;
  /** Outer optimizer on the meta-parameters (required by train()). */
  optimizer?: tf.Optimizer;
  /** Maximum segment length in tokens; default the fastest period (whole piece when nothing learns). */
  segmentLength?: number;
  /** Pieces (train calls) whose outer gradients are averaged per outer step. Default 1. */
  accumulationSteps?: number;
  /** Global-norm clip of the outer gradient (> 0); default none. */
  clipNorm?: number;
  /** Default 'full'. */
  gradientMode?: GradientMode;
  /** Default 'carry'. */
  partialChunk?: PartialChunkPolicy;
  onProgress?: (e: ProgressEvent) => void;
  /** Called after every segment (testing and debugging). */
  onSegment?: (e: SegmentEvent) => void;
  /** Divergence guard of train() (always on for non-finite values; thresholds optional). */
  divergence?: DivergenceOptions;
}

/**
 * Divergence guard: train() checks the piece's loss and, before every outer step, the global norm of the
 * outer gradient. A non-finite value, or one above the threshold, stops the step BEFORE the optimizer
 * applies it: the weights and the optimizer state stay those of the last good step, the pending outer
 * gradients are dropped and the context is closed. Then train() throws a DivergenceError (default) or,
 * with onDivergence 'skip', returns with `skipped` set and training can continue with the next batch.
 */
export interface DivergenceOptions {
  /** Mean per-token loss above this counts as exploding. Default Infinity (only non-finite). */
  maxLoss?: number;
  /** Global norm of the outer gradient (mean over pieces, before clipping) above this counts as exploding. Default Infinity. */
  maxGradNorm?: number;
  /** 'throw' (default) or 'skip' the bad batch. */
  onDivergence?: 'throw' | 'skip';
}

/** What the divergence guard found. */
export interface DivergenceInfo {
  /** The outer step that was refused (1-based: outerSteps + 1). */
  step: number;
  kind: 'non-finite loss' | 'exploding loss' | 'non-finite gradient' | 'exploding gradient';
  /** The loss of the piece, or the gradient norm. */
  value: number;
  /** Where it first appears: "layer 'block0' (stage 1) output", "gradient of 'block0/...' in layer 'block0'", ... */
  where: string;
}

export class DivergenceError extends Error {
  readonly info: DivergenceInfo;
  constructor(info: DivergenceInfo) {
    super(`training diverged at step ${info.step}: ${info.kind} (${info.value}); first at ${info.where}; the step was not applied`);
    this.name = 'DivergenceError';
    this.info = info;
  }
}

export interface RunOptions {
  /** Start a new context from the meta-learned initial memories (default true for train(), false for memorize()). */
  newContext?: boolean;
  /** Return the outputs [B, T, ...] and per-token losses [B, T] of the piece (caller disposes). */
  collect?: boolean;
  /** train() only: accumulate the outer gradients but do not step the optimizer (data-parallel replicas
   * reduce them with pendingOuterGradients and step with stepWithOuterGradients). Default false. */
  deferOuterStep?: boolean;
  /** At the end of this piece apply every level's pending partial-period update now, as partialChunk 'flush'
   * does, whatever the trainer's policy (e.g. the last piece of a text to memorize: the context ends there).
   * Default: the trainer's partialChunk policy. */
  flush?: boolean;
}

export interface RunResult {
  /** Mean per-token loss of the piece. */
  loss: number;
  outputs?: tf.Tensor;
  tokenLosses?: tf.Tensor;
  outerStep: boolean;
  /** Set when the divergence guard skipped this batch (onDivergence 'skip'): nothing was applied. */
  skipped?: DivergenceInfo;
}

/** JSON part of a trainer checkpoint. */
export interface TrainerCheckpointMeta {
  gradientMode: GradientMode;
  partialChunk: PartialChunkPolicy;
  accumulationSteps: number;
  outerSteps: number;
  pendingPieces: number;
  /** Position keys of the pending outer gradients, in accumulation order (the optimizer's slot order). */
  pendingOrder: string[];
  /** Names of the optimizer weights (tensors 'opt/<i>'). */
  optimizerWeights: string[];
  /**
   * Optimizer state that getWeights() does not carry exactly (tensors 'optx/<name>'): tf.train.adam's
   * running beta powers (its setWeights recomputes them with pow, which differs from the running float32
   * products in the last bits). Restored after setWeights, so a resumed run is bit-identical.
   */
  optimizerExact?: string[];
  /** Open context: clocks and state keys per stage (tensors 'state/<stage>/<key>'). */
  session: {
    batchSize: number;
    tokensSeen: number;
    /** Level ids when saved (informative: clocks are matched by level position, names may differ). */
    levelIds: string[];
    updatesFired: number[];
    lastUpdateAt: number[];
    stateKeys: Array<string[] | null>;
  } | null;
}

/** Live context: carried states and level clocks. */
interface Session {
  batchSize: number;
  states: StageStates;
  tokensSeen: number;
  updatesFired: Map<string, number>;
  lastUpdateAt: Map<string, number>;
}

interface LevelRef {
  spec: LevelSpec;
  stage: number;
  localId: string;
}

/** A fast copy of an in-context level's weights: a gradient target of the segment's backward pass. */
interface FastTarget {
  stage: number;
  key: string;
  variable: tf.Variable;
}

/** The working state of one train/memorize call (a piece of a context). */
interface Piece {
  kind: 'train' | 'memorize';
  train: boolean;
  collect: boolean;
  session: Session;
  /** B x T. */
  tokens: number;
  outerVars: tf.Variable[];
  outerScale: number;
  metaLearn: boolean;
  /** Context token range of the piece [start, end) and the start of the current segment. */
  start: number;
  end: number;
  segStart: number;
  /** Level updates fired during the piece, by level id. */
  fired: Record<string, number>;
  lossSum: tf.Tensor;
  /** Finiteness of every stage's output per segment (bool scalars, read only when the loss is not finite). */
  finite: Array<{ stage: number; start: number; end: number; ok: tf.Tensor }>;
  outs: tf.Tensor[];
  tokLosses: tf.Tensor[];
}

/** What one segment's forward/backward pass produced. */
interface Segment {
  fast: FastTarget[];
  grads: Array<tf.Tensor | undefined>;
  newStates: StageStates;
}

const fail: (path: string, msg: string) => never = failAt;

/** Private tf.Optimizer fields that hold state getWeights() rebuilds inexactly (AdamOptimizer, AdamaxOptimizer). */
const EXACT_OPTIMIZER_SLOTS = ['accBeta1', 'accBeta2'] as const;

function exactOptimizerSlots(opt: tf.Optimizer | undefined): Array<{ name: string; variable: tf.Variable }> {
  if (!opt) return [];
  const o = opt as unknown as Record<string, unknown>;
  return EXACT_OPTIMIZER_SLOTS.filter((n) => o[n] instanceof tf.Variable).map((name) => ({ name, variable: o[name] as tf.Variable }));
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Checks the JSON meta of a trainer checkpoint (types, ranges, no unknown keys); errors name `where`.field. */
export function validateTrainerMeta(raw: unknown, where = 'meta'): TrainerCheckpointMeta {
  if (!isObj(raw)) fail(where, `must be an object, got ${JSON.stringify(raw)}`);
  const keys = ['gradientMode', 'partialChunk', 'accumulationSteps', 'outerSteps', 'pendingPieces', 'pendingOrder', 'optimizerWeights', 'optimizerExact', 'session'];
  for (const k of Object.keys(raw)) if (!keys.includes(k)) fail(`${where}.${k}`, `unknown key (allowed: ${keys.join(', ')})`);
  validateGradientMode(raw.gradientMode, `${where}.gradientMode`);
  if (raw.partialChunk === undefined) fail(`${where}.partialChunk`, 'is required');
  validatePartialChunkPolicy(raw.partialChunk, `${where}.partialChunk`);
  if (!isCount(raw.accumulationSteps) || raw.accumulationSteps < 1) fail(`${where}.accumulationSteps`, `must be an integer >= 1, got ${JSON.stringify(raw.accumulationSteps)}`);
  for (const k of ['outerSteps', 'pendingPieces']) if (!isCount(raw[k])) fail(`${where}.${k}`, `must be an integer >= 0, got ${JSON.stringify(raw[k])}`);
  const strings = (k: string, v: unknown): void => {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) fail(`${where}.${k}`, `must be an array of strings, got ${JSON.stringify(v)?.slice(0, 60)}`);
  };
  strings('pendingOrder', raw.pendingOrder);
  strings('optimizerWeights', raw.optimizerWeights);
  if (raw.optimizerExact !== undefined) {
    strings('optimizerExact', raw.optimizerExact);
    for (const n of raw.optimizerExact as string[]) if (!(EXACT_OPTIMIZER_SLOTS as readonly string[]).includes(n)) fail(`${where}.optimizerExact`, `unknown slot '${n}'`);
  }
  const s = raw.session;
  if (s !== null) {
    const w = `${where}.session`;
    if (!isObj(s)) fail(w, `must be null or an object, got ${JSON.stringify(s)?.slice(0, 60)}`);
    const sk = ['batchSize', 'tokensSeen', 'levelIds', 'updatesFired', 'lastUpdateAt', 'stateKeys'];
    for (const k of Object.keys(s)) if (!sk.includes(k)) fail(`${w}.${k}`, `unknown key (allowed: ${sk.join(', ')})`);
    if (!isCount(s.batchSize) || s.batchSize < 1) fail(`${w}.batchSize`, `must be an integer >= 1, got ${JSON.stringify(s.batchSize)}`);
    if (!isCount(s.tokensSeen)) fail(`${w}.tokensSeen`, `must be an integer >= 0, got ${JSON.stringify(s.tokensSeen)}`);
    if (!Array.isArray(s.levelIds) || !s.levelIds.every((x) => typeof x === 'string')) fail(`${w}.levelIds`, 'must be an array of strings');
    for (const k of ['updatesFired', 'lastUpdateAt']) {
      const v = s[k];
      if (!Array.isArray(v) || v.length !== s.levelIds.length || !v.every((x) => isCount(x))) fail(`${w}.${k}`, `must be ${s.levelIds.length} integers >= 0 (one per level id)`);
    }
    if (!Array.isArray(s.stateKeys) || !s.stateKeys.every((x) => x === null || (Array.isArray(x) && x.every((y) => typeof y === 'string')))) fail(`${w}.stateKeys`, 'must be an array of (string[] | null)');
  } else if (raw.session === undefined) fail(`${where}.session`, 'is required (null when no context is open)');
  return raw as unknown as TrainerCheckpointMeta;
}

export class NestedTrainer {
  readonly model: NestedModel;
  readonly options: Readonly<Required<Pick<NestedTrainerOptions, 'accumulationSteps' | 'gradientMode' | 'partialChunk'>>> & NestedTrainerOptions;
  private scheduler: Scheduler | null = null;
  private levelRefs: LevelRef[] = [];
  private session: Session | null = null;
  /** The outer gradients of the current accumulation window, the guard, clip and optimizer step (outer-step.ts). */
  private outer = new OuterAccumulator();

  constructor(model: NestedModel, options: NestedTrainerOptions) {
    const p = 'NestedTrainer.options';
    if (typeof options !== 'object' || options === null) fail(p, 'must be an object');
    if (typeof options.loss !== 'function') fail(`${p}.loss`, 'must be a function (y, targets) -> per-token loss [B, T]');
    const count = is.int(1, 'an integer >= 1');
    const acc = withDefault(count, 1)(options.accumulationSteps, `${p}.accumulationSteps`);
    if (options.segmentLength !== undefined) count(options.segmentLength, `${p}.segmentLength`);
    if (options.clipNorm !== undefined) is.number({ above: 0 })(options.clipNorm, `${p}.clipNorm`);
    if (options.optimizer !== undefined && !(options.optimizer instanceof tf.Optimizer)) fail(`${p}.optimizer`, 'must be a tf.Optimizer');
    const dv = options.divergence;
    if (dv !== undefined) {
      if (typeof dv !== 'object' || dv === null) fail(`${p}.divergence`, 'must be an object');
      for (const k of Object.keys(dv)) if (!['maxLoss', 'maxGradNorm', 'onDivergence'].includes(k)) fail(`${p}.divergence.${k}`, 'unknown option (allowed: maxLoss, maxGradNorm, onDivergence)');
      for (const k of ['maxLoss', 'maxGradNorm'] as const) {
        const v = dv[k];
        if (v !== undefined && !(typeof v === 'number' && v > 0)) fail(`${p}.divergence.${k}`, `must be a number > 0, got ${JSON.stringify(v)}`);
      }
      if (dv.onDivergence !== undefined && dv.onDivergence !== 'throw' && dv.onDivergence !== 'skip') fail(`${p}.divergence.onDivergence`, `must be 'throw' or 'skip', got ${JSON.stringify(dv.onDivergence)}`);
    }
    this.model = model;
    this.options = {
      ...options,
      accumulationSteps: acc,
      gradientMode: validateGradientMode(options.gradientMode ?? 'full', `${p}.gradientMode`),
      partialChunk: validatePartialChunkPolicy(options.partialChunk, `${p}.partialChunk`),
    };
  }

  /** The levels of every in-context learner of the model, as data (ids '<layer>/<level>'). Needs a built model. */
  levels(): LevelSpec[] {
    this.ensureLevels();
    return this.levelRefs.map((r) => r.spec);
  }

  /** Outer optimizer steps taken so far. */
  get outerSteps(): number {
    return this.outer.steps;
  }

  /** Clocks of every level in the current context (zeros when no context is open). */
  levelClocks(): LevelClock[] {
    this.ensureLevels();
    const s = this.session;
    return this.levelRefs.map(({ spec }) => {
      const seen = s?.tokensSeen ?? 0;
      return {
        id: spec.id,
        period: spec.period,
        tokensSeen: seen,
        updatesFired: s?.updatesFired.get(spec.id) ?? 0,
        tokensPending: spec.period > 0 ? seen - (s?.lastUpdateAt.get(spec.id) ?? 0) : 0,
      };
    });
  }

  /** The carried state of stage i in the current context (read-only view; null if none). */
  memoryState(i: number): MemoryState | null {
    return this.session?.states[i] ?? null;
  }

  /** Ends the current context: the next call starts from the meta-learned initial memories. */
  resetMemory(): void {
    if (this.session) disposeStates(this.session.states);
    this.session = null;
  }

  /** Disposes the context and pending outer gradients. */
  dispose(): void {
    this.resetMemory();
    this.outer.clear();
  }

  /**
   * One piece of training: in-context updates as in memorize(), plus outer gradients; steps the outer
   * optimizer every `accumulationSteps` pieces. By default each call is a new context.
   */
  train(inputs: tf.Tensor, targets: tf.Tensor, opts: RunOptions = {}): RunResult {
    if (!this.options.optimizer) fail('NestedTrainer.options.optimizer', 'is required by train()');
    return this.run(inputs, targets, 'train', opts.newContext ?? true, opts.collect ?? false, opts.deferOuterStep ?? false, opts.flush);
  }

  /**
   * Test-time learning: the same in-context updates on new data, no outer step. Continues the current
   * context unless `newContext` (default false); the memory persists until resetMemory().
   */
  memorize(inputs: tf.Tensor, targets: tf.Tensor, opts: RunOptions = {}): RunResult {
    return this.run(inputs, targets, 'memorize', opts.newContext ?? false, opts.collect ?? false, false, opts.flush);
  }

  /** Outputs for `inputs` from the current memory (fresh if no context), without changing it. */
  predict(inputs: tf.Tensor): tf.Tensor {
    this.model.build(inputs);
    return tf.tidy(() => {
      const b = inputs.shape[0];
      const s = this.session;
      if (s && s.batchSize !== b) fail('NestedTrainer.predict: inputs', `batch size ${b} differs from the open context's ${s.batchSize}`);
      const states = s ? s.states : this.model.initialStates(b);
      return this.model.forward(inputs, states).y;
    });
  }

  /**
   * Everything needed to resume exactly (see checkpoint.ts): tensors by stable key plus JSON meta.
   * Model weights and pending outer gradients are keyed by position ('s<stage>/w<index>'), so a freshly
   * constructed model of the same architecture (other variable names) can load them. Returned tensors
   * are the live ones (do not dispose) except `owned` (dispose after writing).
   */
  async exportCheckpoint(): Promise<{ meta: TrainerCheckpointMeta; tensors: Array<{ key: string; tensor: tf.Tensor }>; owned: tf.Tensor[] }> {
    const tensors: Array<{ key: string; tensor: tf.Tensor }> = [];
    const posOf = this.positionKeys();
    this.model.stages.forEach((st, i) => st.layer.weights.forEach((lv, j) => tensors.push({ key: `var/s${i}/w${j}`, tensor: lv.read() })));
    const optWeights = this.options.optimizer ? await this.options.optimizer.getWeights() : [];
    optWeights.forEach((w, i) => tensors.push({ key: `opt/${i}`, tensor: w.tensor }));
    const exact = exactOptimizerSlots(this.options.optimizer);
    for (const x of exact) tensors.push({ key: `optx/${x.name}`, tensor: x.variable });
    const pendingOrder: string[] = [];
    for (const [name, g] of this.outer.pending) {
      const pos = posOf.get(name);
      if (!pos) throw new Error(`NestedTrainer.exportCheckpoint: pending gradient for unknown variable '${name}'`);
      pendingOrder.push(pos);
      tensors.push({ key: `outer/${pos}`, tensor: g });
    }
    const s = this.session;
    if (s) s.states.forEach((st, i) => Object.entries(st ?? {}).forEach(([k, v]) => tensors.push({ key: `state/${i}/${k}`, tensor: v })));
    const meta: TrainerCheckpointMeta = {
      gradientMode: this.options.gradientMode,
      partialChunk: this.options.partialChunk,
      accumulationSteps: this.options.accumulationSteps,
      outerSteps: this.outer.steps,
      pendingPieces: this.outer.pieces,
      pendingOrder,
      optimizerWeights: optWeights.map((w) => w.name),
      ...(exact.length ? { optimizerExact: exact.map((x) => x.name) } : {}),
      session: s
        ? {
            batchSize: s.batchSize,
            tokensSeen: s.tokensSeen,
            levelIds: this.levelRefs.map((r) => r.spec.id),
            updatesFired: this.levelRefs.map((r) => s.updatesFired.get(r.spec.id)!),
            lastUpdateAt: this.levelRefs.map((r) => s.lastUpdateAt.get(r.spec.id)!),
            stateKeys: s.states.map((st) => (st ? Object.keys(st) : null)),
          }
        : null,
    };
    // getWeights() returns a new iterations scalar first (saveIterations, in tfjs' optimizers and NlTransformOptimizer),
    // then live state: slot variables, and for NlTransformOptimizer also restored state not yet matched to a
    // variable (plain tensors it still owns). Own only the first.
    return { meta, tensors, owned: optWeights.slice(0, 1).map((w) => w.tensor).filter((t) => !(t instanceof tf.Variable)) };
  }

  /**
   * Restores what exportCheckpoint() produced (tensors by key are copied; the caller disposes them).
   * Everything is checked first (meta, the set of tensor keys, shapes, level clocks): on an error nothing
   * of the trainer has changed. `where` names the source in errors (e.g. the checkpoint.json path).
   */
  async importCheckpoint(rawMeta: TrainerCheckpointMeta, tensors: ReadonlyMap<string, tf.Tensor>, where = 'NestedTrainer.importCheckpoint'): Promise<void> {
    const meta = validateTrainerMeta(rawMeta, `${where}: meta`);
    const get = (k: string): tf.Tensor => {
      const t = tensors.get(k);
      if (!t) throw new Error(`${where}: checkpoint has no tensor '${k}'`);
      return t;
    };
    if (meta.gradientMode !== this.options.gradientMode) throw new Error(`${where}: checkpoint gradientMode '${meta.gradientMode}' differs from options.gradientMode '${this.options.gradientMode}'`);
    // validate every key and shape before writing anything (nothing half-restored on a mismatch)
    const expected = new Set<string>();
    this.model.stages.forEach((st, i) =>
      st.layer.weights.forEach((lv, j) => {
        const k = `var/s${i}/w${j}`;
        expected.add(k);
        const t = get(k);
        if (t.shape.join() !== lv.shape.join()) throw new Error(`${where}: tensor '${k}' (${lv.name}) has shape [${t.shape}], model expects [${lv.shape}]`);
        if (t.dtype !== lv.dtype) throw new Error(`${where}: tensor '${k}' (${lv.name}) has dtype ${t.dtype}, model expects ${lv.dtype}`);
      }),
    );
    if (meta.optimizerWeights.length > 0 && !this.options.optimizer) throw new Error(`${where}: checkpoint has optimizer state but options.optimizer is not set`);
    meta.optimizerWeights.forEach((_, i) => (get(`opt/${i}`), expected.add(`opt/${i}`)));
    const exactSlots = new Map(exactOptimizerSlots(this.options.optimizer).map((x) => [x.name, x.variable]));
    for (const n of meta.optimizerExact ?? []) {
      const v = exactSlots.get(n);
      if (!v) throw new Error(`${where}: meta.optimizerExact: the optimizer has no slot '${n}' (another optimizer than the checkpoint's?)`);
      const t = get(`optx/${n}`);
      if (t.shape.join() !== v.shape.join()) throw new Error(`${where}: tensor 'optx/${n}' has shape [${t.shape}], the optimizer expects [${v.shape}]`);
      expected.add(`optx/${n}`);
    }
    const posOf = this.positionKeys();
    const nameOf = new Map([...posOf].map(([name, pos]) => [pos, name]));
    const weightShape = new Map<string, number[]>();
    this.model.stages.forEach((st, i) => st.layer.weights.forEach((lv, j) => weightShape.set(`s${i}/w${j}`, lv.shape as number[])));
    for (const pos of meta.pendingOrder) {
      if (!nameOf.has(pos)) throw new Error(`${where}: meta.pendingOrder: '${pos}' is not a weight position of this model`);
      const t = get(`outer/${pos}`);
      if (t.shape.join() !== weightShape.get(pos)!.join()) throw new Error(`${where}: tensor 'outer/${pos}' has shape [${t.shape}], the weight has [${weightShape.get(pos)}]`);
      expected.add(`outer/${pos}`);
    }
    const ms = meta.session;
    if (ms) {
      this.ensureLevels();
      if (ms.updatesFired.length !== this.levelRefs.length) {
        throw new Error(`${where}: checkpoint has ${ms.updatesFired.length} level clocks (${ms.levelIds.join(', ')}), the model has ${this.levelRefs.length}`);
      }
      if (ms.stateKeys.length !== this.model.stages.length) throw new Error(`${where}: meta.session.stateKeys has ${ms.stateKeys.length} entries, the model has ${this.model.stages.length} stages`);
      ms.stateKeys.forEach((keys, i) =>
        (keys ?? []).forEach((k) => {
          const t = get(`state/${i}/${k}`);
          if (t.rank < 1 || t.shape[0] !== ms.batchSize) throw new Error(`${where}: tensor 'state/${i}/${k}' has shape [${t.shape}], expected batch size ${ms.batchSize} first`);
          expected.add(`state/${i}/${k}`);
        }),
      );
    }
    for (const k of tensors.keys()) if (!expected.has(k)) throw new Error(`${where}: checkpoint has tensor '${k}', which this model and trainer do not use`);

    this.model.stages.forEach((st, i) => st.layer.weights.forEach((lv, j) => lv.write(get(`var/s${i}/w${j}`)))); // write copies by reference count
    if (meta.optimizerWeights.length > 0) {
      await this.options.optimizer!.setWeights(meta.optimizerWeights.map((name, i) => ({ name, tensor: get(`opt/${i}`) }))); // the optimizer makes its own variables
    }
    for (const n of meta.optimizerExact ?? []) exactSlots.get(n)!.assign(get(`optx/${n}`)); // exact running state (setWeights recomputes it with pow)
    this.outer.clear();
    this.outer.pending = new Map(meta.pendingOrder.map((pos) => [nameOf.get(pos)!, get(`outer/${pos}`).clone()]));
    this.outer.pieces = meta.pendingPieces;
    this.outer.steps = meta.outerSteps;
    this.resetMemory();
    if (ms) {
      this.session = {
        batchSize: ms.batchSize,
        tokensSeen: ms.tokensSeen,
        updatesFired: new Map(this.levelRefs.map((r, i) => [r.spec.id, ms.updatesFired[i]])),
        lastUpdateAt: new Map(this.levelRefs.map((r, i) => [r.spec.id, ms.lastUpdateAt[i]])),
        states: ms.stateKeys.map((keys, i) => (keys ? Object.fromEntries(keys.map((k) => [k, get(`state/${i}/${k}`).clone()])) : null)),
      };
    }
  }

  /**
   * Data parallelism (plugins/scheduler/parallel): the outer gradients pending since the last outer step
   * (sums over the pieces, each the gradient of that piece's mean per-token loss), by position key
   * 's<stage>/w<index>' in accumulation order, and the piece count. Live tensors: do not dispose.
   */
  pendingOuterGradients(): { pieces: number; grads: Array<{ key: string; tensor: tf.Tensor }> } {
    const posOf = this.positionKeys();
    return { pieces: this.outer.pieces, grads: [...this.outer.pending].map(([name, tensor]) => ({ key: posOf.get(name)!, tensor })) };
  }

  /**
   * Replaces the pending outer gradients by `grads` (position keys as pendingOuterGradients; copied), as
   * sums over `pieces` pieces, and steps the outer optimizer as train() does (mean over pieces, clip,
   * apply). Replicas stepped with the same reduced gradients stay identical.
   */
  stepWithOuterGradients(pieces: number, grads: ReadonlyArray<{ key: string; tensor: tf.Tensor }>): void {
    const where = 'NestedTrainer.stepWithOuterGradients';
    if (!this.options.optimizer) fail('NestedTrainer.options.optimizer', 'is required by stepWithOuterGradients()');
    if (!Number.isInteger(pieces) || pieces < 1) fail(`${where}: pieces`, `must be an integer >= 1, got ${JSON.stringify(pieces)}`);
    const nameOf = new Map([...this.positionKeys()].map(([name, pos]) => [pos, name]));
    for (const g of grads) if (!nameOf.has(g.key)) fail(`${where}: grads`, `unknown position key '${g.key}'`);
    this.outer.clear();
    this.outer.pending = new Map(grads.map((g) => [nameOf.get(g.key)!, g.tensor.clone()]));
    this.outer.pieces = pieces;
    this.stepOuter();
  }

  /** Drops the pending outer gradients (data parallelism: another rank refused the piece). */
  discardOuterGradients(): void {
    this.outer.clear();
  }

  /** tf.Variable name -> 's<stage>/w<index>'. */
  private positionKeys(): Map<string, string> {
    const m = new Map<string, string>();
    this.model.stages.forEach((st, i) => st.layer.weights.forEach((lv, j) => m.set((lv.read() as tf.Variable).name, `s${i}/w${j}`)));
    return m;
  }

  // ---------------------------------------------------------------------------------------------

  private ensureLevels(): void {
    if (this.scheduler) return;
    const refs: LevelRef[] = [];
    this.model.stages.forEach((st, i) => {
      const learner = this.model.learner(i);
      if (!learner) return;
      for (const lv of learner.contextLevels()) {
        const spec: LevelSpec = {
          id: `${st.layer.name}/${lv.id}`,
          period: lv.period,
          variables: [...lv.variables],
          learningRate: lv.learningRate,
          ...(lv.transform ? { transform: lv.transform } : {}),
        };
        refs.push({ spec, stage: i, localId: lv.id });
      }
    });
    this.scheduler = createPeriodicScheduler(refs.map((r) => r.spec)); // validates ids, periods, ownership
    this.levelRefs = refs;
  }

  private openSession(batchSize: number): Session {
    this.resetMemory();
    const levels = this.levelRefs.map((r) => r.spec.id);
    this.session = {
      batchSize,
      states: this.model.initialStates(batchSize).map((s) => s),
      tokensSeen: 0,
      updatesFired: new Map(levels.map((id) => [id, 0])),
      lastUpdateAt: new Map(levels.map((id) => [id, 0])),
    };
    return this.session;
  }

  /** Segment end points (context token counts) for the piece [start, end). */
  private cuts(start: number, end: number): number[] {
    return segmentCuts(this.levelRefs.map((r) => r.spec.period), start, end, this.options.segmentLength);
  }

  /** Applies the updates of `ids` (level ids) to the session states, advancing their clocks. */
  private fire(s: Session, ids: string[], fired: Record<string, number>): void {
    const byStage = new Map<number, Array<{ id: string; step: number }>>();
    for (const id of ids) {
      const ref = this.levelRefs.find((r) => r.spec.id === id)!;
      const step = s.updatesFired.get(id)! + 1;
      s.updatesFired.set(id, step);
      s.lastUpdateAt.set(id, s.tokensSeen);
      fired[id] = (fired[id] ?? 0) + 1;
      if (!byStage.has(ref.stage)) byStage.set(ref.stage, []);
      byStage.get(ref.stage)!.push({ id: ref.localId, step });
    }
    for (const [stage, lv] of byStage) {
      const old = s.states[stage]!;
      s.states[stage] = (this.model.learner(stage) as InContextLearner).applyContextUpdates(old, lv);
      disposeState(old);
    }
  }

  /**
   * One piece (train or memorize): check the inputs and open/continue the context, then per segment
   * forward + one backward pass, outer and fast-weight gradient accumulation and the level clocks, then
   * the loss, the divergence guard and the outer step (train), the result and the progress event.
   */
  private run(inputs: tf.Tensor, targets: tf.Tensor, kind: 'train' | 'memorize', newContext: boolean, collect: boolean, deferOuterStep = false, flush?: boolean): RunResult {
    const t0 = Date.now();
    const piece = this.beginPiece(inputs, targets, kind, newContext, collect);
    for (const cut of this.cuts(piece.start, piece.end)) {
      const seg = this.forwardBackward(piece, inputs, targets, cut);
      if (piece.train) this.accumulateOuter(piece, seg);
      this.accumulateFast(piece, seg);
      this.advanceClocks(piece, cut, flush);
    }
    const { loss, skipped, outerStep } = this.endPiece(piece, deferOuterStep);
    const result = this.pieceResult(piece, loss, outerStep, skipped);
    this.reportProgress(piece, loss, outerStep, t0);
    return result;
  }

  /** Checks inputs/targets, builds the model and levels, opens or continues the context. */
  private beginPiece(inputs: tf.Tensor, targets: tf.Tensor, kind: 'train' | 'memorize', newContext: boolean, collect: boolean): Piece {
    const where = `NestedTrainer.${kind}`;
    if (!(inputs instanceof tf.Tensor) || inputs.rank < 2) fail(`${where}: inputs`, 'must be a tensor [B, T, ...]');
    if (!(targets instanceof tf.Tensor) || targets.shape[0] !== inputs.shape[0] || targets.shape[1] !== inputs.shape[1]) {
      fail(`${where}: targets`, `must be a tensor [B, T, ...] with B, T of inputs [${inputs.shape}], got [${(targets as tf.Tensor)?.shape}]`);
    }
    this.model.build(inputs);
    this.ensureLevels();
    const [b, t] = inputs.shape as number[];
    let s = this.session;
    if (newContext || !s) s = this.openSession(b);
    else if (s.batchSize !== b) fail(`${where}: inputs`, `batch size ${b} differs from the open context's ${s.batchSize} (pass newContext: true)`);
    const train = kind === 'train';
    return {
      kind,
      train,
      collect,
      session: s,
      tokens: b * t,
      outerVars: train ? this.model.trainableVariables() : [],
      outerScale: 1 / (b * t), // outer gradient of the mean per-token loss of the piece
      metaLearn: train && this.options.gradientMode === 'full',
      start: s.tokensSeen,
      end: s.tokensSeen + t,
      segStart: s.tokensSeen,
      fired: {},
      lossSum: tf.scalar(0),
      finite: [],
      outs: [],
      tokLosses: [],
    };
  }

  /**
   * The segment [piece.segStart, cut): forward from the carried states and ONE backward pass of the summed
   * per-token loss for the outer variables and every in-context level's fast copies (Eq. 71); adds the
   * segment's loss to the piece's.
   */
  private forwardBackward(p: Piece, inputs: tf.Tensor, targets: tf.Tensor, cut: number): Segment {
    const s = p.session;
    const a = p.segStart;
    const x = inputs.slice([0, a - p.start], [-1, cut - a]); // [B, Tseg, ...]
    const y = targets.slice([0, a - p.start], [-1, cut - a]);
    // Gradient targets: fast copies of every in-context level (Eq. 71).
    const fast: FastTarget[] = [];
    this.model.stages.forEach((_, i) => {
      const l = this.model.learner(i);
      if (l) for (const g of l.contextGradientTargets()) fast.push({ stage: i, key: g.stateKey, variable: g.variable });
    });
    const fastTensors = fast.map((f) => s.states[f.stage]![f.key]);
    const xs = [...p.outerVars, ...fastTensors];
    let newStates: StageStates = [];
    let segLoss: tf.Tensor;
    const probe = p.train ? (stage: number, h: tf.Tensor): void => void p.finite.push({ stage, start: a, end: cut, ok: tf.keep(tf.all(tf.isFinite(h))) }) : undefined;
    const f = (): tf.Scalar => {
      const r = this.model.forward(x, s.states, probe);
      newStates = r.states;
      for (const st of newStates) if (st) for (const v of Object.values(st)) tf.keep(v);
      const l = this.options.loss(r.y, y); // [B, Tseg]
      if (p.collect) {
        p.outs.push(tf.keep(r.y));
        p.tokLosses.push(tf.keep(l));
      }
      return l.sum() as tf.Scalar;
    };
    let grads: Array<tf.Tensor | undefined> = [];
    if (xs.length > 0) {
      const r = tf.engine().gradients(f, xs, undefined, true);
      segLoss = r.value;
      grads = r.grads;
    } else {
      segLoss = tf.tidy(f);
    }
    tf.dispose([x, y]);
    const newLoss = p.lossSum.add(segLoss);
    tf.dispose([p.lossSum, segLoss]);
    p.lossSum = newLoss;
    return { fast, grads, newStates };
  }

  /** Outer gradients (mean loss) into the accumulation window, plus first-order meta-gradients of the in-context levels. */
  private accumulateOuter(p: Piece, seg: Segment): void {
    const { fast, grads } = seg;
    tf.tidy(() => {
      const add = (name: string, g: tf.Tensor): void => this.outer.add(name, g);
      p.outerVars.forEach((v, i) => {
        if (grads[i]) add(v.name, grads[i]!.mul(p.outerScale));
      });
      if (p.metaLearn) {
        fast.forEach((fi, j) => {
          const g = grads[p.outerVars.length + j];
          if (g) add(fi.variable.name, g.sum(0).mul(p.outerScale)); // batch sum: every sequence's copy derives from W_0
        });
      }
    });
  }

  /** Fast-weight gradients -> the levels' pending accumulators (per sequence, sum over the segment's tokens); the new states become the session's. */
  private accumulateFast(p: Piece, seg: Segment): void {
    const { fast, grads, newStates } = seg;
    const byStage = new Map<number, Record<string, tf.Tensor>>();
    fast.forEach((fi, j) => {
      const g = grads[p.outerVars.length + j];
      if (!g) return;
      if (!byStage.has(fi.stage)) byStage.set(fi.stage, {});
      byStage.get(fi.stage)![fi.key] = g;
    });
    for (const [stage, g] of byStage) {
      const st = newStates[stage]!;
      newStates[stage] = (this.model.learner(stage) as InContextLearner).accumulateContextGradients(st, g);
      disposeState(st);
    }
    tf.dispose(grads.filter((g): g is tf.Tensor => !!g));
    disposeStates(p.session.states);
    p.session.states = newStates;
  }

  /** Advances the context to `cut`: fires the levels at their boundaries (scheduler.plan), flushes at the end of the piece when asked. */
  private advanceClocks(p: Piece, cut: number, flush: boolean | undefined): void {
    const s = p.session;
    s.tokensSeen = cut;
    const ids = this.scheduler!.plan(cut);
    const segFired = [...ids];
    this.fire(s, ids, p.fired);
    if (cut === p.end && (flush ?? this.options.partialChunk === 'flush')) {
      const all = this.levelRefs.map((r) => r.spec.id);
      const pending = levelsPending(this.levelRefs.map((r) => r.spec.period), all.map((id) => s.lastUpdateAt.get(id)!), s.tokensSeen).map((l) => all[l]);
      this.fire(s, pending, p.fired);
      segFired.push(...pending);
    }
    this.options.onSegment?.({ start: p.segStart, end: cut, fired: segFired });
    p.segStart = cut;
  }

  /** The piece's mean loss (one sync per call: the logging boundary); train: the divergence guard, then the outer step when the window is full. */
  private endPiece(p: Piece, deferOuterStep: boolean): { loss: number; skipped: DivergenceInfo | null; outerStep: boolean } {
    let outerStep = false;
    const loss = p.lossSum.dataSync()[0] * p.outerScale;
    p.lossSum.dispose();
    let skipped: DivergenceInfo | null = null;
    try {
      if (p.train) {
        this.outer.pieces++;
        const maxLoss = this.options.divergence?.maxLoss ?? Infinity;
        if (!Number.isFinite(loss) || loss > maxLoss) {
          skipped = this.diverged({ step: this.outer.steps + 1, kind: Number.isFinite(loss) ? 'exploding loss' : 'non-finite loss', value: loss, where: this.locateNonFinite(p.finite) });
        } else if (this.outer.pieces >= this.options.accumulationSteps && !deferOuterStep) {
          skipped = this.stepOuter();
          outerStep = skipped === null;
        }
      }
    } finally {
      tf.dispose(p.finite.map((x) => x.ok));
      if (skipped) {
        tf.dispose([...p.outs, ...p.tokLosses]);
        p.outs.length = 0;
        p.tokLosses.length = 0;
      }
    }
    return { loss, skipped, outerStep };
  }

  /** The RunResult; with `collect`, the outputs and per-token losses of the piece's segments, concatenated. */
  private pieceResult(p: Piece, loss: number, outerStep: boolean, skipped: DivergenceInfo | null): RunResult {
    const result: RunResult = { loss, outerStep, ...(skipped ? { skipped } : {}) };
    if (p.collect && p.outs.length) {
      result.outputs = tf.concat(p.outs, 1);
      result.tokenLosses = tf.concat(p.tokLosses, 1);
      tf.dispose([...p.outs, ...p.tokLosses]);
    }
    return result;
  }

  private reportProgress(p: Piece, loss: number, outerStep: boolean, t0: number): void {
    if (!this.options.onProgress) return;
    const secs = Math.max(1e-3, (Date.now() - t0) / 1000);
    this.options.onProgress({ kind: p.kind, outerSteps: this.outer.steps, tokens: p.tokens, tokensPerSecond: p.tokens / secs, loss, levelUpdatesFired: p.fired, outerStep });
  }

  /** Where a non-finite value first appears: the first (segment, stage) whose output is not finite, else the memory states. */
  private locateNonFinite(finite: ReadonlyArray<{ stage: number; start: number; end: number; ok: tf.Tensor }>): string {
    for (const f of finite) {
      if (!f.ok.dataSync()[0]) {
        const l = this.model.stages[f.stage].layer;
        return `the output of layer '${l.name}' (stage ${f.stage}, ${l.getClassName()}), context tokens [${f.start}, ${f.end})`;
      }
    }
    const s = this.session;
    if (s) {
      for (let i = 0; i < s.states.length; i++) {
        for (const [k, v] of Object.entries(s.states[i] ?? {})) {
          if (v.dtype === 'float32' && !tf.tidy(() => tf.all(tf.isFinite(v)).dataSync()[0])) return `memory '${k}' of layer '${this.model.stages[i].layer.name}' (stage ${i})`;
        }
      }
    }
    return 'the loss (every stage output and memory is finite)';
  }

  /** Parameter names by tf.Variable name: "'<weight>' in layer '<layer>' (stage i)". */
  private parameterNames(): Map<string, string> {
    const m = new Map<string, string>();
    this.model.stages.forEach((st, i) => st.layer.weights.forEach((lv) => m.set((lv.read() as tf.Variable).name, `'${lv.name}' in layer '${st.layer.name}' (stage ${i})`)));
    return m;
  }

  /** Refuses the step: drops the pending outer gradients and the context; throws or (skip) returns the info. */
  private diverged(info: DivergenceInfo): DivergenceInfo {
    this.outer.clear();
    this.resetMemory();
    if ((this.options.divergence?.onDivergence ?? 'throw') === 'skip') return info;
    throw new DivergenceError(info);
  }

  /**
   * Steps the outer optimizer on the window's mean gradient (outer-step.ts: guard, clip, apply). Returns null
   * when applied; when the divergence guard fires, refuses the step (diverged: throws, or returns the info with 'skip').
   */
  private stepOuter(): DivergenceInfo | null {
    const found = this.outer.step(this.options.optimizer!, this.options.clipNorm, this.options.divergence?.maxGradNorm ?? Infinity, () => this.parameterNames());
    return found ? this.diverged({ step: this.outer.steps + 1, ...found }) : null;
  }
}
