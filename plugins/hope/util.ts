/** Small shared helpers of the hope plugin: config checks whose errors name the field, RMS norm. */
import * as tf from '@tensorflow/tfjs';

/** tfjs-layers' constructor args (the type is not exported under a stable name). */
export type BaseLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
/** tfjs-layers' Initializer type (the class is not exported by @tensorflow/tfjs). */
export type Init = ReturnType<typeof tf.initializers.zeros>;

export function fail(path: string, msg: string): never {
  throw new Error(`${path}: ${msg}`);
}

export function posInt(v: unknown, path: string, dflt?: number): number {
  if (v === undefined || v === null) {
    if (dflt === undefined) fail(path, 'is required (a positive integer)');
    return dflt;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(path, `must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

export function posNum(v: unknown, path: string, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(path, `must be a finite number > 0, got ${JSON.stringify(v)}`);
  return v;
}

export function bool(v: unknown, path: string, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') fail(path, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

export function oneOf<T extends string>(v: unknown, allowed: readonly T[], path: string, dflt: T): T {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    fail(path, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

/** RMS norm over the last axis with a learned scale: x [.., D] * g [D] / sqrt(mean(x^2) + eps). */
export function rmsNorm(x: tf.Tensor, scale: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => x.mul(tf.rsqrt(x.square().mean(-1, true).add(eps))).mul(scale));
}

/** x [B, T, Din] times a 2-D kernel [Din, Dout] -> [B, T, Dout] (one shared 2-D matmul). */
export function dense3(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [b, t, d] = x.shape as number[];
    return x.reshape([b * t, d]).matMul(w as tf.Tensor2D).reshape([b, t, w.shape[1] as number]);
  });
}
