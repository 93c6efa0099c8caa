/**
 * NlTitansMemory: the Titans long-term memory (LMM) as a causal multi-head mixer [B, T, D] -> [B, T, D]
 * (Titans arXiv 2501.00663 Eqs. 9-18; Nested Learning paper-notes sections 4-5). See README.md.
 *
 *   q, k, v = x Wq, x Wk, x Wv                [B, T, H d]   -> + conv4 (residual, causal, depthwise)
 *           -> SiLU -> split heads [B H, T, d] -> L2-normalise q, k
 *   theta = thetaMax sigmoid(x Wth + b)       [B H, T]  step size in (0, thetaMax)
 *   eta   = sigmoid(x Weta + b)               [B H, T]  momentum decay in (0, 1) (kept as log eta)
 *   alpha = sigmoid(x Walpha + b)             [B H, T]  forgetting in (0, 1) (kept as log(1 - alpha))
 *   memory recurrence per head and sequence (ops/naive.ts == ops/chunked.ts): o_t = M_t(q_t)
 *   y = (RMSNorm_head(o) * gamma) * sigmoid(x Wg), then y Wo
 * Levels: the outer optimizer trains the projections and the memory's initial weights (meta-learned
 * across contexts); the inner level writes the memory once per token (chunk-parallel).
 */
import * as tf from '@tensorflow/tfjs';
import { refuseUnreportedLayerArgs } from '../../core';
import { getInnerLoss } from '../../core/inner-loss';
import { sliceView } from '../../core/ops/tensor-util';
import { headDimOf, resolveTitansConfig, type ResolvedTitansConfig, type TitansMemoryArgs } from './config';
import { chunkedTitans } from './ops/chunked';
import { MEMORY_KEYS, memoryMatrixShapes } from './ops/memory';
import { naiveTitans } from './ops/naive';
import type { TitansRecurrenceOptions } from './ops/types';
import { checkTitansState, chunkStartKey, CLOCK_KEY, CONV_KEYS, CONV_WINDOW, type TitansMemoryState, type TitansStateDims } from './state';

/** eps of the q/k L2 norm (x / sqrt(|x|^2 + eps)) and of the output RMS norm. */
export const TITANS_NORM_EPS = 1e-6;

/** log eta without momentum: exp of it (and of any in-chunk sum of it) is exactly 0 in float32, while the
 * diagonal of the chunked decay matrix stays exp(0) = 1, so both recurrences run unchanged with S_t = -theta_t g_t. */
export const NO_MOMENTUM_LOG_ETA = -1e4;

/** Resolved, size-complete options of the functional form. */
export interface TitansOptions extends ResolvedTitansConfig {
  dModel: number;
  headDim: number;
  hidden: number;
}

/** Parameters as plain tensors (so tf.grads can differentiate w.r.t. each). Optional ones follow the config. */
export interface TitansWeights {
  qKernel: tf.Tensor; // [D, H d]
  kKernel: tf.Tensor; // [D, H d]
  vKernel: tf.Tensor; // [D, H d]
  convQKernel?: tf.Tensor; // [4, H d]   (conv)
  convKKernel?: tf.Tensor; // [4, H d]
  convVKernel?: tf.Tensor; // [4, H d]
  thetaKernel: tf.Tensor; // [D, H]
  thetaBias: tf.Tensor; // [H]
  etaKernel?: tf.Tensor; // [D, H]  (momentum)
  etaBias?: tf.Tensor; // [H]
  alphaKernel: tf.Tensor; // [D, H]
  alphaBias: tf.Tensor; // [H]
  memW?: tf.Tensor; // [H, d, d]    initial memory, 'linear'
  memW1?: tf.Tensor; // [H, d, dh]  initial memory, 'mlp'
  memW2?: tf.Tensor; // [H, dh, d]
  outNormScale?: tf.Tensor; // [H d]  (outputNorm)
  gateKernel?: tf.Tensor; // [D, H d] (outputGate)
  outKernel?: tf.Tensor; // [H d, D] (outputProjection)
}
export type TitansWeightName = keyof TitansWeights;

/** Variable names of the meta-learned initial memory weights, by state key. */
const INIT_WEIGHT_OF: Record<string, TitansWeightName> = { W: 'memW', W1: 'memW1', W2: 'memW2' };

function stateDims(o: TitansOptions, batch: number): TitansStateDims {
  return { batch, numHeads: o.numHeads, headDim: o.headDim, hidden: o.hidden, memory: o.memory, conv: o.conv };
}

