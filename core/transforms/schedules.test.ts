import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { expectNoLeakedTensors } from '../testing';
import { buildTransform, type TransformSpec } from './registry';
import { NlTransformOptimizer } from './optimizer';
import { readSchedule, scaleBySchedule, SCHEDULE_COUNT_KEY, scheduleValue, type Schedule } from './schedules';

/** The factor the transform applies at counts 0..n-1 (gradient 1 on a scalar parameter). */
function factors(s: Schedule, n: number): number[] {
  const t = scaleBySchedule(s);
  const p = { w: tf.scalar(0) };
  let state = t.init(p);
  const g = tf.scalar(1);
  const out: number[] = [];
  for (let i = 1; i <= n; i++) {
    const r = t.update({ w: g }, state, p, i);
    out.push(r.updates.w.dataSync()[0]);
    tf.dispose([state, r.updates] as unknown as tf.Tensor[]);
    state = r.state;
  }
  tf.dispose([p.w, g, state] as unknown as tf.Tensor[]);
  return out;
}

describe('core/transforms: learning-rate schedules (scaleBySchedule)', () => {
  it('closed forms: linear warm-up, cosine decay, constant with warm-up, warm-up + cosine (count starts at 0, as optax)', () => {
    const close = (a: number, b: number): void => {
      expect(Math.abs(a - b)).to.be.below(1e-7 + 1e-6 * Math.abs(b));
    };
    // linear {0 -> 1e-2 over 4 updates}: 0, 2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2
    [0, 2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2].forEach((v, c) => close(scheduleValue(readSchedule({ name: 'linear', init: 0, end: 1e-2, steps: 4 }), c), v));
    // begin: flat until 2
    expect(scheduleValue(readSchedule({ name: 'linear', init: 1, end: 0, steps: 2, begin: 2 }), 3)).to.equal(0.5);
    // cosine decay from 1 over 4 with floor alpha 0.1: 0.1 + 0.9 (1 + cos(pi c / 4)) / 2
    for (let c = 0; c <= 6; c++) close(scheduleValue(readSchedule({ name: 'cosineDecay', init: 1, steps: 4, alpha: 0.1 }), c), 0.1 + 0.45 * (1 + Math.cos((Math.PI * Math.min(c, 4)) / 4)));
    close(scheduleValue(readSchedule({ name: 'warmupConstant', peak: 3e-3, warmupSteps: 3 }), 1), 1e-3);
    close(scheduleValue(readSchedule({ name: 'warmupConstant', peak: 3e-3, warmupSteps: 3 }), 10), 3e-3);
    const wc = readSchedule({ name: 'warmupCosineDecay', peak: 2, warmupSteps: 2, steps: 6, end: 0.2 });
    [0, 1, 2, 0.2 + 0.9 * (1 + Math.cos(Math.PI / 4)), 1.1, 0.2 + 0.9 * (1 + Math.cos((3 * Math.PI) / 4)), 0.2, 0.2].forEach((v, c) => close(scheduleValue(wc, c), v));
    // the transform applies the same values (float32 on the device)
    for (const s of [wc, readSchedule({ name: 'cosineDecay', init: 1e-3, steps: 5 }), readSchedule({ name: 'constant', value: 0.5 }), readSchedule({ name: 'linear', init: 1, end: 3, steps: 3, begin: 1 })]) {
      const got = factors(s, 9);
      got.forEach((v, c) => expect(Math.abs(v - scheduleValue(s, c))).to.be.below(1e-6 * Math.max(1, Math.abs(scheduleValue(s, c))), `${s.name} count ${c}`));
    }
  });

  it('by name in a chain: chain(sgd lr 1, scaleBySchedule) == SGD with the scheduled learning rate', () => {
    const t = buildTransform({ transform: 'chain', config: { transforms: [{ transform: 'sgd', config: { learningRate: 1 } }, { transform: 'scaleBySchedule', config: { schedule: { name: 'warmupConstant', peak: 0.1, warmupSteps: 2 } } }] } });
    const p = { w: tf.tensor1d([1, 2]) };
    let state = t.init(p);
    expect(Object.keys(state)).to.deep.equal(['::1/schedule/count']);
    const g = tf.tensor1d([1, -1]);
    const got: number[][] = [];
    for (let i = 1; i <= 3; i++) {
      const r = t.update({ w: g }, state, p, i);
      got.push(Array.from(r.updates.w.dataSync()));
      tf.dispose([state, r.updates] as unknown as tf.Tensor[]);
      state = r.state;
    }
    expect(got.map((u) => u.map((v) => +v.toFixed(7) + 0))).to.deep.equal([[0, 0], [-0.05, 0.05], [-0.1, 0.1]]); // count 0: warm-up starts at 0
    tf.dispose([p.w, g, state] as unknown as tf.Tensor[]);
  });

  it('resume continues the schedule bit-exactly (getWeights/setWeights of NlTransformOptimizer, count in state)', async () => {
    const spec: TransformSpec = { transform: 'chain', config: { transforms: [{ transform: 'momentum', config: { learningRate: 1, beta: 0.9 } }, { transform: 'scaleBySchedule', config: { schedule: { name: 'warmupCosineDecay', peak: 0.05, warmupSteps: 3, steps: 10, end: 0.005 } } }] } } as never;
    const run = async (stopAt: number | null): Promise<Float32Array> => {
      const w = tf.variable(tf.tensor2d([[1, -2], [0.5, 3]]), true, `sched/w${stopAt ?? 'x'}`);
      let opt = new NlTransformOptimizer(spec);
      const loss = (): tf.Scalar => tf.sum(tf.square(tf.sub(w, tf.tensor2d([[0.3, 0.1], [-1, 2]])))) as tf.Scalar;
      for (let i = 0; i < 8; i++) {
        if (stopAt !== null && i === stopAt) {
          const saved = await opt.getWeights();
          const copies = saved.map((x) => ({ name: x.name, tensor: x.tensor.clone() }));
          opt.dispose();
          opt = new NlTransformOptimizer(spec); // a fresh process would rebuild it from the saved config
          await opt.setWeights(copies);
          expect(copies.map((c) => c.name)).to.include(SCHEDULE_COUNT_KEY.replace('::', '::1/'));
          tf.dispose(copies.map((c) => c.tensor));
        }
        tf.dispose(opt.minimize(loss, true) ?? []);
      }
      const out = w.dataSync().slice() as Float32Array;
      opt.dispose();
      w.dispose();
      return out;
    };
    const straight = await run(null);
    const resumed = await run(5);
    expect(Array.from(resumed)).to.deep.equal(Array.from(straight)); // bit-exact
  });

  it('no leaked tensors', async () => {
    const t = scaleBySchedule({ name: 'warmupCosineDecay', peak: 1, warmupSteps: 2, steps: 5 });
    const p = { w: tf.zeros([3]) };
    let state = t.init(p);
    const g = tf.ones([3]);
    let i = 1;
    await expectNoLeakedTensors(() => {
      const r = t.update({ w: g }, state, p, i++);
      tf.dispose([state, r.updates] as unknown as tf.Tensor[]);
      state = r.state;
    });
    tf.dispose([p.w, g, state] as unknown as tf.Tensor[]);
  });

  it('rejects bad schedules naming the field', () => {
    expect(() => readSchedule({ peak: 1 })).to.throw(/schedule\.name: is required/);
    expect(() => readSchedule({ name: 'exp' })).to.throw(/schedule\.name: must be one of 'constant', 'linear'/);
    expect(() => readSchedule({ name: 'warmupCosineDecay', peak: 1, warmupSteps: 5, steps: 5 })).to.throw(/schedule\.steps: must be > warmupSteps \(5\)/);
    expect(() => readSchedule({ name: 'cosineDecay', init: 1, steps: 0 })).to.throw(/schedule\.steps: must be an integer and >= 1/);
    expect(() => readSchedule({ name: 'constant', value: 1, peak: 2 })).to.throw(/peak/);
    expect(() => buildTransform({ transform: 'scaleBySchedule', config: {} })).to.throw(/scaleBySchedule\.schedule|config\.schedule/);
  });
});
