import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../testing';
import { momentum } from './momentum';
import { sgd } from './sgd';
import { runTransform } from './testing';

describe('transforms/sgd', () => {
  it('two hand-computed steps: updates = -lr * g', () => {
    // lr = 0.1, W0 = [1, 2]
    // g1 = [0.5, -1] -> u1 = [-0.05, 0.1]  -> W1 = [0.95, 2.1]
    // g2 = [2, 4]    -> u2 = [-0.2, -0.4]  -> W2 = [0.75, 1.7]
    const r = runTransform(sgd({ learningRate: 0.1 }), { w: [1, 2] }, [{ w: [0.5, -1] }, { w: [2, 4] }]);
    assertClose(r.updates[0].w, [-0.05, 0.1]);
    assertClose(r.updates[1].w, [-0.2, -0.4]);
    assertClose(r.params.w, [0.75, 1.7]);
    expect(r.state).to.deep.equal({});
  });

  it('is pure: returns new tensors and leaves its inputs alive and unchanged', () => {
    const t = sgd({ learningRate: 1 });
    const w = tf.tensor1d([1, 2]);
    const g = tf.tensor1d([3, 4]);
    const r = t.update({ w: g }, {}, { w }, 1);
    expect(r.updates.w).to.not.equal(g);
    expect(g.isDisposed).to.equal(false);
    assertClose(g, [3, 4]);
    assertClose(r.updates.w, [-3, -4]);
    tf.dispose([w, g, r.updates.w]);
  });

  it('rejects a negative or missing learning rate and unknown options, naming the field', () => {
    expect(() => sgd({ learningRate: -0.1 })).to.throw(/sgd\.learningRate: must be a finite number and >= 0, got -0\.1/);
    expect(() => sgd({} as never)).to.throw(/sgd\.learningRate: is required/);
    expect(() => sgd({ learningRate: NaN })).to.throw(/sgd\.learningRate/);
    expect(() => sgd({ learningRate: 0.1, lr: 1 } as never)).to.throw(/sgd\.lr: unknown option \(allowed: learningRate\)/);
  });
});

describe('transforms/momentum (Eq. 33: m = beta*m - lr*g; W += m)', () => {
  const g1 = [1, -2];
  const g2 = [0.5, 1];
  const g3 = [-1, 0];

  it('three hand-computed steps', () => {
    // lr = 0.1, beta = 0.9, W0 = [0, 0], m0 = 0
    // m1 = -0.1*[1,-2]                   = [-0.1, 0.2]
    // m2 = 0.9*[-0.1,0.2] - 0.1*[0.5,1]  = [-0.09-0.05, 0.18-0.1] = [-0.14, 0.08]
    // m3 = 0.9*[-0.14,0.08] - 0.1*[-1,0] = [-0.126+0.1, 0.072]    = [-0.026, 0.072]
    // W3 = m1 + m2 + m3 = [-0.266, 0.352]
    const r = runTransform(momentum({ learningRate: 0.1, beta: 0.9 }), { w: [0, 0] }, [{ w: g1 }, { w: g2 }, { w: g3 }]);
    assertClose(r.updates[0].w, [-0.1, 0.2]);
    assertClose(r.updates[1].w, [-0.14, 0.08]);
    assertClose(r.updates[2].w, [-0.026, 0.072]);
    assertClose(r.params.w, [-0.266, 0.352]);
    expect(Object.keys(r.state)).to.deep.equal(['w::m']);
    assertClose(r.state['w::m'], [-0.026, 0.072]);
  });

  it('nesterov: two hand-computed steps (updates = beta*m_new - lr*g)', () => {
    // m1 = [-0.1, 0.2];  u1 = 0.9*m1 - 0.1*g1 = [-0.09-0.1, 0.18+0.2]   = [-0.19, 0.38]
    // m2 = [-0.14, 0.08]; u2 = 0.9*m2 - 0.1*g2 = [-0.126-0.05, 0.072-0.1] = [-0.176, -0.028]
    const r = runTransform(momentum({ learningRate: 0.1, beta: 0.9, nesterov: true }), { w: [0, 0] }, [{ w: g1 }, { w: g2 }]);
    assertClose(r.updates[0].w, [-0.19, 0.38]);
    assertClose(r.updates[1].w, [-0.176, -0.028]);
    assertClose(r.state['w::m'], [-0.14, 0.08]);
  });

  it('beta = 0 is sgd', () => {
    const a = runTransform(momentum({ learningRate: 0.3, beta: 0 }), { w: [1, 1] }, [{ w: g1 }, { w: g2 }]);
    const b = runTransform(sgd({ learningRate: 0.3 }), { w: [1, 1] }, [{ w: g1 }, { w: g2 }]);
    assertClose(a.params.w, b.params.w);
  });

  for (const nesterov of [false, true]) {
    it(`matches tf.train.momentum (an independent implementation) over 6 steps, nesterov=${nesterov}`, () => {
      // tfjs: acc = beta*acc + g; W -= lr*acc (nesterov: W -= lr*(g + beta*acc)); i.e. m = -lr*acc.
      const lr = 0.05;
      const beta = 0.8;
      const init = [0.3, -1.2, 2.0, 0.7];
      const vRef = tf.variable(tf.tensor1d(init));
      const ref = tf.train.momentum(lr, beta, nesterov);
      const gradSeq: Array<Record<string, number[]>> = [];
      for (let s = 0; s < 6; s++) {
        const g = init.map((_, i) => Math.sin(1.3 * s + 0.7 * i) * (i + 1));
        gradSeq.push({ w: g });
        const gt = tf.tensor1d(g);
        ref.applyGradients([{ name: vRef.name, tensor: gt }]);
        gt.dispose();
      }
      const mine = runTransform(momentum({ learningRate: lr, beta, nesterov }), { w: init }, gradSeq);
      assertClose(mine.params.w, vRef, { rtol: 1e-5, atol: 1e-6 });
      ref.dispose();
      vRef.dispose();
    });
  }

  it('does not leak tensors over many updates', async () => {
    const t = momentum({ learningRate: 0.1, beta: 0.9, nesterov: true });
    const w = tf.tensor2d([[1, 2], [3, 4]]);
    let state = t.init({ w });
    const g = tf.tensor2d([[0.1, -0.2], [0.3, 0.4]]);
    await expectNoLeakedTensors(
      (i) => {
        const r = t.update({ w: g }, state, { w }, i + 1);
        tf.dispose([state, r.updates]);
        state = r.state;
      },
      { iterations: 20, name: 'momentum.update' },
    );
    tf.dispose([w, g, state]);
  });

  it('rejects bad settings naming the field', () => {
    expect(() => momentum({ learningRate: -1 })).to.throw(/momentum\.learningRate: must be a finite number and >= 0, got -1/);
    expect(() => momentum({ learningRate: 0.1, beta: 1.5 })).to.throw(/momentum\.beta: must be .*<= 1, got 1\.5/);
    expect(() => momentum({ learningRate: 0.1, nesterov: 'yes' as never })).to.throw(/momentum\.nesterov: must be true or false/);
    expect(() => momentum({ learningRate: 0.1, alpha: 0.9 } as never)).to.throw(/momentum\.alpha: unknown option/);
  });
});
