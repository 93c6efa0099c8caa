import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../../core/testing';
import { NlAssociativeMemory } from '../associative-memory';
import { NlContinuumMemorySystem } from '../cms';
import { flatBlock, makeCms, randBlock, randMat, rng, type CmsCase } from '../cms/testing';
import { referenceRun, type Mat } from '../cms/testing';
import { NlLinearAttention } from '../linear-attention';
import { loadTrainerCheckpoint, saveTrainerCheckpoint } from './checkpoint';
import { tokenCrossEntropy, tokenSquaredError } from './losses';
import { NestedModel } from '../../core';
import { NestedTrainer, type ProgressEvent } from './trainer';

const D = 3;
const H = 4;
const TOL = { rtol: 2e-4, atol: 2e-6 };

function data(seed: number, b: number, t: number): { xs: Mat[]; ys: Mat[] } {
  const r = rng(seed);
  return { xs: Array.from({ length: b }, () => randMat(r, t, D, 1)), ys: Array.from({ length: b }, () => randMat(r, t, D, 1)) };
}

const CASE: CmsCase = { levels: [{ period: 2, learningRate: 0.1 }, { period: 0, learningRate: 0 }], variant: 'sequential', activation: 'tanh', residual: true, hidden: H };

/** A mixed stack: linear attention, associative memory, Dense, CMS. */
function mixedModel(seed: number): NestedModel {
  tf.util.shuffle; // (no global seeding in tfjs: weights come from the layers' initialisers)
  void seed;
  return new NestedModel([
    { layer: new NlLinearAttention({ numHeads: 1, rule: 'delta' }), residual: true },
    { layer: new NlAssociativeMemory({ objective: 'l2', eta: 0.3 }), residual: true },
    tf.layers.dense({ units: 4 }),
    new NlContinuumMemorySystem({ levels: [{ period: 2, learningRate: 0.05 }, { period: 4, learningRate: 0.05 }], expansion: 2 }),
  ]);
}

