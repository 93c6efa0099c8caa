/**
 * A third-party plugin, written the way an outside user would: it lives outside plugins/ and
 * imports only the public API ('nested-learning/core') and tfjs.
 *
 * NlEmaMemory: a leaky-integrator memory per channel, m_t = lambda * m_{t-1} + (1 - lambda) * (x_t W),
 * y_t = m_t + x_t (residual). lambda = sigmoid(rho) is a learned per-channel decay.
 * [B, T, D] -> [B, T, D]. Computed in closed form with a lower-triangular decay matrix
 * (L[t, s] = (1-lambda) lambda^(t-s) for s <= t), so there is no per-token loop.
 */
import * as tf from '@tensorflow/tfjs';
import { definePlugin, type InnerLoss } from 'nested-learning/core';

export interface EmaMemoryArgs {
  /** Initial decay logit rho (lambda = sigmoid(rho)). Default 1.0 (lambda ~ 0.73). */
  initialDecayLogit?: number;
  name?: string;
  inputShape?: tf.Shape;
  batchInputShape?: tf.Shape;
}

export class NlEmaMemory extends tf.layers.Layer {
  static className = 'NlEmaMemory';
  private readonly initialDecayLogit: number;
  private kernel!: tf.LayerVariable;
  private rho!: tf.LayerVariable;

  constructor(args: EmaMemoryArgs = {}) {
    super(args);
    const r = args.initialDecayLogit ?? 1.0;
    if (!Number.isFinite(r)) throw new Error(`NlEmaMemory.initialDecayLogit: must be a finite number, got ${r}`);
    this.initialDecayLogit = r;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = inputShape as tf.Shape;
    const d = shape[shape.length - 1];
    if (d == null) throw new Error('NlEmaMemory: the last input dimension must be known');
    this.kernel = this.addWeight('kernel', [d, d], 'float32', tf.initializers.glorotUniform({ seed: 7 }));
    this.rho = this.addWeight('rho', [d], 'float32', tf.initializers.constant({ value: this.initialDecayLogit }));
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D; // [B, T, D]
      const [b, t, d] = x.shape;
      const u = tf.matMul(x.reshape([b * t, d]), this.kernel.read()).reshape([b, t, d]);
      const lambda = tf.sigmoid(this.rho.read()); // [D]
      const logLambda = tf.log(lambda); // [D]
      const idx = tf.range(0, t, 1, 'float32');
      const diff = idx.reshape([t, 1]).sub(idx.reshape([1, t])); // [T, T] t - s
      const causal = tf.greaterEqual(diff, 0); // s <= t
      // weights[t, s, d] = (1 - lambda_d) lambda_d^(t-s) for s <= t, else 0.
      // w[d, t, s] = (1 - lambda_d) lambda_d^(t-s) for s <= t, else 0.
      const expo = logLambda.reshape([d, 1, 1]).mul(diff.reshape([1, t, t])); // [D, T, T]
      const mask = causal.reshape([1, t, t]).tile([d, 1, 1]);
      const w = tf.where(mask, tf.exp(expo), tf.zerosLike(expo)).mul(tf.sub(1, lambda).reshape([d, 1, 1]));
      // m[b, t, d] = sum_s w[d, t, s] u[b, s, d]: one batched product over channels.
      const m = tf.matMul(w, u.transpose([2, 1, 0])); // [D, T, B]
      return m.transpose([2, 1, 0]).add(x);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), initialDecayLogit: this.initialDecayLogit };
  }
}

/** An inner objective contributed by the plugin: Huber-smoothed L2 (delta = 1). */
export const huberLoss: InnerLoss = {
  name: 'huber',
  value: (p, t) =>
    tf.tidy(() => {
      const r = p.sub(t).abs();
      return tf.where(r.lessEqual(1), r.square().mul(0.5), r.sub(0.5)).sum(-1);
    }),
  grad: (p, t) => tf.tidy(() => p.sub(t).clipByValue(-1, 1)),
};

export const emaMemoryPlugin = definePlugin({
  name: 'acme/ema-memory',
  version: '1.2.0',
  description: 'Example third-party plugin: an exponential-moving-average memory layer and a Huber inner loss.',
  layers: [NlEmaMemory],
  innerLosses: [huberLoss],
  capabilities: ['sequence-mixer'],
});
