/**
 * Plain gradient descent as a gradient transform: updates = -learningRate * grad.
 * In the paper's reading (Eqs. 7-9), GD on a layer is a one-level associative memory that maps
 * each input to its local surprise signal; it keeps no state of its own.
 */
import * as tf from '@tensorflow/tfjs';
import { type GradientTransform, type NamedTensors, tidyResult } from './transform';
import { checkOptions, numberField } from './validate';

export interface SgdConfig {
  /** Step size eta >= 0 (0 freezes the parameters). */
  learningRate: number;
}

const SGD_OPTIONS = ['learningRate'] as const;

/** W += -eta * g. State: none. */
export function sgd(config: SgdConfig, path = 'sgd'): GradientTransform {
  const c = checkOptions(config, SGD_OPTIONS, path);
  const learningRate = numberField(c, 'learningRate', path, { min: 0 });
  return {
    name: 'sgd',
    config: { learningRate },
    init: () => ({}),
    update(grads, _state, _params, _step) {
      return tidyResult(() => {
        const updates: NamedTensors = {};
        for (const [k, g] of Object.entries(grads)) updates[k] = tf.mul(g, -learningRate); // [...P]
        return { updates, state: {} };
      });
    },
  };
}
