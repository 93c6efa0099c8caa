import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../testing';
import { chain, clipByGlobalNorm, everyK, partition, scale, scaleByLearningRate } from './combinators';
import { momentum } from './momentum';
import { sgd } from './sgd';
import { runTransform } from './testing';
import type { GradientTransform } from './transform';

/** A stateless transform that records the step numbers and gradients it is given and returns -g. */
function spy(): GradientTransform & { steps: number[]; seen: number[][] } {
  const steps: number[] = [];
  const seen: number[][] = [];
  return {
    name: 'spy',
    config: {},
    steps,
    seen,
    init: () => ({}),
    update(grads, _s, _p, step) {
      steps.push(step);
      seen.push(Array.from(grads.w.dataSync()));
      return { updates: { w: grads.w.neg() }, state: {} };
    },
  };
}

describe('transforms/scale, scaleByLearningRate, clipByGlobalNorm', () => {
  it('scale multiplies, scaleByLearningRate flips the sign', () => {
    assertClose(runTransform(scale(3), { w: [0, 0] }, [{ w: [1, -2] }]).updates[0].w, [3, -6]);
    assertClose(runTransform(scaleByLearningRate(0.5), { w: [0, 0] }, [{ w: [1, -2] }]).updates[0].w, [-0.5, 1]);
    expect(() => scaleByLearningRate(-1)).to.throw(/scaleByLearningRate\.learningRate: must be .*>= 0, got -1/);
  });

  it('clips by the norm over all parameters together, and only when it exceeds maxNorm', () => {
    // a = [3], b = [4]: global norm 5 > 2.5 -> factor 0.5 -> [1.5], [2]
    const r = runTransform(clipByGlobalNorm(2.5), { a: [0], b: [0] }, [{ a: [3], b: [4] }]);
    assertClose(r.updates[0].a, [1.5]);
    assertClose(r.updates[0].b, [2]);
    // norm 5 <= 10: unchanged
    const s = runTransform(clipByGlobalNorm(10), { a: [0], b: [0] }, [{ a: [3], b: [4] }]);
    assertClose(s.updates[0].a, [3]);
    assertClose(s.updates[0].b, [4]);
    expect(() => clipByGlobalNorm(0)).to.throw(/clipByGlobalNorm\.maxNorm: must be a finite number and > 0, got 0/);
  });
});

describe('transforms/chain', () => {
  it('feeds each transform the previous updates: clip then sgd (hand-computed)', () => {
    // g = [3, 4] (norm 5) -> clip to 1 -> [0.6, 0.8] -> sgd 0.1 -> [-0.06, -0.08]
    // g = [0.3, 0.4] (norm 0.5 <= 1) -> unchanged -> [-0.03, -0.04]
    const r = runTransform(chain(clipByGlobalNorm(1), sgd({ learningRate: 0.1 })), { w: [0, 0] }, [{ w: [3, 4] }, { w: [0.3, 0.4] }]);
    assertClose(r.updates[0].w, [-0.06, -0.08]);
    assertClose(r.updates[1].w, [-0.03, -0.04]);
  });

  it('namespaces state per element and matches applying the pieces by hand', () => {
    // chain(momentum(lr=1, beta=0.5), scale(2)): u_t = 2 * m_t with m_t = 0.5 m_{t-1} - g_t.
    // g1 = [1]: m1 = -1, u1 = -2;  g2 = [2]: m2 = -0.5 - 2 = -2.5, u2 = -5.
    const r = runTransform(chain(momentum({ learningRate: 1, beta: 0.5 }), scale(2)), { w: [0] }, [{ w: [1] }, { w: [2] }]);
    assertClose(r.updates[0].w, [-2]);
    assertClose(r.updates[1].w, [-5]);
    expect(Object.keys(r.state)).to.deep.equal(['w::0/m']);
    assertClose(r.state['w::0/m'], [-2.5]);
    // Two momenta in one chain keep separate memories.
    const two = chain(momentum({ learningRate: 1, beta: 0.5 }), momentum({ learningRate: 1, beta: 0 }));
    const p = tf.tensor1d([0]);
    const s = two.init({ w: p });
    expect(Object.keys(s).sort()).to.deep.equal(['w::0/m', 'w::1/m']);
    tf.dispose([p, s]);
  });

  it('records its children in config', () => {
    const c = chain(clipByGlobalNorm(1), sgd({ learningRate: 0.1 }));
    expect(c.config).to.deep.equal({
      transforms: [
        { transform: 'clipByGlobalNorm', config: { maxNorm: 1 } },
        { transform: 'sgd', config: { learningRate: 0.1 } },
      ],
    });
    expect(() => chain()).to.throw(/chain: needs at least one transform/);
  });
});

