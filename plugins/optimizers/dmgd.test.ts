/**
 * Deep Momentum GD (Eq. 50): the MLP memory really trains. Its parameters change, its internal
 * loss falls over steps, it minimises a convex quadratic to tolerance, and its state stays small.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { chain, clipByGlobalNorm, type GradientTransform, type NamedTensors } from '../../core';
import { assertClose, expectNoLeakedTensors } from '../../core/testing';
import { dmgd, dmgdKeys, type DmgdInnerLoss } from './dmgd';

/** f(W) = 1/2 sum lambda (W - W*)^2 over a [4, 3] kernel and a [3] bias; lambda in [0.5, 2]. */
function quadratic(): { lambdaK: tf.Tensor; targetK: tf.Tensor; lambdaB: tf.Tensor; targetB: tf.Tensor } {
  return {
    lambdaK: tf.randomUniform([4, 3], 0.5, 2, 'float32', 11),
    targetK: tf.randomNormal([4, 3], 0, 1, 'float32', 12),
    lambdaB: tf.tensor1d([0.5, 1, 2]),
    targetB: tf.tensor1d([1, -1, 0.5]),
  };
}

/** Runs t on the quadratic for `steps`; returns the final distance to the optimum, the inner losses per step, and the final state. */
function runQuadratic(t: GradientTransform, steps: number): { dist: number; losses: number[]; state0: NamedTensors; state: NamedTensors } {
  const q = quadratic();
  let params: NamedTensors = { k: tf.zeros([4, 3]), b: tf.zeros([3]) };
  const state0 = t.init(params);
  let state: NamedTensors = {};
  for (const [k, v] of Object.entries(state0)) state[k] = v.clone();
  const lossKey = Object.keys(state).find((k) => k.endsWith('mem3/loss'))!;
  const losses: number[] = [];
  for (let s = 1; s <= steps; s++) {
    const grads = tf.tidy(() => ({ k: q.lambdaK.mul(params.k.sub(q.targetK)), b: q.lambdaB.mul(params.b.sub(q.targetB)) }));
    const r = t.update(grads, state, params, s);
    const next = { k: params.k.add(r.updates.k), b: params.b.add(r.updates.b) };
    tf.dispose([grads.k, grads.b, params, state, r.updates]);
    params = next;
    state = r.state;
    losses.push(state[lossKey].dataSync()[0]); // test-only read-back
  }
  const dist = tf.tidy(() => tf.sqrt(params.k.sub(q.targetK).square().sum().add(params.b.sub(q.targetB).square().sum())).dataSync()[0]);
  tf.dispose([params, q.lambdaK, q.targetK, q.lambdaB, q.targetB]);
  return { dist, losses, state0, state };
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('optimizers/dmgd: the deep momentum memory trains', () => {
  for (const innerLoss of ['l2', 'dot'] as DmgdInnerLoss[]) {
    it(`'${innerLoss}': memory parameters change, the inner loss falls, the quadratic is minimised to 1e-3`, () => {
      const t = dmgd({ learningRate: 0.3, innerLoss, hidden: 8 });
      const { dist, losses, state0, state } = runQuadratic(t, 150);
      // Both parameters have last axis 3: ONE shared memory (width 3) serves both.
      const k = dmgdKeys(3);
      expect(Object.keys(state).sort()).to.deep.equal([k.c, k.loss, k.w1, k.w2].sort());
      for (const key of [k.w1, k.w2, k.c]) {
        expect(() => assertClose(state[key], state0[key], { atol: 1e-3 }), `${key} changed`).to.throw();
      }
      // The internal loss falls: the mean of the last 10 steps is well below the loss of the
      // untrained memory at step 1 ('l2': 1/2 |u^|^2 = 1.5 per row; 'dot': 0, the read is 0).
      const late = mean(losses.slice(-10));
      process.stderr.write(`      [dmgd ${innerLoss}] inner loss step 1 ${losses[0].toFixed(3)}, mean of last 10 ${late.toFixed(3)}; distance ${dist.toExponential(2)}\n`);
      expect(late, `inner losses ${losses.slice(0, 3)} ... ${losses.slice(-3)}`).to.be.below(losses[0] - 0.5);
      expect(dist).to.be.below(1e-3);
      tf.dispose([state0, state]);
    });
  }

  for (const innerLoss of ['l2', 'dot'] as DmgdInnerLoss[]) {
    it(`'${innerLoss}': the analytic memory gradients equal autodiff of the mean inner loss (tanh MLP)`, () => {
      // With eta_m = 1 and decay 1, one write moves each memory tensor by exactly -dL/dtheta.
      const b = 3;
      const h = 4;
      const t = dmgd({ innerLoss, hidden: h, memoryLearningRate: 1, memoryDecay: 1 });
      const k = dmgdKeys(b);
      const w1 = tf.randomNormal([b, h], 0, 0.7, 'float32', 31);
      const w2 = tf.randomNormal([h, b], 0, 0.7, 'float32', 32);
      const c = tf.tensor1d([0.3, -0.2, 0.1]);
      const g = { k: tf.randomNormal([5, b], 0, 2, 'float32', 33), b: tf.tensor1d([0.5, -1, 2]) };
      const state: NamedTensors = { [k.w1]: w1, [k.w2]: w2, [k.c]: c, [k.loss]: tf.scalar(0) };
      const r = t.update(g, state, { k: tf.zeros([5, b]), b: tf.zeros([b]) }, 1);
      // Reference: the same rows (u^ per parameter, stacked) and autodiff through the MLP.
      const rows = tf.tidy(() => tf.concat([g.k, g.b.reshape([1, b])].map((x) => x.div(x.square().mean().sqrt())), 0)); // [6, b]
      const target = rows.neg(); // 'l2' with P = I and 'dot' both target -u^
      const lossFn = (a: tf.Tensor, bb: tf.Tensor, cc: tf.Tensor): tf.Scalar => {
        const out = rows.mul(cc).add(tf.matMul(tf.tanh(tf.matMul(rows, a)), bb));
        const perRow = innerLoss === 'l2' ? out.sub(target).square().sum(-1).mul(0.5) : out.mul(target).sum(-1).neg();
        return perRow.mean() as tf.Scalar;
      };
      const [gw1, gw2, gc] = tf.grads(lossFn)([w1, w2, c]);
      assertClose(tf.sub(w1, r.state[k.w1]), gw1, { rtol: 1e-4, atol: 1e-5, name: 'dL/dW1' });
      assertClose(tf.sub(w2, r.state[k.w2]), gw2, { rtol: 1e-4, atol: 1e-5, name: 'dL/dW2' });
      assertClose(tf.sub(c, r.state[k.c]), gc, { rtol: 1e-4, atol: 1e-5, name: 'dL/dc' });
      assertClose(r.state[k.loss], lossFn(w1, w2, c), { rtol: 1e-5, name: 'recorded inner loss' });
      tf.dispose([state, g.k, g.b, rows, target, gw1, gw2, gc, r.updates, r.state]);
    });
  }

  it('state is bounded: one memory per row width, shared by all parameters of that width', () => {
    // An MLP 784-128-10: parameters [784,128], [128], [128,10], [10] -> widths 128 and 10 only.
    const t = dmgd({ hidden: 16 });
    const params: NamedTensors = { k1: tf.zeros([784, 128]), b1: tf.zeros([128]), k2: tf.zeros([128, 10]), b2: tf.zeros([10]) };
    const s = t.init(params);
    const stateSize = Object.values(s).reduce((a, x) => a + x.size, 0);
    const modelSize = Object.values(params).reduce((a, x) => a + x.size, 0);
    // (2*128*16 + 128 + 1) + (2*10*16 + 10 + 1) = 4225 + 331 = 4556 floats vs 101,770 model floats.
    expect(stateSize).to.equal(4556);
    expect(stateSize / modelSize).to.be.below(0.05);
    tf.dispose([s, params]);
  });

  it('composes (chain with clipByGlobalNorm) and does not leak', async () => {
    const t = chain(clipByGlobalNorm(1), dmgd({ innerLoss: 'dot' }));
    const params: NamedTensors = { k: tf.ones([4, 3]), b: tf.ones([3]) };
    let state = t.init(params);
    const grads: NamedTensors = { k: tf.fill([4, 3], 0.5), b: tf.fill([3], -0.2) };
    let step = 0;
    await expectNoLeakedTensors(() => {
      const r = t.update(grads, state, params, ++step);
      tf.dispose([state, r.updates]);
      state = r.state;
    }, { iterations: 10 });
    tf.dispose([state, params, grads]);
  });
});
