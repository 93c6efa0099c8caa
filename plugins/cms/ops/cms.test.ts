import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors, gradCheck } from '../../../core/testing';
import { NestedModel } from '../../../core';
import { NestedTrainer, tokenSquaredError } from '../../scheduler';
import { flatBlock, makeCms, randBlock, randMat, rng, type CmsCase } from '../testing/helpers';
import { referenceRun } from '../testing/reference';
import { cmsForward, cmsInContext, fastKey, type CmsClocks, type CmsInContextResult, type CmsState } from './cms';
import { cmsInContextNaive } from './naive';

const D = 3;
const H = 4;
const TOL = { rtol: 2e-4, atol: 2e-5 };

const CASES: Array<{ name: string; c: CmsCase }> = [
  {
    name: 'sequential relu, periods 2/3/0/5, momentum on level 1',
    c: {
      levels: [{ period: 2, learningRate: 0.1 }, { period: 3, learningRate: 0.05, momentum: 0.5 }, { period: 0, learningRate: 0 }, { period: 5, learningRate: 0.1 }],
      variant: 'sequential',
      activation: 'relu',
      residual: true,
      hidden: H,
      transforms: [undefined, { transform: 'momentum', config: { learningRate: 1, beta: 0.5 } }, undefined, undefined],
    },
  },
  { name: 'nested tanh, periods 4/2', c: { levels: [{ period: 4, learningRate: 0.2 }, { period: 2, learningRate: 0.1 }], variant: 'nested', activation: 'tanh', residual: true, hidden: H } },
  {
    name: 'independent tanh, no bias, periods 2/3',
    c: { levels: [{ period: 2, learningRate: 0.1 }, { period: 3, learningRate: 0.1 }], variant: 'independent', activation: 'tanh', residual: true, hidden: H, mix: [0.7, -0.4], useBias: false },
  },
  { name: 'sequential linear, no residual, period 3', c: { levels: [{ period: 3, learningRate: 0.3 }], variant: 'sequential', activation: 'linear', residual: false, hidden: 2 } },
];

function setup(c: CmsCase, seed: number): { cms: ReturnType<typeof makeCms>; init: ReturnType<typeof randBlock>[] } {
  const r = rng(seed);
  const init = c.levels.map(() => randBlock(r, D, c.hidden, c.useBias ?? true));
  return { cms: makeCms(c, init, D), init };
}

const tensors = (seed: number, b: number, t: number): { x: tf.Tensor3D; y: tf.Tensor3D } => {
  const r = rng(seed);
  return { x: tf.tensor3d(Array.from({ length: b }, () => randMat(r, t, D, 1))), y: tf.tensor3d(Array.from({ length: b }, () => randMat(r, t, D, 1))) };
};

function expectSame(got: CmsInContextResult, want: CmsInContextResult, name: string): void {
  assertClose(got.y, want.y, { ...TOL, name: `${name}: outputs` });
  assertClose(got.losses, want.losses, { ...TOL, name: `${name}: losses` });
  expect(Object.keys(got.state).sort(), `${name}: state keys`).to.deep.equal(Object.keys(want.state).sort());
  for (const k of Object.keys(want.state)) assertClose(got.state[k], want.state[k], { ...TOL, name: `${name}: state ${k}` });
  expect(got.clocks, `${name}: clocks`).to.deep.equal(want.clocks);
  expect([...got.fired].sort(), `${name}: fired`).to.deep.equal([...want.fired].sort());
}

const disposeResult = (r: CmsInContextResult): void => tf.dispose([r.y, r.losses, ...Object.values(r.state)]);

