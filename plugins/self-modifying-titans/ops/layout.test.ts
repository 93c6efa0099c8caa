import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../../../core/testing';
import { rowBlock, sliceView } from './layout';

describe('self-modifying-titans layout helpers', () => {
  it('sliceView == tf.slice on values and gradients (non-contiguous and contiguous slices)', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([3, 5, 4], 0, 1, 'float32', 1);
      const probe = (shape: number[]) => tf.randomNormal(shape, 0, 1, 'float32', 2);
      for (const [begin, size] of [
        [[0, 2, 0], [3, 1, 4]],
        [[1, 1, 1], [2, 3, 2]],
        [[1, 0, 0], [2, 5, 4]],
      ] as Array<[number[], number[]]>) {
        const p = probe(size);
        assertClose(sliceView(x, begin, size), x.slice(begin, size), { rtol: 0, atol: 0, name: `value ${begin}` });
        const ga = tf.grad((a: tf.Tensor) => sliceView(a, begin, size).mul(p).sum())(x);
        const gb = tf.grad((a: tf.Tensor) => a.slice(begin, size).mul(p).sum())(x);
        assertClose(ga, gb, { rtol: 0, atol: 0, name: `grad ${begin}` });
      }
    });
  });

  it('rowBlock picks contiguous row blocks per batch entry', () => {
    tf.tidy(() => {
      const a = tf.range(0, 2 * 6 * 2).reshape([2, 6, 2]);
      const b = rowBlock(a, 3, 1); // rows 2..3 of each entry
      expect(b.shape).to.deep.equal([2, 2, 2]);
      expect(Array.from(b.dataSync())).to.deep.equal([4, 5, 6, 7, 16, 17, 18, 19]);
    });
  });

  it('does not leak', async () => {
    const x = tf.ones([2, 4, 3]);
    await expectNoLeakedTensors(() => tf.dispose(tf.grad((a: tf.Tensor) => rowBlock(a, 2, 1).sum())(x)));
    x.dispose();
  });
});
