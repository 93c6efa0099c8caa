import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import {
  assertStateFinite,
  assertStateShapes,
  concatStateBatch,
  cosineLoss,
  createPeriodicScheduler,
  detachState,
  dotLoss,
  getInnerLoss,
  l2Loss,
  sliceStateBatch,
  stopGradient,
  validateGradientMode,
  validateLevels,
} from './index';
import { assertClose, expectNoLeakedTensors, forEachBackend } from './testing';

forEachBackend('core/inner-loss', () => {
  let p: tf.Tensor;
  let t: tf.Tensor;
  before(() => {
    p = tf.tensor([[1, 2, 2], [0, -1, 3]]);
    t = tf.tensor([[0, 2, 4], [1, 1, 1]]);
  });
  after(() => tf.dispose([p, t]));

  it('l2: value 1/2||p-t||^2 and grad p-t (hand-computed)', () => {
    // row 0: diff (1, 0, -2) -> 0.5 * 5 = 2.5; row 1: diff (-1, -2, 2) -> 0.5 * 9 = 4.5
    assertClose(l2Loss.value(p, t), [2.5, 4.5]);
    assertClose(l2Loss.grad(p, t), [[1, 0, -2], [-1, -2, 2]]);
  });

  it('dot: value -<p,t> and grad -t (hand-computed)', () => {
    // row 0: 0 + 4 + 8 = 12; row 1: 0 - 1 + 3 = 2
    assertClose(dotLoss.value(p, t), [-12, -2]);
    assertClose(dotLoss.grad(p, t), [[0, -2, -4], [-1, -1, -1]]);
  });

  it('cosine: value -cos(p,t) (hand-computed) and every analytic grad == autodiff of its value', () => {
    // row 0: <p,t> = 12, |p| = 3, |t| = sqrt(20) -> -12 / (3 sqrt 20)
    const v = cosineLoss.value(p, t);
    assertClose(v.slice([0], [1]), [-12 / (3 * Math.sqrt(20))], { rtol: 1e-5 });
    for (const loss of [l2Loss, dotLoss, cosineLoss]) {
      const auto = tf.grad((x: tf.Tensor) => loss.value(x, t).sum())(p);
      assertClose(loss.grad(p, t), auto, { rtol: 1e-4, atol: 1e-6, name: loss.name });
    }
  });

  it('getInnerLoss names the field and the allowed values', () => {
    expect(getInnerLoss('dot').name).to.equal('dot');
    expect(() => getInnerLoss('hinge', 'memory.objective')).to.throw(/memory\.objective: unknown inner loss 'hinge'; allowed: l2, dot, cosine/);
  });
});

