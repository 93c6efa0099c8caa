/**
 * Delta Gradient Descent (Eq. 57) for layers with normalised inputs. With eta' = eta / (1 + eta)
 * the paper's update of a linear layer y = W x (W: [out, in]) is
 *   W_{t+1} = W_t (I - eta' x x^T) - eta' (dL/dy) x^T.
 * An optimizer sees only G = dL/dW. For one sample, G = (dL/dy) x^T, so with |x| = 1 the input
 * Gram is recoverable from the gradient: x x^T = G^T G / ||G||_F^2 (paper layout). In the tfjs
 * [in, out] layout this is
 *   W <- W - eta' (K W + G),   K = G G^T / ||G||_F^2  (K W computed as G (G^T W) / ||G||^2 or
 *                                                     (G G^T) W, whichever Gram is smaller)
 * exact for batch size 1 with unit-norm inputs (dgd.test.ts checks it against the explicit
 * formula); for a batch, K is the normalised input-side Gram of the batch gradient (Decision).
 * Rank-1 parameters (biases) have input x = 1, so Eq. 57 gives b <- (1 - eta') b - eta' g.
 * Rank >= 2 parameters are viewed as [prod(shape[:-1]), last]. State: none.
 */
import * as tf from '@tensorflow/tfjs';
import { type GradientTransform, type NamedTensors, tidyResult } from '../../core';
import { checkOptions, numberField } from '../../core/transforms/validate';
import { asMatrix } from './util';
import { outerProjectLeft } from './delta-momentum';

export interface DgdConfig {
  /** eta >= 0 of Eq. 57 (the effective step is eta / (1 + eta)). */
  learningRate: number;
}

export function dgd(config: DgdConfig, path = 'dgd'): GradientTransform {
  const c = checkOptions(config, ['learningRate'], path);
  const eta = numberField(c, 'learningRate', path, { min: 0 });
  const etaP = eta / (1 + eta);
  return {
    name: 'dgd',
    config: { learningRate: eta },
    init: () => ({}),
    update: (grads, _state, params) =>
      tidyResult(() => {
        const updates: NamedTensors = {};
        for (const [n, g] of Object.entries(grads)) {
          const w = params[n];
          if (w == null) throw new Error(`dgd: parameter '${n}' is needed (Eq. 57 multiplies it) but was not passed`);
          const g2 = asMatrix(g, 'row'); // [in, out]; a bias is [1, out] (its input is 1)
          const sq = tf.sum(tf.square(g2));
          const kw = tf.div(outerProjectLeft(g2, asMatrix(w, 'row')), tf.maximum(sq, 1e-30)); // K W, [in, out]
          updates[n] = tf.reshape(tf.mul(tf.add(kw, g2), -etaP), g.shape); // Eq. 57
        }
        return { updates, state: {} };
      }),
  };
}