/** Initial state for `batch` sequences: meta-learned memory weights (copied per sequence), zero momenta and conv history. */
export function titansInitialState(o: TitansOptions, w: TitansWeights, batch: number): TitansMemoryState {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`NlTitansMemory.initialState: batchSize must be a positive integer, got ${JSON.stringify(batch)}`);
  return tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {};
    const keys = MEMORY_KEYS[o.memory];
    keys.weights.forEach((k, i) => {
      const init = w[INIT_WEIGHT_OF[k]];
      if (!init) throw new Error(`titansInitialState: weights.${INIT_WEIGHT_OF[k]} is required for memory '${o.memory}'`);
      out[k] = tf.tile(init.expandDims(0), [batch, 1, 1, 1]); // [B, H, out, in]
      out[keys.momenta[i]] = tf.zeros(out[k].shape);
      out[chunkStartKey(k)] = out[k].clone(); // chunk-start snapshot (position 0: equals the weights)
    });
    out[CLOCK_KEY] = tf.zeros([batch, 0]); // position 0 in the chunk
    if (o.conv) for (const k of CONV_KEYS) out[k] = tf.zeros([batch, CONV_WINDOW - 1, o.numHeads * o.headDim]);
    return out;
  });
}

/** Residual causal depthwise conv of window 4: y_t = x_t + sum_{j<4} w_j * x_{t-j}, with `past` the 3 inputs before x.
 * Written with concat/slice/multiply-add (the wasm backend has no conv filter gradient). */
function causalConv(x: tf.Tensor3D, past: tf.Tensor3D, kernel: tf.Tensor): { y: tf.Tensor3D; past: tf.Tensor3D } {
  const [b, t, f] = x.shape;
  const xp = tf.concat([past, x], 1); // [B, T + 3, F]
  let y: tf.Tensor = x;
  for (let j = 0; j < CONV_WINDOW; j++) {
    // sliceView: C++ StridedSlice (wasm's Slice copies the whole [B, T + 3, F] input into JS per call)
    const shifted = b === 1 ? xp.slice([0, CONV_WINDOW - 1 - j, 0], [b, t, f]) : sliceView(xp, [0, CONV_WINDOW - 1 - j, 0], [b, t, f]); // x_{t-j}
    y = y.add(shifted.mul(kernel.slice([j, 0], [1, f]))); // [B, T, F] * [1, F]
  }
  return { y: y as tf.Tensor3D, past: (b === 1 ? xp.slice([0, t, 0], [b, CONV_WINDOW - 1, f]) : sliceView(xp, [0, t, 0], [b, CONV_WINDOW - 1, f])) as tf.Tensor3D };
}

function l2Normalize(a: tf.Tensor3D): tf.Tensor3D {
  return a.mul(tf.rsqrt(a.square().sum(-1, true).add(TITANS_NORM_EPS))) as tf.Tensor3D;
}

/**
 * The layer's computation as a pure function: x [B, T, D] from `state` (null = titansInitialState)
 * -> {y [B, T, D], state, read [B H, T, d]} (read = the memory outputs o_t, for the sentinel).
 * Runs in tf.tidy; every result is a new tensor owned by the caller.
 */