describe('transforms/everyK', () => {
  it("reduce 'sum' (default): zero updates between boundaries, the sum of k gradients at each (hand-computed)", () => {
    // k = 2, inner sgd(lr=0.5)
    // step 1: g=[1,2]  -> acc [1,2],  u = [0,0]
    // step 2: g=[3,-1] -> acc [4,1],  u = -0.5*[4,1] = [-2,-0.5]; acc -> 0
    // step 3: g=[1,1]  -> acc [1,1],  u = [0,0]
    // step 4: g=[0,2]  -> acc [1,3],  u = [-0.5,-1.5]
    const r = runTransform(everyK(2, sgd({ learningRate: 0.5 })), { w: [0, 0] }, [
      { w: [1, 2] },
      { w: [3, -1] },
      { w: [1, 1] },
      { w: [0, 2] },
    ]);
    assertClose(r.updates[0].w, [0, 0]);
    assertClose(r.updates[1].w, [-2, -0.5]);
    assertClose(r.updates[2].w, [0, 0]);
    assertClose(r.updates[3].w, [-0.5, -1.5]);
    assertClose(r.params.w, [-2.5, -2]);
    assertClose(r.state['w::acc'], [0, 0]);
  });

  it("reduce 'mean' divides by k", () => {
    // k = 2: step 2 emits -0.5 * [4,1]/2 = [-1, -0.25]
    const r = runTransform(everyK(2, sgd({ learningRate: 0.5 }), { reduce: 'mean' }), { w: [0, 0] }, [{ w: [1, 2] }, { w: [3, -1] }]);
    assertClose(r.updates[1].w, [-1, -0.25]);
  });

  it('the inner transform advances once per boundary and sees its own step count', () => {
    // k = 3 over 7 steps: boundaries at 3 and 6, inner steps 1 and 2, inner grads = chunk sums.
    const s = spy();
    const gs = [1, 2, 3, 4, 5, 6, 7].map((v) => ({ w: [v] }));
    const r = runTransform(everyK(3, s), { w: [0] }, gs);
    expect(s.steps).to.deep.equal([1, 2]);
    expect(s.seen).to.deep.equal([[6], [15]]);
    expect(r.updates.map((u) => u.w[0])).to.deep.equal([0, 0, -6, 0, 0, -15, 0]);
    assertClose(r.state['w::acc'], [7]); // step 7 waits for the next boundary
  });

  it('inner momentum state is frozen between boundaries (hand-computed)', () => {
    // everyK(2, momentum(lr=1, beta=0.5)), g = 1 every step:
    // step 2: sum 2 -> m = -2, u = -2; step 3: u = 0, m stays -2; step 4: sum 2 -> m = -1 - 2 = -3, u = -3
    const r = runTransform(everyK(2, momentum({ learningRate: 1, beta: 0.5 })), { w: [0] }, [1, 1, 1, 1].map((v) => ({ w: [v] })));
    expect(r.updates.map((u) => u.w[0])).to.deep.equal([0, -2, 0, -3]);
    assertClose(r.state['w::inner/m'], [-3]);
  });

  it('rejects k < 1, non-integer k and bad reduce', () => {
    expect(() => everyK(0, sgd({ learningRate: 1 }))).to.throw(/everyK\.k: must be an integer and >= 1, got 0/);
    expect(() => everyK(1.5, sgd({ learningRate: 1 }))).to.throw(/everyK\.k/);
    expect(() => everyK(2, sgd({ learningRate: 1 }), { reduce: 'max' as never })).to.throw(/everyK\.reduce: must be one of 'sum', 'mean'/);
  });
});

