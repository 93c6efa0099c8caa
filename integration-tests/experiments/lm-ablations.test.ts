/**
 * The `lm` and `ablations` experiments: smoke runs through runExperiment (what `nl exp <name> --smoke`
 * calls) write the documented files without leaking tensors, and two smoke runs give the same rows
 * except the timing columns; the full-size families are parameter-matched within 5%; every ablation
 * switch changes the model's outputs (with identical weights where the switch keeps the parameters).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { EXPERIMENT_NAMES, getExperiment, markdownTable, runExperiment, type ResultFile } from '../../experiments';
import { ABLATIONS, ablationBlock, ablationOverrides, ablations, type AblationName } from '../../experiments/ablations';
import { LM_MODEL_SMOKE, TIMING_COLUMNS, buildLm, checkParamMatch, lm } from '../../experiments/lm';
import { tokenCrossEntropy } from '../../plugins/scheduler';
import { NestedTrainer } from '../../plugins/scheduler';

function withoutTimings(rows: ResultFile['rows']): ResultFile['rows'] {
  return rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !TIMING_COLUMNS.includes(k))));
}

describe('experiments lm and ablations (smoke sizes)', function () {
  this.timeout(120000);
  let out: string;
  before(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-exp-lm-'));
  });
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  it('registers lm and ablations', () => {
    expect(EXPERIMENT_NAMES).to.include.members(['lm', 'ablations']);
    expect(getExperiment('lm')).to.equal(lm);
    expect(getExperiment('ablations')).to.equal(ablations);
  });

  for (const name of ['lm', 'ablations']) {
    it(`${name} --smoke writes .json/.md/.svg with the documented structure, leaks nothing, and a second run gives the same rows (timings aside)`, async () => {
      const exp = getExperiment(name);
      const before = tf.memory().numTensors;
      const w = await runExperiment(exp, { smoke: true, out: path.join(out, 'a'), seed: 1 });
      expect(tf.memory().numTensors).to.equal(before);
      const j = JSON.parse(fs.readFileSync(w.json, 'utf8')) as ResultFile;
      expect(j.name).to.equal(name);
      expect(j.size).to.equal('smoke');
      expect(j.verdict).to.match(/^smoke size/);
      const cfg = j.config as { train: { steps: number; evalEvery: number; batchSize: number; seqLength: number }; seeds: number[]; corpora?: string[]; families?: unknown[]; ablations?: string[]; fullExtraSeeds?: number[] };
      const points = Math.ceil(cfg.train.steps / cfg.train.evalEvery);
      const cells = name === 'lm' ? cfg.seeds.length * cfg.corpora!.length * cfg.families!.length : cfg.seeds.length * cfg.ablations!.length + cfg.fullExtraSeeds!.length;
      expect(j.rows.length).to.equal(cells * points);
      for (const r of j.rows) {
        for (const c of j.columns) expect(r, `column ${c}`).to.have.property(c);
        expect(Number(r.valBpb)).to.be.greaterThan(0).and.lessThan(16); // ~8 bits per byte at init (ln 256 / ln 2)
        expect(r.tokens).to.equal(Number(r.step) * cfg.train.batchSize * cfg.train.seqLength);
      }
      expect(j.rows.filter((r) => r.final).length).to.equal(cells);
      const md = fs.readFileSync(w.md, 'utf8');
      expect(md).to.contain(`# ${exp.title}`);
      expect(md).to.contain(j.command);
      expect(md).to.contain(`runtime ${j.runtimeSeconds} s`);
      expect(md).to.contain(markdownTable(j.columns, j.rows));
      expect(md).to.contain(`](${name}.svg)`);
      const svg = fs.readFileSync(w.svg, 'utf8');
      expect(svg.startsWith('<svg')).to.equal(true);
      expect((svg.match(/<path|<rect/g) ?? []).length).to.be.greaterThan(j.rows.length);
      // reproducibility: the same command again gives the same rows except wall-clock timings
      const w2 = await runExperiment(exp, { smoke: true, out: path.join(out, 'b'), seed: 1 });
      expect(withoutTimings(w2.result.rows)).to.deep.equal(withoutTimings(j.rows));
      expect(tf.memory().numTensors).to.equal(before);
    });
  }

  it('the full-size families are parameter-matched within 5% (lm config), and the check refuses a mismatch', () => {
    const full = lm.config('full');
    const counts = checkParamMatch(full, true);
    const ref = counts.get('hope')!;
    expect(ref).to.be.within(40000, 60000);
    for (const [k, n] of counts) expect(Math.abs(n / ref - 1), k).to.be.lessThan(0.05);
    const bad = { ...full, families: full.families.map((f) => (f.kind === 'transformer' ? { ...f, ffnExpansion: 2 } : f)) };
    expect(() => checkParamMatch(bad, true)).to.throw(/families\[transformer\]\.ffnExpansion/);
  });
});

describe('ablation switches change the model', function () {
  this.timeout(60000);
  const cfg = { ...ablations.config('full'), model: LM_MODEL_SMOKE };
  const T = 48; // three CMS periods of 16
  const ids = tf.tensor2d(Int32Array.from({ length: 2 * T }, (_, i) => (i * 37 + 11) % 256), [2, T], 'int32');
  const tgt = tf.tensor2d(Int32Array.from({ length: 2 * T }, (_, i) => (i * 53 + 5) % 256), [2, T], 'int32');
  after(() => tf.dispose([ids, tgt]));

  /** Logits [2, T, 256] of one fresh context read with in-context learning (CMS updates at 16 and 32). */
  function outputs(a: AblationName, copyFrom?: tf.Variable[]): { y: tf.Tensor; vars: number[][]; params: number } {
    const model = buildLm(ablationBlock(cfg, a), cfg.model, 3);
    const trainer = new NestedTrainer(model.nested, { loss: tokenCrossEntropy, segmentLength: 16 });
    try {
      const vars = model.nested.trainableVariables();
      if (copyFrom) vars.forEach((v, i) => v.assign(copyFrom[i]));
      const r = trainer.memorize(ids, tgt, { newContext: true, collect: true });
      tf.dispose(r.tokenLosses ?? []);
      return { y: r.outputs!, vars: vars.map((v) => v.shape), params: model.countParams() };
    } finally {
      trainer.dispose();
      model.dispose();
    }
  }

  it('each switch gives outputs different from the full model; dgd and CMS periods with identical weights', () => {
    const before = tf.memory().numTensors;
    const fullModel = buildLm(ablationBlock(cfg, 'full'), cfg.model, 3);
    const fullVars = fullModel.nested.trainableVariables();
    const full = outputs('full', fullVars);
    try {
      for (const a of ABLATIONS.filter((x) => x !== 'full')) {
        const sameShapes = ['no-dgd', 'no-cms'].includes(a);
        const probe = buildLm(ablationBlock(cfg, a), cfg.model, 3);
        const shapes = probe.nested.trainableVariables().map((v) => v.shape);
        probe.dispose();
        if (sameShapes) expect(shapes, a).to.deep.equal(full.vars); // the switch keeps every parameter
        const r = outputs(a, sameShapes ? fullVars : undefined);
        if (!sameShapes) expect(r.params, `${a} changes the parameter set`).to.not.equal(full.params);
        const diff = tf.tidy(() => r.y.sub(full.y).abs().max().dataSync()[0]);
        expect(diff, `${a} output difference`).to.be.greaterThan(1e-5);
        if (a === 'no-cms') {
          // identical until the first CMS update (token 16), different after it: the only change is the in-context update
          const head = tf.tidy(() => r.y.slice([0, 0, 0], [-1, 16, -1]).sub(full.y.slice([0, 0, 0], [-1, 16, -1])).abs().max().dataSync()[0]);
          expect(head).to.be.lessThan(1e-6);
          expect(ablationOverrides('no-cms', cfg.model).cmsLevels!.every((l) => l.period === 0)).to.equal(true);
        }
        r.y.dispose();
      }
    } finally {
      full.y.dispose();
      fullModel.dispose();
    }
    expect(tf.memory().numTensors).to.equal(before);
  });
});
