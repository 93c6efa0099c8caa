import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose } from '../../core/testing';
import { NestedModel } from '../../core';
import { tokenSquaredError } from '../scheduler';
import { NestedTrainer } from '../scheduler';
import { cmsFromDense } from './retrofit';

describe('plugin cms: retrofit from Dense weights (Section 7.3)', () => {
  it('before any update the CMS computes the original residual MLP stack; after the first boundary it adapts', () => {
    const d = 4;
    const pairs = [0, 1].map(() => {
      const up = tf.layers.dense({ units: 6, activation: 'relu', biasInitializer: 'randomNormal' });
      const down = tf.layers.dense({ units: d, biasInitializer: 'randomNormal' });
      return { up, down };
    });
    const x = tf.randomNormal([2, 7, d], 0, 1, 'float32', 4);
    // original model: h = h + down(up(h)), twice
    let h: tf.Tensor = x;
    for (const p of pairs) h = h.add(p.down.apply(p.up.apply(h)) as tf.Tensor);
    const cms = cmsFromDense(pairs, { levels: [{ period: 3, learningRate: 0.1 }, { period: 5, learningRate: 0.1 }] });
    assertClose(cms.apply(x) as tf.Tensor, h, { rtol: 1e-5, atol: 1e-6, name: 'call' });
    const tr = new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError });
    const y = tf.randomNormal([2, 7, d], 0, 1, 'float32', 5);
    const r = tr.memorize(x, y, { collect: true });
    const before = r.outputs!.slice([0, 0, 0], [-1, 3, -1]);
    assertClose(before, h.slice([0, 0, 0], [-1, 3, -1]), { rtol: 1e-5, atol: 1e-6, name: 'tokens before the first boundary' });
    const after = r.outputs!.slice([0, 3, 0], [-1, 1, -1]);
    expect(tf.max(tf.abs(after.sub(h.slice([0, 3, 0], [-1, 1, -1])))).dataSync()[0]).to.be.greaterThan(1e-5);
    tr.dispose();
  });

  it('rejects pairs that are not a D -> H -> D Dense MLP, naming the field', () => {
    const up = tf.layers.dense({ units: 5, activation: 'softmax' });
    const down = tf.layers.dense({ units: 3 });
    up.apply(tf.zeros([1, 3]));
    down.apply(tf.zeros([1, 5]));
    expect(() => cmsFromDense([{ up, down }])).to.throw("cmsFromDense.pairs[0].up: activation 'softmax'");
    const up2 = tf.layers.dense({ units: 5, activation: 'relu' });
    up2.apply(tf.zeros([1, 4]));
    expect(() => cmsFromDense([{ up: up2, down }])).to.throw('cmsFromDense.pairs[0]: kernels');
  });
});