describe('transforms/partition', () => {
  const byPrefix = (n: string): string => (n.startsWith('fast') ? 'fast' : 'slow');

  it('routes each parameter by name to its transform (hand-computed)', () => {
    // fastW: sgd lr 1 -> -g; slowW: momentum lr 0.1 beta 0.5.
    // step 1: g = [2] for both: fast u = -2; slow m = -0.2
    // step 2: g = [2]:          fast u = -2; slow m = -0.1 - 0.2 = -0.3
    const t = partition(byPrefix, { fast: sgd({ learningRate: 1 }), slow: momentum({ learningRate: 0.1, beta: 0.5 }) });
    const r = runTransform(t, { fastW: [0], slowW: [0] }, [
      { fastW: [2], slowW: [2] },
      { fastW: [2], slowW: [2] },
    ]);
    assertClose(r.updates[1].fastW, [-2]);
    assertClose(r.updates[1].slowW, [-0.3]);
    expect(Object.keys(r.state)).to.deep.equal(['slowW::slow/m']);
    assertClose(r.params.slowW, [-0.5]);
  });

  it('a clip inside one label sees only that label', () => {
    // fast: a=[3], b=[4] clipped to norm 1 -> [0.6], [0.8]; slow: c=[10] untouched by that clip.
    const t = partition((n) => (n === 'c' ? 'slow' : 'fast'), { fast: clipByGlobalNorm(1), slow: scale(1) });
    const r = runTransform(t, { a: [0], b: [0], c: [0] }, [{ a: [3], b: [4], c: [10] }]);
    assertClose(r.updates[0].a, [0.6]);
    assertClose(r.updates[0].b, [0.8]);
    assertClose(r.updates[0].c, [10]);
  });

  it('keeps the state of labels absent from a call', () => {
    const t = partition(byPrefix, { fast: sgd({ learningRate: 1 }), slow: momentum({ learningRate: 1, beta: 0.5 }) });
    const p = { fastW: tf.tensor1d([0]), slowW: tf.tensor1d([0]) };
    const s0 = t.init(p);
    const g = tf.tensor1d([1]);
    const r = t.update({ fastW: g }, s0, p, 1);
    expect(Object.keys(r.state)).to.deep.equal(['slowW::slow/m']);
    assertClose(r.state['slowW::slow/m'], [0]);
    tf.dispose([p, s0, g, r.updates, r.state]);
  });

  it('names a parameter whose label has no transform', () => {
    const t = partition(() => 'other', { fast: sgd({ learningRate: 1 }) });
    const p = tf.tensor1d([0]);
    expect(() => t.init({ w: p })).to.throw(/partition: parameter 'w' got label "other", which has no transform \(labels: fast\)/);
    p.dispose();
  });
});

describe('transforms/combinators: leaks', () => {
  it('chain(clip, partition(everyK(momentum), sgd)) keeps numTensors flat over many updates', async () => {
    const t = chain(
      clipByGlobalNorm(1),
      partition((n) => n, { a: everyK(3, momentum({ learningRate: 0.1 })), b: sgd({ learningRate: 0.1 }) }),
    );
    const params = { a: tf.ones([2, 3]), b: tf.ones([3]) };
    const grads = { a: tf.fill([2, 3], 0.5), b: tf.fill([3], -2) };
    let state = t.init(params);
    let step = 0;
    await expectNoLeakedTensors(
      () => {
        const r = t.update(grads, state, params, ++step);
        tf.dispose([state, r.updates]);
        state = r.state;
      },
      { warmup: 3, iterations: 12, name: 'combinators' },
    );
    tf.dispose([params, grads, state]);
  });
});
