import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../testing';
import { cumsumSafe, splitAxis0, stackAxis0 } from './tensor-util';

describe('core/ops tensor-util workarounds', () => {
  it('splitAxis0 / stackAxis0: values of unstack / stack, and gradients (also for a single piece)', () => {
    for (const n of [1, 2, 5]) {
      const x = tf.randomNormal([n, 2, 3], 0, 1, 'float32', n);
      const parts = splitAxis0(x);
      const ref = tf.unstack(x, 0);
      expect(parts).to.have.length(n);
      parts.forEach((p, i) => assertClose(p, ref[i], { rtol: 0, atol: 0 }));
      assertClose(stackAxis0(parts), x, { rtol: 0, atol: 0 });
      // d/dx sum_i (i + 1) * parts_i^2 = 2 (i + 1) x_i
      const g = tf.grad((a: tf.Tensor) => tf.addN(splitAxis0(a).map((p, i) => p.square().sum().mul(i + 1))) as tf.Scalar)(x);
      const scale = tf.range(1, n + 1).reshape([n, 1, 1]);
      assertClose(g, x.mul(scale).mul(2), { rtol: 1e-6 });
      const gs = tf.grad((a: tf.Tensor) => stackAxis0(splitAxis0(a).map((p, i) => p.mul(i + 1))).sum() as tf.Scalar)(x);
      assertClose(gs, scale.tile([1, 2, 3]), { rtol: 0, atol: 0 });
    }
    expect(() => stackAxis0([])).to.throw(/no tensors/);
  });

  it('leave no intermediate tensors behind (called outside a tidy)', async () => {
    const x = tf.randomNormal([7, 3, 2]);
    await expectNoLeakedTensors(() => {
      const parts = splitAxis0(x);
      const back = stackAxis0(parts);
      const c = cumsumSafe(back, 1, true);
      tf.dispose([...parts, back, c]);
    });
    x.dispose();
  });

  it('cumsumSafe: values and gradient along a middle axis (inclusive and exclusive)', () => {
    const x = tf.tensor3d([[[1, 2], [3, 4], [5, 6]]]); // [1, 3, 2]
    assertClose(cumsumSafe(x, 1), [[[1, 2], [4, 6], [9, 12]]]);
    assertClose(cumsumSafe(x, 1, true), [[[0, 0], [1, 2], [4, 6]]]);
    const w = tf.tensor3d([[[1, 10], [100, 1000], [1e4, 1e5]]]);
    // d/dx_j sum_i w_i cumsum(x)_i = sum_{i >= j} w_i (inclusive), sum_{i > j} w_i (exclusive)
    const g = tf.grad((a: tf.Tensor) => cumsumSafe(a, 1).mul(w).sum() as tf.Scalar)(x);
    assertClose(g, [[[10101, 101010], [10100, 101000], [1e4, 1e5]]]);
    const ge = tf.grad((a: tf.Tensor) => cumsumSafe(a, 1, true).mul(w).sum() as tf.Scalar)(x);
    assertClose(ge, [[[10100, 101000], [1e4, 1e5], [0, 0]]]);
  });
});
