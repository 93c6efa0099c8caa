/**
 * Issue 15, one model format: a run trained and checkpointed as `nl train` does, exported with exportRun,
 * is a tfjs LayersModel directory that LanguageModel.load and tf.loadLayersModel read with the same
 * logits as the checkpointed model.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose } from '../core/testing';
import { fileSystem } from '../core/io';
import { LanguageModel } from '../plugins/hope';
import { loadPreset } from './config';
import { createRun, datasetFor, disposeRun, loadRun, train } from './run';
import { exportRun } from './export';

describe('run/export: checkpoint -> tfjs LayersModel (model.json + weights.bin)', () => {
  let dir = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-export-'));
    const text = 'It was the best of times, it was the worst of times, it was the age of wisdom. '.repeat(80);
    fs.writeFileSync(path.join(dir, 'corpus.txt'), text);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('exportRun writes model.json + weights.bin that load with identical logits (LanguageModel.load and tf.loadLayersModel)', async () => {
    const preset = loadPreset('hope-tiny');
    const r = createRun({
      ...preset,
      model: { ...preset.model, blocks: [{ ...preset.model.blocks[0], repeat: 1 }] },
      training: { ...preset.training, batchSize: 1, seqLength: 16, evalEvery: 100, checkpointEvery: 100 },
      data: { corpus: 'files', paths: [path.join(dir, 'corpus.txt')] },
    });
    const out = path.join(dir, 'run');
    try {
      await train(r, datasetFor(r), { steps: 2, out, plot: false });
    } finally {
      disposeRun(r);
    }
    const exp = path.join(dir, 'export');
    const res = await exportRun(out, exp);
    expect(res.step).to.equal(2);
    expect(fs.readdirSync(exp).sort()).to.deep.equal(['model.json', 'weights.bin']);
    const json = JSON.parse(fs.readFileSync(path.join(exp, 'model.json'), 'utf8'));
    expect(json.userDefinedMetadata.nestedLearning.extra.tokenizer).to.deep.equal({ kind: 'byte', vocabSize: 256 });

    const ids = tf.tensor2d([Array.from(Buffer.from('it was the best '))], [1, 16], 'int32');
    const ref = await loadRun(out);
    const lm = await LanguageModel.load(fileSystem(exp));
    const plain = await tf.loadLayersModel(fileSystem(path.join(exp, 'model.json')));
    try {
      const want = ref.lm.logits(ids);
      const got = lm.logits(ids);
      const viaTfjs = plain.predict(ids) as tf.Tensor;
      assertClose(got, want, { rtol: 1e-6, atol: 1e-6, name: 'LanguageModel.load logits' });
      assertClose(viaTfjs, want, { rtol: 1e-5, atol: 1e-5, name: 'tf.loadLayersModel logits' });
      tf.dispose([want, got, viaTfjs]);
    } finally {
      ids.dispose();
      disposeRun(ref);
      lm.dispose();
      plain.dispose();
    }
  });
});
