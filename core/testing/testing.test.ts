import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors, gradCheck } from './index';

describe('core/testing', () => {
  it('assertClose accepts values within rtol/atol and rejects others with the worst index', () => {
    assertClose([1, 2, 3], [1, 2 + 1e-6, 3]);
    assertClose(tf.tensor([0, 1e-7]), tf.tensor([1e-7, 0]), { atol: 1e-6 });
    expect(() => assertClose([1, 2, 3], [1, 2.1, 3], { name: 'x' })).to.throw(/x: 1\/3 elements differ.*flat index 1/);
    expect(() => assertClose(tf.zeros([2, 3]), tf.zeros([3, 2]))).to.throw(/shape mismatch/);
  });

  it('assertClose is NaN-aware', () => {
    assertClose([NaN, 1], [NaN, 1]);
    expect(() => assertClose([NaN], [0])).to.throw(/differ/);
    expect(() => assertClose([0], [NaN])).to.throw(/differ/);
    expect(() => assertClose([Infinity], [1e30])).to.throw(/differ/);
  });

  it('expectNoLeakedTensors passes a clean step and catches a leaking one', async () => {
    await expectNoLeakedTensors(() => tf.tidy(() => tf.ones([3]).add(1).sum()).dispose());
    const leaked: tf.Tensor[] = [];
    let err: Error | null = null;
    try {
      await expectNoLeakedTensors(() => leaked.push(tf.ones([2])), { name: 'leaky' });
    } catch (e) {
      err = e as Error;
    }
    tf.dispose(leaked);
    expect(err?.message).to.match(/leaky: leaked tensors/);
  });

  it('gradCheck passes a correct gradient and catches a wrong custom gradient', () => {
    const x = tf.tensor([0.3, -0.7, 1.1]);
    gradCheck((a) => a.square().mul(a.sin()).sum() as tf.Scalar, [x]);
    const wrong = tf.customGrad(((a: tf.Tensor, save: tf.GradSaveFunc) => {
      save([a]);
      return { value: a.square().sum(), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => dy.mul(saved[0]).mul(3) };
    }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor) => tf.Scalar;
    expect(() => gradCheck((a) => wrong(a), [x])).to.throw(/gradCheck d\/dx\[0\]/);
    x.dispose();
  });
});