export function titansForward(
  o: TitansOptions,
  w: TitansWeights,
  x: tf.Tensor,
  state: TitansMemoryState | null,
): { y: tf.Tensor3D; state: TitansMemoryState; read: tf.Tensor3D } {
  return tf.tidy(() => {
    const [b, t, dModel] = x.shape as [number, number, number];
    const h = o.numHeads;
    const d = o.headDim;
    const f = h * d;
    const n = b * h;
    const st = state ?? titansInitialState(o, w, b);
    const x2 = x.reshape([b * t, dModel]) as tf.Tensor2D; // [B T, D]
    const newState: Record<string, tf.Tensor> = {};
    const qkv = (kernel: tf.Tensor, convKernel: tf.Tensor | undefined, convKey: string): tf.Tensor3D => {
      let a = tf.matMul(x2, kernel as tf.Tensor2D).reshape([b, t, f]) as tf.Tensor3D; // [B, T, H d]
      if (o.conv) {
        if (!convKernel) throw new Error(`titansForward: conv is on but the ${convKey} kernel is missing`);
        const r = causalConv(a, st[convKey] as tf.Tensor3D, convKernel);
        a = r.y;
        newState[convKey] = r.past;
      }
      if (o.qkvActivation === 'silu') a = a.mul(tf.sigmoid(a)) as tf.Tensor3D;
      return a.reshape([b, t, h, d]).transpose([0, 2, 1, 3]).reshape([n, t, d]) as tf.Tensor3D; // [B H, T, d]
    };
    let q = qkv(w.qKernel, w.convQKernel, 'convQ');
    let k = qkv(w.kKernel, w.convKKernel, 'convK');
    const v = qkv(w.vKernel, w.convVKernel, 'convV');
    if (o.qkNorm === 'l2') {
      q = l2Normalize(q);
      k = l2Normalize(k);
    }
    const gate = (kernel: tf.Tensor, bias: tf.Tensor): tf.Tensor2D =>
      tf.matMul(x2, kernel as tf.Tensor2D).add(bias).reshape([b, t, h]).transpose([0, 2, 1]).reshape([n, t]) as tf.Tensor2D; // [B H, T]
    const theta = tf.sigmoid(gate(w.thetaKernel, w.thetaBias)).mul(o.thetaMax) as tf.Tensor2D; // (0, thetaMax)
    let logEta: tf.Tensor2D;
    if (o.momentum) {
      if (!w.etaKernel || !w.etaBias) throw new Error('titansForward: momentum is on but etaKernel/etaBias is missing');
      logEta = tf.softplus(gate(w.etaKernel, w.etaBias).neg()).neg() as tf.Tensor2D; // log sigmoid(z) <= 0
    } else {
      logEta = tf.fill([n, t], NO_MOMENTUM_LOG_ETA) as tf.Tensor2D; // eta = exp(-1e4) = 0 exactly (float32)
    }
    const logKeep = tf.softplus(gate(w.alphaKernel, w.alphaBias)).neg() as tf.Tensor2D; // log(1 - sigmoid(z)) <= 0
    const keys = MEMORY_KEYS[o.memory];
    const shapes = memoryMatrixShapes(o.memory, d, o.hidden);
    const flat = (key: string, i: number): tf.Tensor3D => st[key].reshape([n, ...shapes[i]]) as tf.Tensor3D; // [B H, out, in]
    const ropts: TitansRecurrenceOptions = {
      kind: o.memory,
      activation: o.activation,
      loss: getInnerLoss(o.innerLoss, 'NlTitansMemory.innerLoss'),
      chunkSize: o.chunkSize,
      innerGradClip: o.innerGradClip,
      stepNorm: o.stepNorm,
      gradientMode: o.gradientMode,
      checkpoint: o.checkpoint,
    };
    const position = st[CLOCK_KEY].shape[1] as number; // tokens of the current chunk already seen
    if (position >= o.chunkSize) {
      throw new Error(`NlTitansMemory.state.${CLOCK_KEY}: position ${position} in the chunk must be < chunkSize=${o.chunkSize} (state from another config?)`);
    }
    const rec = (o.impl === 'naive' ? naiveTitans : chunkedTitans)(
      {
        q, k, v, theta, logEta, logKeep,
        weights: keys.weights.map(flat),
        momenta: keys.momenta.map(flat),
        position,
        chunkStart: position > 0 ? keys.weights.map((key, i) => flat(chunkStartKey(key), i)) : undefined,
      },
      ropts,
    );
    keys.weights.forEach((key, i) => (newState[key] = rec.weights[i].reshape([b, h, ...shapes[i]])));
    keys.momenta.forEach((key, i) => (newState[key] = rec.momenta[i].reshape([b, h, ...shapes[i]])));
    keys.weights.forEach((key, i) => (newState[chunkStartKey(key)] = rec.chunkStart[i].reshape([b, h, ...shapes[i]])));
    newState[CLOCK_KEY] = tf.zeros([b, rec.position]);

    let y: tf.Tensor = rec.y.reshape([b, h, t, d]).transpose([0, 2, 1, 3]); // [B, T, H, d]
    if (o.outputNorm) {
      if (!w.outNormScale) throw new Error('titansForward: outputNorm is on but outNormScale is missing');
      y = y.mul(tf.rsqrt(y.square().mean(-1, true).add(TITANS_NORM_EPS))); // RMS norm per head
      y = y.reshape([b * t, f]).mul(w.outNormScale);
    }
    y = y.reshape([b * t, f]);
    if (o.outputGate) {
      if (!w.gateKernel) throw new Error('titansForward: outputGate is on but gateKernel is missing');
      y = y.mul(tf.sigmoid(tf.matMul(x2, w.gateKernel as tf.Tensor2D)));
    }
    if (o.outputProjection) {
      if (!w.outKernel) throw new Error('titansForward: outputProjection is on but outKernel is missing');
      y = tf.matMul(y as tf.Tensor2D, w.outKernel as tf.Tensor2D);
    }
    return { y: y.reshape([b, t, dModel]) as tf.Tensor3D, state: newState, read: rec.y };
  });
}