describe('core/level + scheduler', () => {
  const levels = [
    { id: 'fast', period: 4, variables: ['a'] },
    { id: 'slow', period: 16, variables: ['b', 'c'] },
    { id: 'frozen', period: 0, variables: ['d'] },
  ];

  it('plan fires level l exactly at multiples of its period, and frozen levels never', () => {
    const s = createPeriodicScheduler(levels);
    const fired: Record<string, number[]> = { fast: [], slow: [], frozen: [] };
    for (let i = 0; i <= 40; i++) for (const id of s.plan(i)) fired[id].push(i);
    expect(fired.fast).to.deep.equal([4, 8, 12, 16, 20, 24, 28, 32, 36, 40]);
    expect(fired.slow).to.deep.equal([16, 32]);
    expect(fired.frozen).to.deep.equal([]);
    expect(s.fastestPeriod()).to.equal(4);
  });

  it('boundaries(start, end] lists each boundary once with the levels that fire there', () => {
    const s = createPeriodicScheduler(levels);
    expect(s.boundaries(10, 33)).to.deep.equal([
      { token: 12, levels: ['fast'] },
      { token: 16, levels: ['fast', 'slow'] },
      { token: 20, levels: ['fast'] },
      { token: 24, levels: ['fast'] },
      { token: 28, levels: ['fast'] },
      { token: 32, levels: ['fast', 'slow'] },
    ]);
    expect(s.boundaries(0, 3)).to.deep.equal([]);
    expect(() => s.plan(-1)).to.throw(/tokensSeen must be an integer >= 0/);
  });

  it('bad level specs give errors that name the field', () => {
    expect(() => validateLevels([{ id: 'a', period: -1, variables: [] }])).to.throw(/levels\[0\]\.period: must be an integer >= 0/);
    expect(() => validateLevels([{ id: 'a', period: 1.5, variables: [] }])).to.throw(/levels\[0\]\.period/);
    expect(() =>
      validateLevels([
        { id: 'a', period: 1, variables: [] },
        { id: 'a', period: 2, variables: [] },
      ]),
    ).to.throw(/levels\[1\]\.id: duplicate id 'a' \(also levels\[0\]\)/);
    expect(() =>
      validateLevels([
        { id: 'a', period: 1, variables: ['w'] },
        { id: 'b', period: 2, variables: ['w'] },
      ]),
    ).to.throw(/levels\[1\]\.variables: variable 'w' already belongs to level 'a'/);
    expect(() => validateLevels([{ id: 'a', period: 1, variables: [], learningRate: -0.1 }])).to.throw(/levels\[0\]\.learningRate/);
    expect(() => validateGradientMode('partial', 'model.gradientMode')).to.throw(/model\.gradientMode: must be one of 'full', 'stop'/);
    expect(validateGradientMode('stop')).to.equal('stop');
  });
});

describe('core/memory-state', () => {
  it('stopGradient is identity forward and blocks the gradient', () => {
    const x = tf.tensor([1, 2, 3]);
    const g = tf.grad((a: tf.Tensor) => stopGradient(a.square()).add(a).sum())(x);
    assertClose(g, [1, 1, 1]);
    assertClose(stopGradient(x), [1, 2, 3]);
    const s = detachState({ m: x.mul(2) });
    const g2 = tf.grad((a: tf.Tensor) => detachState({ m: a.mul(2) }).m.add(a).sum())(x);
    assertClose(g2, [1, 1, 1]);
    assertClose(s.m, [2, 4, 6]);
    tf.dispose([x, g, g2, s.m]);
  });

  it('slice/concat along the batch axis round-trip', () => {
    const st = { m: tf.tensor3d([[[1]], [[2]], [[3]]]), s: tf.tensor2d([[1, 1], [2, 2], [3, 3]]) };
    const a = sliceStateBatch(st, 0, 1);
    const b = sliceStateBatch(st, 1, 2);
    assertClose(b.m, [[[2]], [[3]]]);
    const back = concatStateBatch([a, b]);
    assertClose(back.m, st.m);
    assertClose(back.s, st.s);
  });

  it('assertStateShapes and assertStateFinite name the offending entry', () => {
    const st = { w: tf.zeros([2, 3, 4]), n: tf.tensor([NaN, 1]) };
    expect(() => assertStateShapes(st, { w: [2, 3, 4] }, 'titans.state')).to.throw(/titans\.state\.n: unexpected entry/);
    expect(() => assertStateShapes(st, { w: [2, 4, 4], n: [2] }, 'titans.state')).to.throw(/titans\.state\.w: shape \[2,3,4\] does not match expected \[2,4,4\]/);
    expect(() => assertStateShapes({}, { w: [-1, 3] })).to.throw(/state\.w: missing/);
    assertStateShapes(st, { w: [-1, 3, 4], n: [2] });
    expect(() => assertStateFinite(st, 'mem')).to.throw(/mem\.n: contains NaN or Inf/);
  });

  it('stopGradient does not leak', async () => {
    const x = tf.tensor([1, 2]);
    await expectNoLeakedTensors(() => tf.tidy(() => tf.grad((a: tf.Tensor) => stopGradient(a).mul(a).sum())(x)).dispose());
    x.dispose();
  });
});
