/**
 * Every experiment at its smoke size, through `runExperiment` (what `nl exp <name> --smoke` calls):
 * output files exist and have the documented structure; plus the data generators' invariants
 * (labels agree with hand-written members / non-members, balance, MQAR labels) and leak / determinism checks.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { Command } from 'commander';
import { EXPERIMENT_NAMES, getExperiment, markdownTable, runExperiment, type ResultFile } from '../../experiments';
import { LANGUAGES, acceptsString, sampleString } from '../../experiments/formal-languages';
import { mqarSequence } from '../../experiments/mqar';
import { buildModel, disposeModel, evalBatch, leftPad, rng, trainStep } from '../../experiments/models';
import { registerExp } from '../../cli/exp';

describe('experiments (smoke sizes)', function () {
  this.timeout(120000);
  let out: string;
  before(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-exp-'));
  });
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  it('registers formal-languages and mqar and refuses an unknown name, naming the known ones', () => {
    expect(EXPERIMENT_NAMES).to.include.members(['formal-languages', 'mqar']);
    expect(() => getExperiment('nope')).to.throw(/unknown experiment 'nope'.*formal-languages/);
  });

  for (const name of ['formal-languages', 'mqar']) {
    it(`${name} --smoke writes .json, .md and .svg with the documented structure, without leaking tensors`, async () => {
      const exp = getExperiment(name);
      const before = tf.memory().numTensors;
      const w = await runExperiment(exp, { smoke: true, out, seed: 1 });
      expect(tf.memory().numTensors).to.equal(before);
      const j = JSON.parse(fs.readFileSync(w.json, 'utf8')) as ResultFile;
      expect(j.name).to.equal(name);
      expect(j.size).to.equal('smoke');
      expect(j.command).to.equal(`nl exp ${name} --smoke --out ${out}`);
      expect(Number.isNaN(Date.parse(j.date))).to.equal(false);
      expect(j.runtimeSeconds).to.be.a('number').and.be.greaterThan(0);
      expect(j.rows.length).to.be.greaterThan(0);
      for (const r of j.rows) {
        for (const c of j.columns) expect(r, `column ${c}`).to.have.property(c);
        const acc = Number(r.accuracy ?? r.testLong);
        expect(acc).to.be.within(0, 1);
      }
      // one row per (kind, language) or (kind, pairs) of the smoke config
      const cfg = j.config as { kinds: string[]; languages?: string[]; testPairs?: number[] };
      expect(j.rows.length).to.equal(cfg.kinds.length * (cfg.languages?.length ?? cfg.testPairs!.length));
      expect(j.verdict).to.match(/^smoke size/);
      const md = fs.readFileSync(w.md, 'utf8');
      expect(md).to.contain(`# ${exp.title}`);
      expect(md).to.contain(j.command);
      expect(md).to.contain(j.date);
      expect(md).to.contain(`runtime ${j.runtimeSeconds} s`);
      expect(md).to.contain(markdownTable(j.columns, j.rows)); // the full table, row for row
      expect(md).to.contain(`](${name}.svg)`);
      const svg = fs.readFileSync(w.svg, 'utf8');
      expect(svg.startsWith('<svg')).to.equal(true);
      expect(svg).to.contain(exp.plot.title.slice(0, 20));
      expect((svg.match(/<path|<rect/g) ?? []).length).to.be.greaterThan(j.rows.length); // marks drawn
    });
  }

  it('nl exp (commander) runs the smoke size into --out and prints the files', async () => {
    const cmd = registerExp(new Command('nl').option('--backend <name>').exitOverride());
    const log = console.log;
    const err = console.error;
    let printed = '';
    console.log = (...a: unknown[]): void => {
      printed += a.join(' ');
    };
    console.error = (): void => {};
    const dir = path.join(out, 'cli');
    try {
      await cmd.parseAsync(['node', 'nl', '--backend', tf.getBackend(), 'exp', 'mqar', '--smoke', '--out', dir]);
    } finally {
      console.log = log;
      console.error = err;
    }
    const res = JSON.parse(printed) as { files: string[] };
    expect(res.files.map((f) => path.basename(f)).sort()).to.deep.equal(['mqar.json', 'mqar.md', 'mqar.svg']);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'mqar.json'), 'utf8')).command).to.equal(`nl exp mqar --smoke --out ${dir}`);
  });
});

describe('experiment data and plumbing', () => {
  it('formal-language recognisers agree with hand-written members and non-members', () => {
    const cases: Array<[string, number[], boolean]> = [
      ['parity', [1, 0, 1], true],
      ['parity', [1, 1, 1, 0], false],
      ['(aa)*', [0, 0, 0, 0], true],
      ['(aa)*', [0, 0, 0], false],
      ['(abab)*', [0, 1, 0, 1, 0, 1, 0, 1], true],
      ['(abab)*', [0, 1, 0, 1, 0, 1], false],
      ['(abab)*', [0, 1, 1, 1], false],
      ['a^n b^n', [0, 0, 0, 1, 1, 1], true],
      ['a^n b^n', [0, 0, 1, 1, 1], false],
      ['a^n b^n', [0, 1, 0, 1], false],
      ['a^n b^n c^n', [0, 0, 1, 1, 2, 2], true],
      ['a^n b^n c^n', [0, 0, 1, 1, 2], false],
      ['a^n b^n c^n', [0, 1, 2, 0, 1, 2], false],
      ['shuffle-2', [0, 2, 1, 3], true], // ( [ ) ]: each type balanced on its own
      ['shuffle-2', [0, 2, 3, 1, 2, 3], true],
      ['shuffle-2', [1, 0, 2, 3], false], // ) before (
      ['shuffle-2', [0, 0, 1, 3], false],
    ];
    for (const [lang, s, acc] of cases) expect(acceptsString(lang as never, s), `${lang} ${s}`).to.equal(acc);
  });

  it('samplers give the requested label and length for every language, short and long', () => {
    const r = rng(3);
    for (const lang of LANGUAGES) {
      for (const [lo, hi] of [[1, 14], [15, 28]]) {
        for (let i = 0; i < 40; i++) {
          const acc = i % 2 === 0;
          const s = sampleString(lang, r, lo, hi, acc);
          expect(acceptsString(lang, s), `${lang}`).to.equal(acc);
          expect(s.length).to.be.within(lo, hi);
        }
      }
    }
  });

  it('mqar sequences: each query label is the value stored after that key', () => {
    const r = rng(5);
    for (let n = 1; n <= 8; n++) {
      const s = mqarSequence(r, n, 16, 16);
      expect(s.ids.length).to.equal(1 + 3 * n);
      expect(s.labels.length).to.equal(n);
      for (const { pos, label } of s.labels) {
        const k = s.ids[pos];
        const at = s.ids.indexOf(k, 1); // the key's first (storing) occurrence
        expect(at).to.be.lessThan(1 + 2 * n);
        expect(s.ids[at + 1]).to.equal(label);
      }
    }
    expect(() => mqarSequence(r, 9, 8, 16)).to.throw(/pairs 9 exceeds numKeys 8/);
  });

  it('leftPad shifts labels with the padding', () => {
    const b = leftPad([{ ids: [1, 5, 2], labels: [{ pos: 2, label: 4 }] }, { ids: [1, 5, 6, 5, 2], labels: [{ pos: 4, label: 3 }] }], 0);
    expect(b.ids).to.deep.equal([[0, 0, 1, 5, 2], [1, 5, 6, 5, 2]]);
    expect(b.labels).to.deep.equal([[{ pos: 4, label: 4 }], [{ pos: 4, label: 3 }]]);
  });

  it('a seeded model is reproducible, training on one batch drives it to 100% on that batch, and nothing leaks', async () => {
    const sizes = { dModel: 8, numHeads: 2, numBlocks: 1, chunkSize: 4 };
    const batch = leftPad(
      [
        { ids: [1, 5, 2], labels: [{ pos: 2, label: 4 }] },
        { ids: [1, 6, 5, 2], labels: [{ pos: 3, label: 3 }] },
      ],
      0,
    );
    const a = buildModel('deltanet', 9, sizes, 3e-2, 7);
    const b = buildModel('deltanet', 9, sizes, 3e-2, 7);
    try {
      const la = trainStep(a, batch, 9);
      const lb = trainStep(b, batch, 9);
      expect(la).to.equal(lb); // same seed -> same weights -> same loss
      expect(la).to.be.closeTo(Math.log(9), 0.3); // mean over the two labels (not over tokens): ~ln V at init
      await evalBatch(a, batch, 9, [3, 4]);
      const n1 = tf.memory().numTensors; // after one step + one evaluation: optimizer slots exist, the context is closed
      for (let i = 0; i < 40; i++) trainStep(a, batch, 9);
      const r = await evalBatch(a, batch, 9, [3, 4]);
      expect(r).to.deep.equal({ correct: 2, total: 2 });
      expect(tf.memory().numTensors).to.equal(n1); // flat over 40 steps + an evaluation
    } finally {
      disposeModel(a);
      disposeModel(b);
    }
  });
});
