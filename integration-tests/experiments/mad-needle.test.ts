/**
 * The `mad-<task>` and `needle` experiments: smoke runs through `runExperiment` (files, structure, no leaked
 * tensors) and the data generators against hand-worked examples and an independent recogniser
 * (mad expectedLabels; a regex over the needle text).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { EXPERIMENT_NAMES, getExperiment, markdownTable, runExperiment, type ResultFile } from '../../experiments';
import { MAD_TASKS, buildConvModel, expectedLabels, generate, madExperiment, memorizationMap, taskVocab, type TaskSizes } from '../../experiments/mad';
import { FILLER, NEEDLE_TYPES, VOCAB, answerTokens, evalNeedles, needleSequence } from '../../experiments/needle';
import { disposeModel, evalBatch, leftPad, rng } from '../../experiments/models';

describe('mad and needle experiments (smoke sizes)', function () {
  this.timeout(120000);
  let out: string;
  before(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-exp-mn-'));
  });
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  const MAD_NAMES = MAD_TASKS.map((t) => `mad-${t}`);
  it('registers one mad experiment per task and needle', () => {
    expect(EXPERIMENT_NAMES).to.include.members([...MAD_NAMES, 'needle']);
  });

  for (const name of [...MAD_NAMES, 'needle']) {
    it(`${name} --smoke writes .json, .md and .svg with the documented structure, without leaking tensors`, async () => {
      const exp = getExperiment(name);
      const before = tf.memory().numTensors;
      const w = await runExperiment(exp, { smoke: true, out, seed: 1 });
      expect(tf.memory().numTensors).to.equal(before);
      const j = JSON.parse(fs.readFileSync(w.json, 'utf8')) as ResultFile;
      expect(j.name).to.equal(name);
      expect(j.size).to.equal('smoke');
      expect(j.command).to.equal(`nl exp ${name} --smoke --out ${out}`);
      expect(j.verdict).to.match(/^smoke size/);
      const cfg = j.config as { kinds: string[]; tasks?: string[]; types?: string[]; testLengths?: number[] };
      const cells = name.startsWith('mad-') ? cfg.tasks!.length : cfg.types!.length * cfg.testLengths!.length;
      expect(j.rows.length).to.equal(cfg.kinds.length * cells); // one row per (kind, task) or (kind, type, length)
      for (const r of j.rows) {
        for (const c of j.columns) expect(r, `column ${c}`).to.have.property(c);
        expect(Number(r.accuracy ?? r.exactMatch)).to.be.within(0, 1);
        if (name === 'needle') expect(Number(r.exactMatch)).to.be.at.most(Number(r.charAccuracy)); // all chars right implies each char right
      }
      const md = fs.readFileSync(w.md, 'utf8');
      expect(md).to.contain(`# ${exp.title}`);
      expect(md).to.contain(`runtime ${j.runtimeSeconds} s`);
      expect(md).to.contain(markdownTable(j.columns, j.rows));
      const svg = fs.readFileSync(w.svg, 'utf8');
      expect(svg.startsWith('<svg')).to.equal(true);
      expect((svg.match(/<path|<rect/g) ?? []).length).to.be.greaterThan(j.rows.length);
    });
  }
});

const S: TaskSizes = {
  recallKeys: 3,
  recallValues: 3,
  recallPairs: 5,
  fuzzyVocab: 3,
  fuzzyMaxLen: 2,
  fuzzyPairs: 2,
  fuzzyQueries: 2,
  copyVocab: 3,
  copyTokens: 3,
  copyContext: 6,
  memKeys: 4,
  memValues: 2,
  memPerSeq: 2,
  compVocab: 3,
  compLength: 3,
};

describe('mad task data', () => {
  // Token ids: PAD 0, BOS 1, SEP 2, BLANK 3, content from 4.
  it('the recogniser gives the hand-worked labels of each task', () => {
    // keys 4,5,6 values 7,8,9: key 4 recurs at 5 (value 7), key 5 recurs at 9 (value 9)
    expect(expectedLabels('in-context-recall', [1, 4, 7, 5, 9, 4, 7, 6, 8, 5, 9], S)).to.deep.equal([{ pos: 5, label: 7 }, { pos: 9, label: 9 }]);
    // store "4 5"->[7], "6"->[8 9]; queries 6 -> 8 9 (labels at 8, 9), then 4 5 -> 7 (label at 12)
    expect(expectedLabels('fuzzy-recall', [1, 4, 5, 7, 6, 8, 9, 2, 6, 8, 9, 4, 5, 7], S)).to.deep.equal([{ pos: 8, label: 8 }, { pos: 9, label: 9 }, { pos: 12, label: 7 }]);
    // data 5 4 5 among BLANKs; SEP at 7
    expect(expectedLabels('selective-copying', [1, 3, 5, 3, 3, 4, 5, 2, 5, 4, 5], S)).to.deep.equal([{ pos: 7, label: 5 }, { pos: 8, label: 4 }, { pos: 9, label: 5 }]);
    // keys 4..7, values 8, 9, map [1, 0, 0, 1]: key 6 -> 8, key 4 -> 9
    expect(expectedLabels('memorization', [1, 6, 3, 4, 3], S, [1, 0, 0, 1])).to.deep.equal([{ pos: 2, label: 8 }, { pos: 4, label: 9 }]);
    // x = 6 4 4; position tokens 7, 8, 9 = p_0, p_1, p_2
    expect(expectedLabels('compression', [1, 6, 4, 4, 2, 8, 9, 7], S)).to.deep.equal([{ pos: 5, label: 4 }, { pos: 6, label: 4 }, { pos: 7, label: 6 }]);
  });

  it('every generator agrees with the recogniser, stays in its vocabulary and labels only answer tokens', () => {
    for (const sizes of [S, madExperiment('in-context-recall').config('full').task]) {
      const map = memorizationMap(3, sizes);
      const r = rng(11);
      for (const task of MAD_TASKS) {
        const { vocab, answers } = taskVocab(task, sizes);
        let labelled = 0;
        for (let i = 0; i < 60; i++) {
          const e = generate(task, r, sizes, map);
          expect(e.labels, `${task} ${e.ids}`).to.deep.equal(expectedLabels(task, e.ids, sizes, map));
          for (const t of e.ids) expect(t).to.be.within(1, vocab - 1);
          for (const l of e.labels) {
            expect(answers).to.include(l.label);
            expect(l.pos).to.be.lessThan(e.ids.length);
          }
          labelled += e.labels.length;
        }
        expect(labelled, task).to.be.greaterThan(60);
      }
    }
  });

  it('labels sit where the answer follows: selective copying / fuzzy recall predict the next token; memorization uses one map', () => {
    const full = madExperiment('in-context-recall').config('full').task;
    const r = rng(5);
    for (const task of ['selective-copying', 'fuzzy-recall'] as const) {
      for (let i = 0; i < 20; i++) {
        const e = generate(task, r, full, []);
        for (const l of e.labels) expect(e.ids[l.pos + 1]).to.equal(l.label); // teacher forced: the label is the next token
      }
    }
    expect(memorizationMap(1, full)).to.deep.equal(memorizationMap(1, full));
    expect(memorizationMap(1, full)).to.not.deep.equal(memorizationMap(2, full));
  });
});

/** Independent recogniser: the answer written in the haystack's needle sentence. */
function needleInText(text: string): string | null {
  const m = /(?:pass key|magic number|magic uuid) is: ([0-9a-f]+)\./.exec(text);
  return m ? m[1] : null;
}

