import * as tf from '@tensorflow/tfjs';

/**
 * Identity in the forward pass, zero gradient in the backward pass (tfjs has no stop_gradient op).
 * Used by the 'stop' gradient mode: memory writes are not differentiated.
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const f = tf.customGrad(((a: tf.Tensor) => ({
    value: a.clone(),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as T;
}