describe('plugin scheduler: NestedTrainer', () => {
  it('outer step: SGD on the first-order meta-gradient (sum of the gradients each level saw) / (B T)', () => {
    const r = rng(1);
    const init = [randBlock(r, D, H), randBlock(r, D, H)];
    const cms = makeCms(CASE, init, D);
    const lr = 0.5;
    const tr = new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError, optimizer: tf.train.sgd(lr) });
    const { xs, ys } = data(2, 2, 5);
    const x = tf.tensor3d(xs);
    const y = tf.tensor3d(ys);
    const res = tr.train(x, y);
    expect(res.outerStep).to.equal(true);
    const refs = [0, 1].map((b) => referenceRun(CASE, init, xs[b], ys[b]));
    const meanLoss = refs.flatMap((q) => q.losses).reduce((a, v) => a + v, 0) / 10;
    expect(res.loss).to.be.closeTo(meanLoss, 1e-4 * Math.abs(meanLoss));
    for (const l of [0, 1]) {
      // level 0 learns in context (period 2): its variable gets what its fast copies saw; level 1 (frozen) its plain gradient
      const want = flatBlock(init[l]).map((v, i) => v - (lr * (flatBlock(refs[0].seen[l])[i] + flatBlock(refs[1].seen[l])[i])) / 10);
      const got = [cms.variable(l, 'w1'), cms.variable(l, 'b1'), cms.variable(l, 'w2'), cms.variable(l, 'b2')].flatMap((v) => [...v.read().dataSync()]);
      assertClose(got, want, { ...TOL, name: `level ${l} initial weights after the outer step` });
    }
    tf.dispose([x, y]);
    tr.dispose();
  });

  it("gradientMode 'stop' leaves in-context levels' initial weights alone; accumulationSteps averages pieces", () => {
    const r = rng(3);
    const init = [randBlock(r, D, H), randBlock(r, D, H)];
    const cms = makeCms(CASE, init, D);
    const tr = new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError, optimizer: tf.train.sgd(1), gradientMode: 'stop', accumulationSteps: 2 });
    const a = data(4, 1, 4);
    const b = data(5, 1, 6);
    const run = (d: { xs: Mat[]; ys: Mat[] }) => {
      const x = tf.tensor3d(d.xs);
      const y = tf.tensor3d(d.ys);
      const out = tr.train(x, y);
      tf.dispose([x, y]);
      return out;
    };
    expect(run(a).outerStep).to.equal(false);
    assertClose(cms.variable(1, 'w1').read(), [init[1].w1], { name: 'no step after the first piece' });
    expect(run(b).outerStep).to.equal(true);
    assertClose(cms.variable(0, 'w1').read(), [init[0].w1], { name: "'stop': level 0 not meta-learned" });
    const ga = referenceRun(CASE, init, a.xs[0], a.ys[0]).seen[1];
    const gb = referenceRun(CASE, init, b.xs[0], b.ys[0]).seen[1];
    const want = flatBlock(init[1]).map((v, i) => v - (flatBlock(ga)[i] / 4 + flatBlock(gb)[i] / 6) / 2);
    const got = [cms.variable(1, 'w1'), cms.variable(1, 'b1'), cms.variable(1, 'w2'), cms.variable(1, 'b2')].flatMap((v) => [...v.read().dataSync()]);
    assertClose(got, want, { ...TOL, name: 'frozen level: mean of the two pieces' });
    expect(tr.outerSteps).to.equal(1);
    tr.dispose();
  });

  it('clipNorm bounds the global norm of the outer update', () => {
    const r = rng(6);
    const init = [randBlock(r, D, H), randBlock(r, D, H)];
    const cms = makeCms(CASE, init, D);
    const tr = new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError, optimizer: tf.train.sgd(1), clipNorm: 1e-3 });
    const { xs, ys } = data(7, 2, 4);
    const x = tf.tensor3d(xs);
    const y = tf.tensor3d(ys);
    tr.train(x, y);
    const before = init.flatMap(flatBlock);
    const after = [0, 1].flatMap((l) => [cms.variable(l, 'w1'), cms.variable(l, 'b1'), cms.variable(l, 'w2'), cms.variable(l, 'b2')].flatMap((v) => [...v.read().dataSync()]));
    const norm = Math.sqrt(after.reduce((a, v, i) => a + (v - before[i]) ** 2, 0));
    expect(norm).to.be.closeTo(1e-3, 1e-5);
    tf.dispose([x, y]);
    tr.dispose();
  });

  it('any stack of library layers: linear attention + associative memory + Dense + CMS trains, memorize/resetMemory, progress, no leaks', async () => {
    const model = mixedModel(1);
    const events: ProgressEvent[] = [];
    const tr = new NestedTrainer(model, { loss: tokenCrossEntropy, optimizer: tf.train.adam(0.01), onProgress: (e) => events.push(e) });
    // T = 8: segments of 2 tokens (NlAssociativeMemory cannot backpropagate a 1-token call, see README)
    const x = tf.randomNormal([2, 8, 4], 0, 1, 'float32', 3);
    const ids = tf.tensor2d([[0, 1, 2, 3, 0, 1, 2, 3], [3, 2, 1, 0, 3, 2, 1, 0]], [2, 8], 'int32');
    const r0 = tr.train(x, ids);
    expect(Number.isFinite(r0.loss)).to.equal(true);
    expect(events[0]).to.include({ kind: 'train', outerSteps: 1, tokens: 16, outerStep: true });
    expect(events[0].levelUpdatesFired).to.deep.equal({ [`${model.stages[3].layer.name}/level0`]: 4, [`${model.stages[3].layer.name}/level1`]: 2 });
    expect(events[0].tokensPerSecond).to.be.greaterThan(0);
    await expectNoLeakedTensors(() => tr.train(x, ids), { name: 'train', iterations: 3 });
    // test-time learning: memorize changes what predict() sees; resetMemory returns to the meta-learned state
    tr.resetMemory();
    const fresh = tr.predict(x);
    tr.memorize(x, ids);
    const adapted = tr.predict(x);
    expect(tf.max(tf.abs(adapted.sub(fresh))).dataSync()[0]).to.be.greaterThan(1e-5);
    tr.resetMemory();
    const again = tr.predict(x);
    assertClose(again, fresh, { rtol: 1e-6, atol: 1e-7, name: 'after resetMemory' });
    await expectNoLeakedTensors(() => { tr.memorize(x, ids); }, { name: 'memorize', iterations: 3 });
    tf.dispose([x, ids, fresh, adapted, again]);
    tr.dispose();
  });

  it("memorize(..., { flush: true }) applies a level's pending partial period at the end of the piece (a text shorter than the period changes the memory)", () => {
    const x = tf.randomNormal([1, 3, D], 0, 1, 'float32', 5);
    const y = tf.randomNormal([1, 3, D], 0, 1, 'float32', 6);
    const cms = new NlContinuumMemorySystem({ levels: [{ period: 4, learningRate: 0.5 }], expansion: 2 });
    const tr = new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError }); // partialChunk 'carry'
    const fresh = tr.predict(x);
    tr.memorize(x, y, { newContext: true }); // 3 tokens < period 4: the update stays pending
    expect(tr.levelClocks().map((c) => [c.updatesFired, c.tokensPending])).to.deep.equal([[0, 3]]);
    const carried = tr.predict(x);
    assertClose(carried, fresh, { rtol: 0, atol: 0, name: 'carry: memory unchanged' });
    tr.memorize(x, y, { newContext: true, flush: true });
    expect(tr.levelClocks().map((c) => [c.updatesFired, c.tokensPending])).to.deep.equal([[1, 0]]);
    const flushed = tr.predict(x);
    expect(tf.max(tf.abs(flushed.sub(fresh))).dataSync()[0]).to.be.greaterThan(1e-4);
    tf.dispose([x, y, fresh, carried, flushed]);
    tr.dispose();
    for (const w of cms.weights) w.dispose();
  });

  it('levels are data: ids <layer>/<level>, periods, variables; bad configs name the field', () => {
    const cms = new NlContinuumMemorySystem({ name: 'cmsA', levels: [{ period: 2, learningRate: 0.1 }, { period: 0 }], expansion: 1 });
    cms.build([null, null, 2]);
    const tr = new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError });
    const levels = tr.levels();
    expect(levels.map((l) => [l.id, l.period, l.learningRate])).to.deep.equal([['cmsA/level0', 2, 0.1], ['cmsA/level1', 0, 0.01]]);
    expect(levels[0].variables).to.have.length(4);
    expect(() => new NestedModel([cms, new NlContinuumMemorySystem({ name: 'cmsA' })])).to.throw('NestedModel.stages[1].layer: duplicate layer name');
    expect(() => new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError, partialChunk: 'drop' as never })).to.throw('NestedTrainer.options.partialChunk');
    expect(() => new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError, segmentLength: 0 })).to.throw('NestedTrainer.options.segmentLength');
    expect(() => new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError, gradientMode: 'half' as never })).to.throw('NestedTrainer.options.gradientMode');
    const x = tf.zeros([1, 2, 2]);
    expect(() => tr.train(x, x)).to.throw('NestedTrainer.options.optimizer: is required');
    x.dispose();
    // overlapping level ids / variables between two learners (a layer that reports duplicate ids)
    const dup = new NlContinuumMemorySystem({ name: 'dup', levels: [{ period: 2 }] });
    dup.build([null, null, 2]);
    const orig = dup.contextLevels.bind(dup);
    (dup as unknown as { contextLevels: () => unknown }).contextLevels = () => [...orig(), ...orig()];
    expect(() => new NestedTrainer(new NestedModel([dup]), { loss: tokenSquaredError }).levels()).to.throw("levels[1].id: duplicate id 'dup/level0'");
  });

  it('checkpoint mid-context (pending chunk, pending outer gradients, Adam state): resuming gives the same next losses', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-ckpt-'));
    const r = rng(8);
    const cmsCase: CmsCase = { levels: [{ period: 3, learningRate: 0.1, momentum: 0.5 }, { period: 5, learningRate: 0.05 }], variant: 'nested', activation: 'tanh', residual: true, hidden: H, transforms: [{ transform: 'momentum', config: { learningRate: 1, beta: 0.5 } }] };
    const init = [randBlock(r, D, H), randBlock(r, D, H)];
    const build = (): NestedTrainer => {
      const la = new NlLinearAttention({ numHeads: 1, rule: 'delta' });
      la.build([null, null, D]);
      return new NestedTrainer(new NestedModel([{ layer: la, residual: true }, makeCms(cmsCase, init, D)]), {
        loss: tokenSquaredError,
        optimizer: tf.train.adam(0.01),
        accumulationSteps: 2,
      });
    };
    const pieces = [4, 7, 5, 6, 3].map((t, i) => data(30 + i, 2, t));
    const step = (tr: NestedTrainer, i: number): number => {
      const x = tf.tensor3d(pieces[i].xs);
      const y = tf.tensor3d(pieces[i].ys);
      const l = tr.train(x, y, { newContext: i === 0 }).loss;
      tf.dispose([x, y]);
      return l;
    };
    const a = build();
    // same linear-attention weights in both runs
    const b = build();
    b.model.stages[0].layer.setWeights(a.model.stages[0].layer.getWeights());
    for (let i = 0; i < 3; i++) step(a, i); // outer step after piece 2; piece 3 pending; context open at 16 tokens
    await saveTrainerCheckpoint(a, dir);
    const cont = [3, 4].map((i) => step(a, i));
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['checkpoint.json', 'tensors.bin']);
    await loadTrainerCheckpoint(b, dir);
    expect(b.levelClocks().map((c) => [c.tokensSeen, c.updatesFired, c.tokensPending])).to.deep.equal([[16, 5, 1], [16, 3, 1]]);
    const resumed = [3, 4].map((i) => step(b, i));
    assertClose(resumed, cont, { rtol: 1e-5, atol: 1e-7, name: 'losses after resume' });
    assertClose(b.model.stages[1].layer.getWeights()[0], a.model.stages[1].layer.getWeights()[0], { rtol: 1e-5, atol: 1e-7, name: 'weights after resume' });
    a.dispose();
    b.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
