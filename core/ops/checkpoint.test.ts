import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../testing';
import { checkpoint } from './checkpoint';

describe('core/ops checkpoint (rematerialisation)', () => {
  // Two chained chunks of a small nonlinear recurrence, with two outputs per chunk.
  const chunk = ([h, w, x]: tf.Tensor[]): tf.Tensor[] => {
    const h2 = tf.tanh(tf.matMul(h, w).add(x)); // [2, 3]
    return [h2, h2.square().sum(1)]; // state, per-row output
  };
  const loss = (useCheckpoint: boolean) => (h0: tf.Tensor, w: tf.Tensor, x: tf.Tensor): tf.Scalar => {
    let h = h0;
    let total: tf.Tensor = tf.scalar(0);
    for (let i = 0; i < 2; i++) {
      const [hn, y] = useCheckpoint ? checkpoint(chunk, [h, w, x.mul(i + 1)]) : chunk([h, w, x.mul(i + 1)]);
      total = total.add(y.mul(i + 2).sum());
      h = hn;
    }
    return total.add(h.sum()) as tf.Scalar;
  };

  it('gives the same value and gradients as running the chunks on the tape', () => {
    const h0 = tf.randomNormal([2, 3], 0, 1, 'float32', 1);
    const w = tf.randomNormal([3, 3], 0, 0.5, 'float32', 2);
    const x = tf.randomNormal([2, 3], 0, 1, 'float32', 3);
    const plain = tf.grads(loss(false))([h0, w, x]);
    const ck = tf.grads(loss(true))([h0, w, x]);
    plain.forEach((g, i) => assertClose(ck[i], g, { rtol: 1e-5, atol: 1e-6, name: `grad ${i}` }));
    assertClose(loss(true)(h0, w, x), loss(false)(h0, w, x), { rtol: 1e-6 });
    tf.dispose([h0, w, x, ...plain, ...ck]);
  });

  it('does not leak tensors through forward and backward', async () => {
    const h0 = tf.ones([2, 3]);
    const w = tf.eye(3);
    const x = tf.ones([2, 3]);
    await expectNoLeakedTensors(() => tf.dispose(tf.grads(loss(true))([h0, w, x])));
    tf.dispose([h0, w, x]);
  });
  it('passes inputs through, allows one output and unused outputs (gradients as on the tape)', () => {
    const w = tf.randomNormal([3, 3], 0, 0.5, 'float32', 4);
    const x = tf.randomNormal([2, 3], 0, 1, 'float32', 5);
    // outputs: a new tensor, the input x itself, the same tensor twice, and one output the loss ignores
    const f = ([a, b]: tf.Tensor[]): tf.Tensor[] => {
      const y = tf.tanh(tf.matMul(b, a));
      return [y, b, y, y.square()];
    };
    const lossOf = (ck: boolean) => (a: tf.Tensor, b: tf.Tensor): tf.Scalar => {
      const [y, bb, y2] = ck ? checkpoint(f, [a, b]) : f([a, b]);
      return y.sum().add(bb.mul(3).sum()).add(y2.mul(y2).sum()) as tf.Scalar;
    };
    const single = (ck: boolean) => (a: tf.Tensor, b: tf.Tensor): tf.Scalar => {
      const g = ([p, q]: tf.Tensor[]): tf.Tensor[] => [tf.matMul(q, p).square()];
      return (ck ? checkpoint(g, [a, b]) : g([a, b]))[0].sum() as tf.Scalar;
    };
    for (const [name, l] of [['multi', lossOf], ['single', single]] as const) {
      const ref = tf.grads(l(false))([w, x]);
      const got = tf.grads(l(true))([w, x]);
      ref.forEach((g, i) => assertClose(got[i], g, { rtol: 1e-5, atol: 1e-6, name: `${name} grad ${i}` }));
      tf.dispose([...ref, ...got]);
    }
    const outs = checkpoint(f, [w, x]);
    expect(outs[1]).to.not.equal(x); // a copy the caller owns
    expect(outs[2]).to.not.equal(outs[0]);
    tf.dispose(outs);
    expect(x.isDisposed).to.equal(false);
    tf.dispose([w, x]);
  });
});
