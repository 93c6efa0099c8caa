/**
 * NlCausalAttention: multi-head causal softmax attention with rotary position embeddings (RoPE), the
 * mixer of the Transformer++ baseline and of HOPE-Attention (paper Section 8: "softmax attention, then
 * CMS"). As a StatefulSequenceLayer its state is the key/value cache of the context so far, so chained
 * calls (segments, or one token at a time at generation) equal one call on the whole sequence.
 * Unlike the recurrent mixers, the cache grows with the context (per-token cost O(context)).
 */
import * as tf from '@tensorflow/tfjs';
import type { MemoryState, StatefulSequenceLayer } from '../../core';
import { refuseUnreportedLayerArgs } from '../../core';
import { bool, dense3, fail, posInt, posNum, type BaseLayerArgs, type Init } from './util';

export interface CausalAttentionArgs extends BaseLayerArgs {
  /** Model width D; inferred from the input when omitted. */
  dModel?: number | null;
  /** Heads H (must divide D; D / H must be even with RoPE). Default 4. */
  numHeads?: number;
  /** Rotary position embeddings on q and k. Default true. */
  rope?: boolean;
  /** RoPE base. Default 10000. */
  ropeBase?: number;
}

/** {k, v}: cached keys and values [B, H, Tcache, dh] (Tcache = tokens of the context so far). */
export type AttentionState = MemoryState & { k: tf.Tensor; v: tf.Tensor };

type WName = 'wq' | 'wk' | 'wv' | 'wo';

/** cos/sin tables for absolute positions start..start+T-1: [T, dh/2] each (host-built constants). */
function ropeTables(start: number, t: number, dh: number, base: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = dh / 2;
  const c = new Float32Array(t * half);
  const s = new Float32Array(t * half);
  for (let p = 0; p < t; p++) {
    for (let i = 0; i < half; i++) {
      const ang = (start + p) * Math.pow(base, (-2 * i) / dh);
      c[p * half + i] = Math.cos(ang);
      s[p * half + i] = Math.sin(ang);
    }
  }
  return { cos: tf.tensor2d(c, [t, half]), sin: tf.tensor2d(s, [t, half]) };
}

/** Rotates pairs (x_i, x_{i+dh/2}) by position angles: x [B, H, T, dh] -> same. */
export function applyRope(x: tf.Tensor, start: number, base: number): tf.Tensor {
  return tf.tidy(() => {
    const [, , t, dh] = x.shape;
    const { cos, sin } = ropeTables(start, t, dh, base); // [T, dh/2]
    const [x1, x2] = tf.split(x, 2, -1); // [B, H, T, dh/2] each
    return tf.concat([x1.mul(cos).sub(x2.mul(sin)), x1.mul(sin).add(x2.mul(cos))], -1);
  });
}

export class NlCausalAttention extends tf.layers.Layer implements StatefulSequenceLayer<AttentionState> {
  static className = 'NlCausalAttention';
  private readonly numHeads: number;
  private readonly rope: boolean;
  private readonly ropeBase: number;
  private dModel: number | null;
  private w: Partial<Record<WName, tf.LayerVariable>>;

  constructor(args: CausalAttentionArgs = {}) {
    super(args);
    const p = NlCausalAttention.className;
    this.numHeads = posInt(args.numHeads, `${p}.numHeads`, 4);
    this.rope = bool(args.rope, `${p}.rope`, true);
    this.ropeBase = posNum(args.ropeBase, `${p}.ropeBase`, 10000);
    this.dModel = args.dModel == null ? null : posInt(args.dModel, `${p}.dModel`);
    this.w = {};
    refuseUnreportedLayerArgs(this, args, p);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const p = NlCausalAttention.className;
    const d = shape[shape.length - 1];
    if (shape.length !== 3 || d == null) fail(`${p}.dModel`, `input must be [B, T, D] with known D, got [${shape}]`);
    if (this.dModel !== null && this.dModel !== d) fail(`${p}.dModel`, `input width ${d} does not match dModel=${this.dModel}`);
    if (d % this.numHeads !== 0) fail(`${p}.numHeads`, `must divide dModel=${d}, got ${this.numHeads}`);
    if (this.rope && (d / this.numHeads) % 2 !== 0) fail(`${p}.numHeads`, `head width dModel/numHeads=${d / this.numHeads} must be even with rope`);
    this.dModel = d;
    const init: Init = tf.initializers.glorotUniform({});
    for (const n of ['wq', 'wk', 'wv', 'wo'] as WName[]) this.w[n] = this.addWeight(n, [d, d], 'float32', init, undefined, true);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
  }

  private ensureBuilt(x: tf.Tensor): void {
    if (x.rank !== 3) fail(NlCausalAttention.className, `input must be [B, T, D], got shape [${x.shape}]`);
    if (!this.built) this.build(x.shape);
  }

  /** Empty cache: k, v [B, H, 0, dh]. */
  initialState(batchSize: number): AttentionState {
    if (!this.built || this.dModel === null) fail(`${this.name}.initialState`, 'build the layer first');
    const dh = this.dModel / this.numHeads;
    return { k: tf.zeros([batchSize, this.numHeads, 0, dh]), v: tf.zeros([batchSize, this.numHeads, 0, dh]) };
  }

