/**
 * NlAssociativeMemory: a sequence layer [B, T, D] -> [B, T, D] around a MatrixMemory (paper Eq. 6 as
 * a 2-level system, Eqs. 14-18): the outer level trains the projections W_q, W_k, W_v, W_o; the inner
 * level writes M_t with the chosen rule at every token and reads with q_t after writing token t:
 *
 *   k_t = x_t W_k, v_t = x_t W_v, q_t = x_t W_q   (k, q optionally L2-normalised)
 *   M_t = (1 - alpha) M_{t-1} - eta * dL~(M k_t; v_t)/dM     (one GD step, rule set by `objective`)
 *   y_t = (M_t q_t) W_o
 *
 * Token-by-token loop (exact for every rule); the chunked linear family lives in plugin linear-attention.
 * Streaming: stream(x, state) carries M [B, dv, dk] across calls; call() starts from the initial memory.
 */
import * as tf from '@tensorflow/tfjs';
import { refuseUnreportedLayerArgs, BUILTIN_INNER_LOSSES, splitAxis0, stackAxis0, stopGradient, type InnerLoss, type StatefulSequenceLayer } from '../../core';
import { resolveAssociativeMemoryOptions, type AssociativeMemoryOptions, type ResolvedAssociativeMemoryOptions } from './config';
import { matrixMemoryReadOne, matrixMemoryWrite } from './matrix-memory';
import { assertMatrixMemoryState, type MatrixMemoryState } from './state';
import { checkShape, l2Normalize } from './util';

/** tfjs' own layer arguments (name, inputShape, trainable, ...); not re-exported by @tensorflow/tfjs. */
export type TfLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
export type AssociativeMemoryLayerArgs = TfLayerArgs & AssociativeMemoryOptions;

export interface AssociativeMemoryStreamResult {
  /** [B, T, D] */
  output: tf.Tensor3D;
  /** Memory after the last token; owned by the caller (dispose it, or pass it to the next call). */
  state: MatrixMemoryState;
}

export class NlAssociativeMemory extends tf.layers.Layer implements StatefulSequenceLayer<MatrixMemoryState> {
  static className = 'NlAssociativeMemory';

  // Declarations only (useDefineForClassFields is false): the tfjs constructor path sets these.
  private readonly opts: ResolvedAssociativeMemoryOptions;
  private readonly innerLoss: InnerLoss;
  private inputDim: number | null;
  private dk: number | null;
  private dv: number | null;
  private wq: tf.LayerVariable | null;
  private wk: tf.LayerVariable | null;
  private wv: tf.LayerVariable | null;
  private wo: tf.LayerVariable | null;
  private bq: tf.LayerVariable | null;
  private bk: tf.LayerVariable | null;
  private bv: tf.LayerVariable | null;
  private bo: tf.LayerVariable | null;
  private memoryInit: tf.LayerVariable | null;

  constructor(args: AssociativeMemoryLayerArgs = {}) {
    super(args);
    this.opts = resolveAssociativeMemoryOptions(args ?? {});
    this.innerLoss = BUILTIN_INNER_LOSSES[this.opts.objective];
    this.inputDim = this.dk = this.dv = null;
    this.wq = this.wk = this.wv = this.wo = null;
    this.bq = this.bk = this.bv = this.bo = null;
    this.memoryInit = null;
    refuseUnreportedLayerArgs(this, args, 'NlAssociativeMemory');
  }

  /** Error-message prefix: class and layer name. */
  private get where(): string {
    return `NlAssociativeMemory '${this.name}'`;
  }

  /** Resolved options (dims stay null until build when they default to the input width). */
  get options(): Readonly<ResolvedAssociativeMemoryOptions> {
    return this.opts;
  }