/**
 * The NaN/Inf sentinel (syncs with the device): throws an error naming the layer, the memory entries
 * that are not finite and the first token (index within this call) whose memory read is not finite.
 */
export function assertTitansFinite(layerName: string, read: tf.Tensor3D, state: TitansMemoryState, mode: string): void {
  const [n, t] = read.shape;
  const badTokens = tf.tidy(() => tf.logicalNot(tf.isFinite(read)).any(2).any(0).dataSync()); // [T]
  // the clock carries only its width (the in-chunk position), no values
  const badKeys = Object.keys(state).filter((k) => k !== CLOCK_KEY && tf.tidy(() => tf.logicalNot(tf.isFinite(state[k])).any().dataSync()[0]));
  const first = badTokens.findIndex((v) => v !== 0);
  if (first < 0 && badKeys.length === 0) return;
  const memories = badKeys.length ? badKeys.join(', ') : 'none (reads only)';
  throw new Error(
    `NlTitansMemory '${layerName}': memory is not finite (NaN/Inf): state entries [${memories}], first non-finite read at token index ` +
      `${first < 0 ? 'none' : first} of this call (T=${t}, ${n} sequence-heads, gradientMode '${mode}')`,
  );
}

export class NlTitansMemory extends tf.layers.Layer {
  static className = 'NlTitansMemory';

  // No field initialisers: tfjs-layers' constructor flow relies on fields set in the constructor.
  private readonly cfg: ResolvedTitansConfig;
  private dModelResolved: number | null;
  private vars: Partial<Record<TitansWeightName, tf.LayerVariable>>;

  constructor(args: TitansMemoryArgs = {}) {
    super(args);
    this.cfg = resolveTitansConfig(args);
    this.dModelResolved = this.cfg.dModel;
    this.vars = {};
    refuseUnreportedLayerArgs(this, args, 'NlTitansMemory');
  }

  /** Options of the functional form (needs dModel: given or built). */
  options(): TitansOptions {
    const dModel = this.dModelResolved;
    if (dModel === null) throw new Error('NlTitansMemory.dModel: unknown until the layer is built (give dModel)');
    const headDim = headDimOf(dModel, this.cfg.numHeads);
    return { ...this.cfg, dModel, headDim, hidden: this.cfg.expansion * headDim };
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    if (shape.length !== 3) throw new Error(`NlTitansMemory: input must be [B, T, D], got shape [${shape}]`);
    const dm = shape[2];
    if (dm == null) throw new Error('NlTitansMemory.dModel: the input last dimension must be known at build time');
    if (this.dModelResolved !== null && this.dModelResolved !== dm) {
      throw new Error(`NlTitansMemory.dModel: input last dimension ${dm} does not match dModel=${this.dModelResolved}`);
    }
    this.dModelResolved = dm;
    const o = this.options();
    const f = o.numHeads * o.headDim;
    const h = o.numHeads;
    const ki = (tf.initializers as unknown as Record<string, (a: object) => ReturnType<typeof tf.initializers.zeros>>)[o.kernelInitializer]({});
    const add = (name: TitansWeightName, shp: number[], init: ReturnType<typeof tf.initializers.zeros>): void => {
      this.vars[name] = this.addWeight(name, shp, 'float32', init, undefined, true);
    };
    const constant = (value: number) => tf.initializers.constant({ value });
    add('qKernel', [dm, f], ki);
    add('kKernel', [dm, f], ki);
    add('vKernel', [dm, f], ki);
    if (o.conv) {
      const ci = tf.initializers.randomNormal({ mean: 0, stddev: 0.1 });
      add('convQKernel', [CONV_WINDOW, f], ci);
      add('convKKernel', [CONV_WINDOW, f], ci);
      add('convVKernel', [CONV_WINDOW, f], ci);
    }
    add('thetaKernel', [dm, h], ki);
    add('thetaBias', [h], constant(o.thetaBiasInit));
    if (o.momentum) {
      add('etaKernel', [dm, h], ki);
      add('etaBias', [h], constant(o.etaBiasInit));
    }
    add('alphaKernel', [dm, h], ki);
    add('alphaBias', [h], constant(o.alphaBiasInit));
    const shapes = memoryMatrixShapes(o.memory, o.headDim, o.hidden);
    MEMORY_KEYS[o.memory].weights.forEach((key, i) => {
      const std = o.memoryInitScale / Math.sqrt(shapes[i][1]);
      const zero = i === 0 && o.memoryOutputInit === 'zeros'; // W (linear) or W1 (mlp): the output matrix
      add(INIT_WEIGHT_OF[key], [h, ...shapes[i]], zero ? tf.initializers.zeros() : tf.initializers.randomNormal({ mean: 0, stddev: std }));
    });
    if (o.outputNorm) add('outNormScale', [f], tf.initializers.ones());
    if (o.outputGate) add('gateKernel', [dm, f], ki);
    if (o.outputProjection) add('outKernel', [f, dm], ki);
    else if (f !== dm) throw new Error(`NlTitansMemory.outputProjection: off needs numHeads * headDim = dModel, got ${f} vs ${dm}`);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
  }