  forward(x: tf.Tensor, state?: AttentionState | null): { y: tf.Tensor; state: AttentionState } {
    this.ensureBuilt(x);
    return tf.tidy(() => {
      const [b, t, d] = x.shape as number[];
      const h = this.numHeads;
      const dh = d / h;
      const s = state ?? this.initialState(b);
      if (s.k.rank !== 4 || s.k.shape[0] !== b || s.k.shape[1] !== h || s.k.shape[3] !== dh) {
        fail(`${this.name}.state.k`, `shape [${s.k.shape}] does not match [${b}, ${h}, T, ${dh}]`);
      }
      const past = s.k.shape[2] as number; // tokens already in the cache (absolute position offset)
      const heads = (z: tf.Tensor): tf.Tensor => z.reshape([b, t, h, dh]).transpose([0, 2, 1, 3]); // [B, H, T, dh]
      let q = heads(dense3(x, this.w.wq!.read()));
      let k = heads(dense3(x, this.w.wk!.read()));
      const v = heads(dense3(x, this.w.wv!.read()));
      if (this.rope) {
        q = applyRope(q, past, this.ropeBase);
        k = applyRope(k, past, this.ropeBase);
      }
      const kAll = past > 0 ? tf.concat([s.k, k], 2) : k; // [B, H, past+T, dh]
      const vAll = past > 0 ? tf.concat([s.v, v], 2) : v;
      const scores = tf.matMul(q, kAll, false, true).mul(1 / Math.sqrt(dh)); // [B, H, T, past+T]
      // causal mask: query i (absolute past+i) sees keys j <= past+i
      const mask = tf.tidy(() => {
        const qi = tf.range(past, past + t, 1, 'int32').reshape([t, 1]);
        const kj = tf.range(0, past + t, 1, 'int32').reshape([1, past + t]);
        return tf.where(tf.lessEqual(kj, qi), tf.zeros([t, past + t]), tf.fill([t, past + t], -1e9)); // [T, past+T]
      });
      const att = tf.softmax(scores.add(mask), -1);
      const o = tf.matMul(att, vAll).transpose([0, 2, 1, 3]).reshape([b, t, d]); // [B, T, D]
      const y = dense3(o, this.w.wo!.read());
      return { y, state: { k: kAll, v: vAll } } as unknown as tf.TensorContainer;
    }) as unknown as { y: tf.Tensor; state: AttentionState };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const r = this.forward(x, null);
      tf.dispose([r.state.k, r.state.v]);
      return r.y;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), dModel: this.dModel, numHeads: this.numHeads, rope: this.rope, ropeBase: this.ropeBase };
  }
}

export interface GatedMlpArgs extends BaseLayerArgs {
  /** Hidden width F; default round(expansion * D). */
  hiddenDim?: number | null;
  /** F = expansion x D when hiddenDim is not given. Default 8/3 (SwiGLU at the parameter count of a 4x MLP). */
  expansion?: number;
}

/** Gated MLP (SwiGLU) of Transformer++: y = (silu(x Wg) * (x Wu)) Wd, [B, T, D] -> [B, T, D]. Stateless. */
export class NlGatedMlp extends tf.layers.Layer {
  static className = 'NlGatedMlp';
  private readonly hiddenArg: number | null;
  private readonly expansion: number;
  private hidden: number | null;
  private w: Partial<Record<'wg' | 'wu' | 'wd', tf.LayerVariable>>;

  constructor(args: GatedMlpArgs = {}) {
    super(args);
    const p = NlGatedMlp.className;
    this.hiddenArg = args.hiddenDim == null ? null : posInt(args.hiddenDim, `${p}.hiddenDim`);
    this.expansion = posNum(args.expansion, `${p}.expansion`, 8 / 3);
    this.hidden = this.hiddenArg;
    this.w = {};
    refuseUnreportedLayerArgs(this, args, p);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const d = shape[shape.length - 1];
    if (d == null) fail(`${NlGatedMlp.className}`, `input width must be known, got [${shape}]`);
    const f = this.hiddenArg ?? Math.max(1, Math.round(this.expansion * d));
    this.hidden = f;
    const init: Init = tf.initializers.glorotUniform({});
    this.w.wg = this.addWeight('wg', [d, f], 'float32', init, undefined, true);
    this.w.wu = this.addWeight('wu', [d, f], 'float32', init, undefined, true);
    this.w.wd = this.addWeight('wd', [f, d], 'float32', init, undefined, true);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs; // [B, T, D]
      if (!this.built) this.build(x.shape);
      const g = dense3(x, this.w.wg!.read());
      const u = dense3(x, this.w.wu!.read());
      return dense3(g.mul(tf.sigmoid(g)).mul(u), this.w.wd!.read()); // silu(g) * u -> [B, T, D]
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), hiddenDim: this.hidden, expansion: this.expansion };
  }
}
