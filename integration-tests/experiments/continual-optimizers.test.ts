/**
 * The continual-learning and optimizer experiments (issue 7 items 6 and 7) at their smoke sizes through
 * `runExperiment` (what `nl exp <name> --smoke` runs): files, row structure, value ranges, no leaked
 * tensors; plus the plumbing they rest on: CMS with every level at the piece period == the plain MLP
 * trained by SGD (the experiment's baseline equivalence), the EWC penalty step against its formula,
 * the forgetting metric on a hand matrix, period schedules, parameter matching.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { getExperiment, markdownTable, runExperiment, type ResultFile } from '../../experiments';
import {
  EwcSgd, accuracies, averageAccuracy, averageForgetting, buildContinualNet, disposeContinualNet, geometricPeriods, trainPiece,
} from '../../experiments/continual-mnist';
import { hopeTinyConfig, matchedExpansion, transformerConfig } from '../../experiments/continual-lm';
import { digitExamples } from '../../experiments/mnist-data';
import { scaleSpec } from '../../experiments/optimizers';
import { LanguageModel } from '../../plugins/hope';

function smokeChecks(name: string, w: { json: string; md: string; svg: string }, out: string): ResultFile {
  const j = JSON.parse(fs.readFileSync(w.json, 'utf8')) as ResultFile;
  expect(j.name).to.equal(name);
  expect(j.size).to.equal('smoke');
  expect(j.command).to.equal(`nl exp ${name} --smoke --out ${out}`);
  expect(j.runtimeSeconds).to.be.greaterThan(0);
  expect(j.verdict).to.match(/^smoke size/);
  for (const r of j.rows) for (const c of j.columns) expect(r, `${name} column ${c}`).to.have.property(c);
  const md = fs.readFileSync(w.md, 'utf8');
  expect(md).to.contain(markdownTable(j.columns, j.rows));
  expect(md).to.contain(j.summary);
  expect(md).to.contain(`](${name}.svg)`);
  const svg = fs.readFileSync(w.svg, 'utf8');
  expect(svg.startsWith('<svg')).to.equal(true);
  expect((svg.match(/<path|<rect/g) ?? []).length).to.be.greaterThan(j.rows.length / 4);
  return j;
}

describe('experiments: continual-mnist, continual-lm, optimizers (smoke sizes)', function () {
  this.timeout(180000);
  let out: string;
  before(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-exp-co-'));
  });
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  it('continual-mnist --smoke: a T x T accuracy matrix per model, accuracies in [0, 1], no leaked tensors', async () => {
    const before = tf.memory().numTensors;
    const w = await runExperiment(getExperiment('continual-mnist'), { smoke: true, out, seed: 1 });
    expect(tf.memory().numTensors).to.equal(before);
    const j = smokeChecks('continual-mnist', w, out);
    const cfg = j.config as { tasks: number[][] };
    const T = cfg.tasks.length;
    const runs = [...new Set(j.rows.map((r) => String(r.run)))];
    expect(runs).to.include.members(['mlp k2', 'cms k2 P10']);
    expect(runs.some((r) => r.startsWith('ewc'))).to.equal(true);
    for (const run of runs) {
      const rs = j.rows.filter((r) => r.run === run);
      expect(rs.length, run).to.equal(T * T);
      for (const r of rs) {
        expect(Number(r.accuracy)).to.be.within(0, 1);
        expect(Number(r.taskIlAccuracy)).to.be.within(0, 1);
      }
    }
    // params matched between the plain MLP and the CMS model of the same k
    const p = (run: string): unknown => j.rows.find((r) => r.run === run)!.params;
    expect(p('mlp k2')).to.equal(p('cms k2 P10'));
    expect(j.summary).to.match(/avg forgetting/);
  });

  it('continual-lm --smoke: 5 bpb rows per kind (3 stages on A, 2 on B), finite and near 8 bits at this size', async () => {
    const before = tf.memory().numTensors;
    const w = await runExperiment(getExperiment('continual-lm'), { smoke: true, out, seed: 1 });
    expect(tf.memory().numTensors).to.equal(before);
    const j = smokeChecks('continual-lm', w, out);
    for (const kind of ['hope', 'transformer']) {
      const rs = j.rows.filter((r) => r.kind === kind);
      expect(rs.map((r) => `${r.stage}|${String(r.corpus)[0]}`)).to.deep.equal(['1 after A|A', '1 after A|B', '2 after B|A', '2 after B|B', '3 after B + memorize A|A']);
      for (const r of rs) expect(Number(r.bpb)).to.be.within(5, 9); // 1-2 training steps: close to uniform (8 bits)
    }
  });

  it('optimizers --smoke: MNIST and hope-tiny curves for every optimizer, toy log10 psi rows, no leaked tensors', async () => {
    const before = tf.memory().numTensors;
    const w = await runExperiment(getExperiment('optimizers'), { smoke: true, out, seed: 1 });
    expect(tf.memory().numTensors).to.equal(before);
    const j = smokeChecks('optimizers', w, out);
    const opts = ['m3', 'm3Ema', 'm3BeforeNs', 'adamw', 'muon', 'dmgd', 'deltaMomentum'];
    for (const part of ['mnist-mlp', 'hope-tiny']) {
      expect([...new Set(j.rows.filter((r) => r.part === part).map((r) => r.optimizer))].sort(), part).to.deep.equal([...opts].sort());
    }
    for (const r of j.rows.filter((x) => x.part === 'mnist-mlp' && x.metric === 'test accuracy')) expect(Number(r.value)).to.be.within(0, 1);
    const toy = j.rows.filter((r) => r.part === 'figure-4 toy');
    expect(toy.filter((r) => r.step === 0).map((r) => r.value)).to.have.length(5);
    // psi(-3.5, 2) = 12.25 + 10 (-5.5 + 0.5 sin(-10.5))^2 (hand value), the same start for every variant
    const psi0 = 12.25 + 10 * Math.pow(-5.5 + 0.5 * Math.sin(-10.5), 2);
    for (const r of toy.filter((x) => x.step === 0)) expect(Number(r.value)).to.be.closeTo(Math.log10(psi0), 1e-3);
    expect(toy.find((r) => String(r.optimizer).startsWith('delta momentum (raw'))!.stepsToMinimum).to.equal(-1); // Eq. 49 raw key diverges (toy.test.ts)
  });
});

describe('continual-mnist plumbing', function () {
  this.timeout(60000);
  const cfg = { dModel: 8, hidden: 8, learningRate: 0.1 };

  it('CMS with every level at the piece period and eta = lr / period == the plain MLP trained by outer SGD (losses and accuracies), no leaks', async () => {
    const data = digitExamples([0, 1], 0, 10); // 20 examples
    const test = digitExamples([0, 1], 600, 5);
    const batch = 5;
    const mlp = buildContinualNet({ method: 'mlp', periods: [0, 0], variant: 'sequential', lambda: null }, cfg, 3);
    const cms = buildContinualNet({ method: 'cms', periods: [batch, batch], variant: 'sequential', lambda: null }, cfg, 3);
    try {
      expect(cms.params).to.equal(mlp.params);
      const n0 = tf.memory().numTensors;
      const lm: number[] = [];
      const lc: number[] = [];
      const order = [3, 17, 5, 11, 0, 19, 8, 2, 14, 7, 1, 12, 4, 16, 9, 18, 6, 13, 10, 15];
      for (let rep = 0; rep < 3; rep++) {
        for (let b = 0; b < 20; b += batch) {
          const idx = order.slice(b, b + batch);
          lm.push(trainPiece(mlp, data, idx, rep === 0 && b === 0));
          lc.push(trainPiece(cms, data, idx, rep === 0 && b === 0));
        }
      }
      for (let i = 0; i < lm.length; i++) expect(lc[i], `piece ${i}`).to.be.closeTo(lm[i], 1e-4);
      expect(lm[lm.length - 1]).to.be.lessThan(lm[0]); // it learns
      const am = await accuracies(mlp, [test]);
      const ac = await accuracies(cms, [test]);
      expect(ac[0]).to.equal(am[0]);
      // flat over more pieces (optimizer and context state exist from the first piece on)
      const n1 = tf.memory().numTensors;
      for (let b = 0; b < 20; b += batch) trainPiece(cms, data, order.slice(b, b + batch), false);
      expect(tf.memory().numTensors).to.equal(n1);
      expect(n1).to.be.at.least(n0);
    } finally {
      disposeContinualNet(mlp);
      disposeContinualNet(cms);
    }
  });

  it('EWC: with a zero task gradient one step moves theta by -lr lambda sum_t F_t (theta - theta*_t); lambda 0 is SGD', () => {
    const v = tf.variable(tf.tensor1d([1, -2, 3]), true, 'ewc_test_v');
    const opt = new EwcSgd(0.1, 2);
    const opt0 = new EwcSgd(0.1, 0);
    try {
      const f1 = new Map([[v.name, tf.tensor1d([0.5, 1, 0])]]);
      opt.consolidate([v], f1); // theta*_1 = [1, -2, 3]
      v.assign(tf.tensor1d([2, 0, 5]));
      const f2 = new Map([[v.name, tf.tensor1d([1, 0, 2])]]);
      opt.consolidate([v], f2); // theta*_2 = [2, 0, 5]
      v.assign(tf.tensor1d([3, 1, 4]));
      const g = tf.zeros([3]);
      opt.applyGradients({ [v.name]: g });
      // penalty grad = lambda (F1 (theta - t1) + F2 (theta - t2)) = 2 ([0.5*2, 1*3, 0] + [1*1, 0, 2*(-1)]) = [4, 6, -4]
      const expected = [3 - 0.1 * 4, 1 - 0.1 * 6, 4 - 0.1 * -4];
      const got = Array.from(v.dataSync());
      got.forEach((x, i) => expect(x).to.be.closeTo(expected[i], 1e-6));
      const g2 = tf.tensor1d([1, 1, 1]);
      opt0.applyGradients({ [v.name]: g2 });
      Array.from(v.dataSync()).forEach((x, i) => expect(x).to.be.closeTo(expected[i] - 0.1, 1e-6));
      tf.dispose([g, g2, ...f1.values(), ...f2.values()]);
    } finally {
      opt.dispose();
      opt0.dispose();
      v.dispose();
    }
  });

  it('average accuracy / forgetting on a hand matrix; geometric periods; spec scaling', () => {
    const acc = [
      [0.9, 0.0, 0.0],
      [0.5, 0.8, 0.0],
      [0.2, 0.6, 0.7],
    ];
    expect(averageAccuracy(acc)).to.be.closeTo(0.5, 1e-12);
    expect(averageForgetting(acc)).to.be.closeTo(((0.9 - 0.2) + (0.8 - 0.6)) / 2, 1e-12);
    expect(geometricPeriods(1, 10, 1000)).to.deep.equal([10]);
    expect(geometricPeriods(3, 10, 1000)).to.deep.equal([10, 100, 1000]);
    expect(geometricPeriods(2, 10, 1000)).to.deep.equal([10, 1000]);
    expect(scaleSpec({ transform: 'm3', config: { learningRate: 0.001, adamLearningRate: 0.003, frequency: 4 } }, 3)).to.deep.equal({ transform: 'm3', config: { learningRate: 0.003, adamLearningRate: 0.009, frequency: 4 } });
  });

  it('continual-lm: the Transformer++ expansion matches hope-tiny parameters within 1%', () => {
    const hope = new LanguageModel(hopeTinyConfig());
    const target = hope.countParams();
    hope.dispose();
    const tr = new LanguageModel(transformerConfig(matchedExpansion(target)));
    const p = tr.countParams();
    tr.dispose();
    expect(Math.abs(p - target) / target).to.be.lessThan(0.01);
  });
});