describe('plugin cms: the pure CMS op (ops/cms.ts) against the token-by-token ground truth (ops/naive.ts)', () => {
  it('the naive op equals the float64 plain-JS reference (outputs and weights after every chunk)', () => {
    const { c } = CASES[1];
    const { cms, init } = setup(c, 1);
    const { x, y } = tensors(2, 1, 9);
    const r = cmsInContextNaive({ x, targets: y, loss: tokenSquaredError, params: cms.params(), spec: cms.opSpec(), state: null, clocks: null });
    const ref = referenceRun(c, init, (x.arraySync() as number[][][])[0], (y.arraySync() as number[][][])[0]);
    assertClose(r.y, [ref.outputs], { ...TOL, name: 'outputs' });
    for (const l of [0, 1]) {
      const w = ['w1', 'b1', 'w2', 'b2'].map((n) => (r.state[fastKey(l, n)].arraySync() as unknown[])[0]) as [number[][], number[], number[][], number[]];
      assertClose(flatBlock({ w1: w[0], b1: w[1], w2: w[2], b2: w[3] }), flatBlock(ref.snapshots[8][l]), { ...TOL, name: `level ${l}` });
    }
    expect(r.clocks.updatesFired).to.deep.equal(ref.fired);
    disposeResult(r);
    tf.dispose([x, y]);
  });

  CASES.forEach(({ name, c }, i) => {
    for (const t of [1, 7, 13]) {
      for (const flush of [false, true]) {
        it(`${name}: T = ${t}, B = 2, ${flush ? 'flush' : 'carry'}: outputs, losses, state (weights, accumulated gradients, transform state), clocks`, () => {
          const { cms } = setup(c, 10 + i);
          const { x, y } = tensors(20 + t, 2, t);
          const args = { x, targets: y, loss: tokenSquaredError, params: cms.params(), spec: cms.opSpec(), state: null, clocks: null, flush };
          const want = cmsInContextNaive(args);
          const got = cmsInContext(args);
          expectSame(got, want, `T ${t}`);
          const seg1 = cmsInContext({ ...args, segmentLength: 1 });
          expectSame(seg1, want, `T ${t}, 1-token segments`);
          [want, got, seg1].forEach(disposeResult);
          tf.dispose([x, y]);
        });
      }
    }
  });

  it('carried state and clocks: one call on 13 tokens == pieces 4 + 2 + 7 (carry) == the naive op on the same pieces', () => {
    const { c } = CASES[0];
    const { cms } = setup(c, 30);
    const { x, y } = tensors(31, 2, 13);
    const base = { loss: tokenSquaredError, params: cms.params(), spec: cms.opSpec() };
    const whole = cmsInContext({ ...base, x, targets: y, state: null, clocks: null });
    let state: CmsState | null = null;
    let clocks: CmsClocks | null = null;
    const outs: tf.Tensor[] = [];
    let at = 0;
    for (const n of [4, 2, 7]) {
      const xs = x.slice([0, at], [-1, n]);
      const ys = y.slice([0, at], [-1, n]);
      const r = cmsInContext({ ...base, x: xs, targets: ys, state, clocks });
      const naive = cmsInContextNaive({ ...base, x: xs, targets: ys, state, clocks });
      expectSame(r, naive, `piece at ${at}`);
      disposeResult(naive);
      if (state) tf.dispose(Object.values(state));
      state = r.state;
      clocks = r.clocks;
      outs.push(r.y);
      tf.dispose([xs, ys, r.losses]);
      at += n;
    }
    assertClose(tf.concat(outs, 1), whole.y, { ...TOL, name: 'outputs' });
    for (const k of Object.keys(whole.state)) assertClose(state![k], whole.state[k], { ...TOL, name: `state ${k}` });
    expect(clocks).to.deep.equal(whole.clocks);
    expect(clocks).to.deep.equal({ tokensSeen: 13, lastUpdateAt: [12, 12, 0, 10], updatesFired: [6, 4, 0, 2] });
    disposeResult(whole);
    tf.dispose([x, y, ...outs, ...Object.values(state!)]);
  });

  it('the layer through NestedTrainer (memorize) equals the op: the trainer drives the same arithmetic', () => {
    for (const [i, { c }] of CASES.entries()) {
      const { cms } = setup(c, 40 + i);
      const { x, y } = tensors(41 + i, 2, 11);
      const tr = new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError, partialChunk: 'flush' });
      const r = tr.memorize(x, y, { newContext: true, collect: true });
      const op = cmsInContext({ x, targets: y, loss: tokenSquaredError, params: cms.params(), spec: cms.opSpec(), state: null, clocks: null, flush: true });
      assertClose(r.outputs!, op.y, { ...TOL, name: `case ${i} outputs` });
      assertClose(r.tokenLosses!, op.losses, { ...TOL, name: `case ${i} losses` });
      const st = tr.memoryState(0)!;
      expect(Object.keys(st).sort()).to.deep.equal(Object.keys(op.state).sort());
      for (const k of Object.keys(op.state)) assertClose(st[k], op.state[k], { ...TOL, name: `case ${i} state ${k}` });
      expect(tr.levelClocks().map((k) => k.updatesFired)).to.deep.equal(op.clocks.updatesFired);
      tf.dispose([x, y, r.outputs!, r.tokenLosses!]);
      disposeResult(op);
      tr.dispose();
    }
  });

  it('cmsForward is differentiable in x, the fast weights, frozen parameters and mix: autodiff == finite differences', () => {
    for (const { c } of [CASES[0], CASES[2]]) {
      const { cms } = setup({ ...c, activation: 'tanh' }, 50);
      const spec = cms.opSpec();
      const p = cms.params();
      const { x } = tensors(51, 2, 3);
      const r = cmsInContext({ x, targets: tf.zerosLike(x), loss: tokenSquaredError, params: p, spec, state: null, clocks: null }); // a state with updated fast weights
      const proj = tf.randomNormal([2, 3, D], 0, 1, 'float32', 52);
      const fastKeyOf = fastKey(1, 'w1');
      const frozen = c.variant === 'independent' ? p.mix! : p.levels[2].w2;
      gradCheck(
        (xx, fw, fz) => {
          const params = c.variant === 'independent' ? { ...p, mix: fz } : { ...p, levels: p.levels.map((b, l) => (l === 2 ? { ...b, w2: fz } : b)) };
          return cmsForward(xx, params, spec, { ...r.state, [fastKeyOf]: fw }).mul(proj).sum() as tf.Scalar;
        },
        [x, r.state[fastKeyOf], frozen],
        { rtol: 3e-2, atol: 3e-3 },
      );
      disposeResult(r);
      tf.dispose([x, proj]);
    }
  });

  it('no leaked tensors (cmsInContext with carried state, and the naive op)', async () => {
    const { c } = CASES[1];
    const { cms } = setup(c, 60);
    const { x, y } = tensors(61, 2, 5);
    const base = { x, targets: y, loss: tokenSquaredError, params: cms.params(), spec: cms.opSpec() };
    let carried = cmsInContext({ ...base, state: null, clocks: null });
    tf.dispose([carried.y, carried.losses]);
    await expectNoLeakedTensors(() => {
      const r = cmsInContext({ ...base, state: carried.state, clocks: carried.clocks, flush: true });
      tf.dispose([r.y, r.losses, ...Object.values(carried.state)]);
      carried = r;
    }, { name: 'cmsInContext', iterations: 4 });
    await expectNoLeakedTensors(() => disposeResult(cmsInContextNaive({ ...base, state: carried.state, clocks: carried.clocks })), { name: 'naive', iterations: 2 });
    tf.dispose([x, y, ...Object.values(carried.state)]);
  });
});
