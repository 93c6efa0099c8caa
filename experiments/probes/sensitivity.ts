/**
 * Cross-token sensitivity of a sequence mixer at initialisation: how much the output at the last token
 * T moves when token T - lag changes, relative to how much it moves when token T itself changes
 * (|y_T(x with x_{T-lag} replaced) - y_T(x)| / |y_T(x with x_T replaced) - y_T(x)|), averaged over `sequences`
 * random sequences (seeded: the same inputs for every mixer).
 * An in-context memory that retrieves gives a ratio well above 0; an inert one ~0. Used by
 * experiments/probes/mixer-strength.ts and by integration-tests/nested/mixer-strength.test.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { createSubLayer, type LayerSpec } from '../../plugins/hope';

export function crossTokenSensitivity(spec: LayerSpec, lag: number, width = 32, length = 16, sequences = 1): number {
  if (!Number.isInteger(lag) || lag < 1 || lag >= length) throw new Error(`crossTokenSensitivity: lag must be an integer in [1, ${length - 1}], got ${lag}`);
  return tf.tidy(() => {
    const mixer = createSubLayer(spec as never, 'probe.mixer', 'probe_mixer');
    const T = length;
    const D = width;
    let sum = 0;
    for (let i = 0; i < sequences; i++) {
      const base = tf.randomNormal([1, T, D], 0, 1, 'float32', 3 + 2 * i);
      const alt = tf.randomNormal([1, 1, D], 0, 1, 'float32', 4 + 2 * i);
      const swap = (p: number): tf.Tensor => tf.concat([base.slice([0, 0, 0], [1, p, D]), alt, base.slice([0, p + 1, 0], [1, T - p - 1, D])], 1);
      const y = mixer.apply(tf.concat([base, swap(T - 1), swap(T - 1 - lag)], 0)) as tf.Tensor;
      const last = y.slice([0, T - 1, 0], [3, 1, D]).reshape([3, D]);
      const d = (j: number): number => last.slice([0, 0], [1, D]).sub(last.slice([j, 0], [1, D])).norm().dataSync()[0];
      sum += d(2) / d(1);
    }
    mixer.dispose();
    return tf.scalar(sum / sequences);
  }).dataSync()[0];
}