describe('needle data', () => {
  it('the recogniser reads a hand-written haystack', () => {
    expect(needleInText('The sky is blue. The pass key is: 48213. Remember it. Here we go. What is the pass key? The pass key is: 48213')).to.equal('48213');
    expect(needleInText('The sky is blue. Here we go.')).to.equal(null);
  });

  it('sequences have the exact length, one needle, the question at the end and the answer labelled', () => {
    const r = rng(9);
    const depths: number[] = [];
    for (const type of NEEDLE_TYPES) {
      for (const len of [110, 256, 1024, 4096]) {
        for (let i = 0; i < 5; i++) {
          const e = needleSequence(r, type, len);
          expect(e.ids.length).to.equal(len);
          for (const t of e.ids) expect(t).to.be.within(1, VOCAB - 1);
          const text = String.fromCharCode(...e.ids.slice(1));
          expect(needleInText(text), text).to.equal(e.answer);
          expect(text.endsWith(`is: ${e.answer}`)).to.equal(true);
          expect(text.split('is: ').length - 1).to.equal(2); // needle + question, nowhere else
          expect(String.fromCharCode(...e.ids.slice(e.needleAt, e.needleAt + 4))).to.equal('The ');
          const answerAlphabet = answerTokens(type);
          expect(e.labels.map((l) => String.fromCharCode(l.label)).join('')).to.equal(e.answer);
          for (const l of e.labels) {
            expect(e.ids[l.pos + 1]).to.equal(l.label);
            expect(answerAlphabet).to.include(l.label);
          }
          if (len === 4096) depths.push(e.needleAt / len);
        }
      }
    }
    expect(Math.min(...depths)).to.be.lessThan(0.4); // the needle moves through the haystack
    expect(Math.max(...depths)).to.be.greaterThan(0.6);
    for (const f of FILLER) expect(/[0-9:]/.test(f), f).to.equal(false);
    expect(() => needleSequence(r, 'number', 60)).to.throw(/length 60 too short/);
  });

  it('evalNeedles counts the same correct characters as models.ts evalBatch, and nothing leaks', async () => {
    const m = buildConvModel('deltanet', VOCAB, { dModel: 8, numHeads: 2, numBlocks: 1, chunkSize: 8, shortConv: 4 }, 1e-2, 3);
    try {
      const r = rng(4);
      const seqs = [needleSequence(r, 'uuid', 120), needleSequence(r, 'uuid', 120)];
      const before = tf.memory().numTensors;
      const a = await evalNeedles(m, seqs, answerTokens('uuid'));
      const b = await evalBatch(m, leftPad(seqs, 0), VOCAB, answerTokens('uuid'));
      expect(tf.memory().numTensors).to.equal(before);
      expect({ correct: a.correctLabels, total: a.labels }).to.deep.equal(b);
      expect(a.exact).to.be.within(0, 2);
    } finally {
      disposeModel(m);
    }
  });
});