  /** Shape of one sequence's memory, [dv, dk]; needs the layer built. */
  get memoryShape(): [number, number] {
    if (this.dk === null || this.dv === null) throw new Error(`${this.where}: memoryShape is known after build (call the layer once or build([B, T, D]))`);
    return [this.dv, this.dk];
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    if (shape.length !== 3) throw new Error(`${this.where}: inputs must be [B, T, D], got shape [${shape}]`);
    const d = shape[2];
    if (typeof d !== 'number' || d <= 0) throw new Error(`${this.where}: the feature size D (last input axis) must be known, got [${shape}]`);
    const dk = this.opts.keyDim ?? d;
    const dv = this.opts.valueDim ?? d;
    this.inputDim = d;
    this.dk = dk;
    this.dv = dv;
    const glorot = () => tf.initializers.glorotUniform({});
    const zeros = () => tf.initializers.zeros();
    this.wq = this.addWeight('query_kernel', [d, dk], 'float32', glorot());
    this.wk = this.addWeight('key_kernel', [d, dk], 'float32', glorot());
    this.wv = this.addWeight('value_kernel', [d, dv], 'float32', glorot());
    this.wo = this.addWeight('output_kernel', [dv, d], 'float32', glorot());
    if (this.opts.useBias) {
      this.bq = this.addWeight('query_bias', [dk], 'float32', zeros());
      this.bk = this.addWeight('key_bias', [dk], 'float32', zeros());
      this.bv = this.addWeight('value_bias', [dv], 'float32', zeros());
      this.bo = this.addWeight('output_bias', [d], 'float32', zeros());
    }
    if (this.opts.initialMemory === 'learned') {
      // Meta-learned initial state M_0 [dv, dk], shared by all sequences (random: cosine needs M k != 0).
      this.memoryInit = this.addWeight('memory_init', [dv, dk], 'float32', glorot());
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    this.checkInputs(x);
    return tf.tidy(() => this.run(x, null).output);
  }

  /**
   * Runs T tokens from `state` (null/undefined: the initial memory) and returns the output and the
   * memory after the last token. Splitting a sequence across calls gives the same result as one call.
   * `state` is not disposed here.
   */
  stream(inputs: tf.Tensor, state?: MatrixMemoryState | null): AssociativeMemoryStreamResult {
    if (!this.built) this.build(inputs.shape);
    this.checkInputs(inputs);
    if (state) assertMatrixMemoryState(state, inputs.shape[0], this.dv!, this.dk!, `${this.where}.stream: state`);
    return tf.tidy(() => {
      const r = this.run(inputs, state ? state.memory : null);
      return { output: r.output, state: { memory: r.memory } } as unknown as tf.TensorContainer;
    }) as unknown as AssociativeMemoryStreamResult;
  }

  /** StatefulSequenceLayer form of stream(): the same computation, named {y, state}. */
  forward(inputs: tf.Tensor, state?: MatrixMemoryState | null): { y: tf.Tensor3D; state: MatrixMemoryState } {
    const r = this.stream(inputs, state);
    return { y: r.output, state: r.state };
  }

  /** Memory at the start of a sequence, [B, dv, dk]: zeros or the learned M_0. Needs the layer built. */
  initialState(batchSize: number): MatrixMemoryState {
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`${this.where}.initialState: batchSize must be a positive integer, got ${JSON.stringify(batchSize)}`);
    const [dv, dk] = this.memoryShape;
    return tf.tidy(() => ({ memory: this.initialMemory(batchSize, dv, dk) }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    const o = this.opts;
    return {
      ...super.getConfig(),
      keyDim: o.keyDim,
      valueDim: o.valueDim,
      objective: o.objective,
      eta: o.eta,
      decay: o.decay,
      normalizeKeys: o.normalizeKeys,
      useBias: o.useBias,
      initialMemory: o.initialMemory,
      gradientMode: o.gradientMode,
    };
  }

  private checkInputs(x: tf.Tensor): void {
    const d = this.inputDim ?? -1;
    checkShape(x, [-1, -1, d], `${this.where}: inputs`, `[B, T, D${d > 0 ? `=${d}` : ''}]`);
    if ((x.shape as number[])[1] < 1) throw new Error(`${this.where}: inputs must hold at least one token (T >= 1), got shape [${x.shape}]`);
  }

  private initialMemory(b: number, dv: number, dk: number): tf.Tensor3D {
    if (this.memoryInit) return tf.broadcastTo(this.memoryInit.read().expandDims(0), [b, dv, dk]) as tf.Tensor3D;
    return tf.zeros([b, dv, dk]) as tf.Tensor3D;
  }

  /** Projection x [B*T, D] -> [B, T, n]. */
  private project(x2: tf.Tensor, w: tf.LayerVariable, bias: tf.LayerVariable | null, b: number, t: number): tf.Tensor3D {
    let y = tf.matMul(x2 as tf.Tensor2D, w.read() as tf.Tensor2D); // 2-D matmul: stays on the fast path
    if (bias) y = y.add(bias.read());
    return y.reshape([b, t, -1]) as tf.Tensor3D;
  }

  /** The recurrence; runs inside the caller's tidy. x [B, T, D], memory0 [B, dv, dk] | null. */
  private run(x: tf.Tensor, memory0: tf.Tensor | null): { output: tf.Tensor3D; memory: tf.Tensor3D } {
    const [b, t, d] = x.shape;
    const [dv, dk] = this.memoryShape;
    const x2 = x.reshape([b * t, d]); // [B*T, D]
    let q: tf.Tensor = this.project(x2, this.wq!, this.bq, b, t); // [B, T, dk]
    let k: tf.Tensor = this.project(x2, this.wk!, this.bk, b, t); // [B, T, dk]
    let v: tf.Tensor = this.project(x2, this.wv!, this.bv, b, t); // [B, T, dv]
    if (this.opts.normalizeKeys) {
      q = l2Normalize(q);
      k = l2Normalize(k);
    }
    const stop = this.opts.gradientMode === 'stop';
    if (stop) {
      // 'stop': what is written carries no outer gradient (reads of q and of M_0's decayed part still do).
      k = stopGradient(k);
      v = stopGradient(v);
    }
    // splitAxis0 over the time-major layout: O(size log T) on wasm, and its gradient works for T = 1
    // (tf.unstack's does not in tfjs 4.22).
    const qs = splitAxis0(q.transpose([1, 0, 2])); // T x [B, dk]
    const ks = splitAxis0(k.transpose([1, 0, 2]));
    const vs = splitAxis0(v.transpose([1, 0, 2]));
    let m: tf.Tensor = memory0 ?? this.initialMemory(b, dv, dk); // [B, dv, dk]
    const ys: tf.Tensor[] = [];
    for (let i = 0; i < t; i++) {
      // Write token i (Eq. 6 one GD step), then read with q_i.
      m = matrixMemoryWrite(m, ks[i], vs[i], this.innerLoss, this.opts.eta, this.opts.decay, stop ? stopGradient(m) : m);
      ys.push(matrixMemoryReadOne(m, qs[i])); // [B, dv]
    }
    const y = stackAxis0(ys).transpose([1, 0, 2]).reshape([b * t, dv]); // [B*T, dv]
    let out = tf.matMul(y as tf.Tensor2D, this.wo!.read() as tf.Tensor2D); // [B*T, D]
    if (this.bo) out = out.add(this.bo.read());
    return { output: out.reshape([b, t, d]) as tf.Tensor3D, memory: m as tf.Tensor3D };
  }
}

/** Factory mirroring tf.layers.*: `associativeMemory({ objective: 'l2', eta: 0.5 })`. */
export function associativeMemory(args: AssociativeMemoryLayerArgs = {}): NlAssociativeMemory {
  return new NlAssociativeMemory(args);
}