  /** Current parameter values (the variables' tensors; do not dispose them). */
  currentWeights(): TitansWeights {
    if (!this.built) throw new Error('NlTitansMemory.currentWeights: the layer is not built yet');
    const out: Partial<Record<TitansWeightName, tf.Tensor>> = {};
    for (const [name, v] of Object.entries(this.vars)) out[name as TitansWeightName] = (v as tf.LayerVariable).read();
    return out as unknown as TitansWeights;
  }

  private ensureBuilt(x: tf.Tensor): void {
    if (x.rank !== 3) throw new Error(`NlTitansMemory: input must be [B, T, D], got shape [${x.shape}]`);
    if ((x.shape[1] as number) < 1) throw new Error(`NlTitansMemory: input sequence length must be >= 1, got shape [${x.shape}]`);
    if (this.dModelResolved !== null && x.shape[2] !== this.dModelResolved) {
      throw new Error(`NlTitansMemory.dModel: input last dimension ${x.shape[2]} does not match dModel=${this.dModelResolved}`);
    }
    if (!this.built) {
      this.build(x.shape);
      if (this._refCount === null) this._refCount = 1; // as Layer.apply does on first eager use
    }
  }

  /** Initial state for `batchSize` sequences (meta-learned memory, zero momentum); caller-owned. */
  initialState(batchSize: number): TitansMemoryState {
    if (!this.built) throw new Error('NlTitansMemory.initialState: build the layer first (call it once or build([B, T, D]))');
    return titansInitialState(this.options(), this.currentWeights(), batchSize);
  }

  /**
   * Runs x [B, T, D] from `state` (null: initialState, differentiable w.r.t. the initial memory
   * variables) -> {y [B, T, D], state}; new tensors owned by the caller, `state` is not disposed.
   * Chunks are counted along the stream (the state carries the chunk-start weights and the position),
   * so split calls at any points and token-by-token streaming equal one call.
   */
  forward(x: tf.Tensor, state?: TitansMemoryState | null, check?: boolean): { y: tf.Tensor3D; state: TitansMemoryState } {
    this.ensureBuilt(x);
    const o = this.options();
    if (state != null) checkTitansState(state, stateDims(o, x.shape[0]));
    const r = titansForward(o, this.currentWeights(), x, state ?? null);
    const doCheck = this.cfg.checkFinite === 'always' || (this.cfg.checkFinite === 'auto' && check === true);
    try {
      if (doCheck) assertTitansFinite(this.name, r.read, r.state, o.gradientMode);
    } catch (e) {
      tf.dispose([r.y, r.read, ...Object.values(r.state)]); // nothing half-written
      throw e;
    }
    r.read.dispose();
    return { y: r.y, state: r.state };
  }

  /** Streaming for generation: x_t [B, 1, D] (or a segment) with the carried state; runs the NaN sentinel unless checkFinite = 'never'. */
  step(x: tf.Tensor, state: TitansMemoryState): { y: tf.Tensor3D; state: TitansMemoryState } {
    if (state == null) throw new Error('NlTitansMemory.step: state is required (use initialState(batchSize))');
    return this.forward(x, state, true);
  }

  /** y [B, T, D] from the initial state (the tf.layers path: apply / predict / fit). */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      this.ensureBuilt(x);
      const r = titansForward(this.options(), this.currentWeights(), x, null);
      if (this.cfg.checkFinite === 'always') assertTitansFinite(this.name, r.read, r.state, this.cfg.gradientMode);
      return r.y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { dModel: _d, ...rest } = this.cfg;
    return { ...super.getConfig(), dModel: this.dModelResolved, ...rest };
  }
}

/** Factory mirroring tf.layers.*: `titansMemory({numHeads: 4, memory: 'mlp'})`. */
export function titansMemory(args: TitansMemoryArgs = {}): NlTitansMemory {
  return new NlTitansMemory(args);
}
