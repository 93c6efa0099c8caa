/** Small shared helpers of the hope plugin: config checks whose errors name the field, RMS norm. */
import * as tf from '@tensorflow/tfjs';
import { failAt, is, withDefault } from '../../core/validate';

/** tfjs-layers' constructor args (the type is not exported under a stable name). */
export type BaseLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
/** tfjs-layers' Initializer type (the class is not exported by @tensorflow/tfjs). */
export type Init = ReturnType<typeof tf.initializers.zeros>;

/** `path: msg` as a ConfigError (core/validate.ts). */
export function fail(path: string, msg: string): never {
  return failAt(path, msg);
}

/** The hope layers' argument order (value, path, default) over the core/validate.ts kit. */
export function posInt(v: unknown, path: string, dflt?: number): number {
  if ((v === undefined || v === null) && dflt === undefined) fail(path, 'is required (a positive integer)');
  return withDefault(is.posInt, dflt as number)(v, path);
}

export function posNum(v: unknown, path: string, dflt: number): number {
  return withDefault(is.number({ above: 0 }), dflt)(v, path);
}

export function bool(v: unknown, path: string, dflt: boolean): boolean {
  return withDefault(is.bool('true or false'), dflt)(v, path);
}

export function oneOf<T extends string>(v: unknown, allowed: readonly T[], path: string, dflt: T): T {
  return withDefault(is.oneOf(allowed), dflt)(v, path);
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
