/**
 * Gradient transforms (optax-style): an optimizer is a pure pair init/update over named tensors.
 * PLACEHOLDER CONTRACT — completed in core/transforms (see issue 2).
 */
import type * as tf from '@tensorflow/tfjs';

export type NamedTensors = Record<string, tf.Tensor>;

export interface GradientTransform {
  readonly name: string;
  init(params: NamedTensors): NamedTensors;
  update(grads: NamedTensors, state: NamedTensors, params: NamedTensors): { updates: NamedTensors; state: NamedTensors };
}

export type GradientTransformFactory = (config: Record<string, unknown>) => GradientTransform;
