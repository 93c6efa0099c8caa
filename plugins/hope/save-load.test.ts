/**
 * LanguageModel as a tfjs LayersModel: save -> load gives identical logits, both through
 * LanguageModel.load and through a plain tf.loadLayersModel (the tied head finds its embedding in the
 * loaded graph). In memory here; integration-tests/package does it through file:// in a fresh process.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../../core/testing';
import { BLOCK_KINDS, LANGUAGE_MODEL_FORMAT, LanguageModel, blockSpec, type BlockKind, type LanguageModelConfig } from './index';

const V = 13;
const D = 16;
function config(kind: BlockKind, tieEmbeddings = true): LanguageModelConfig {
  return { vocabSize: V, dModel: D, tieEmbeddings, blocks: [blockSpec(kind, { numHeads: 2, chunkSize: 4, cmsLevels: [{ period: 4, learningRate: 0.1 }, { period: 0 }] })] };
}
const ids = (): tf.Tensor2D => tf.tensor2d([[1, 5, 2, 9, 12, 0, 3, 7, 7], [4, 4, 11, 2, 6, 8, 10, 1, 0]], [2, 9], 'int32');

async function saveToMemory(lm: LanguageModel): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | null = null;
  await lm.save(tf.io.withSaveHandler(async (a) => {
    saved = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }), { tokenizer: { kind: 'bytes' } });
  return saved!;
}

describe('plugin hope: LanguageModel save / load (tfjs LayersModel format)', () => {
  for (const kind of BLOCK_KINDS) {
    it(`${kind}: LanguageModel.load and tf.loadLayersModel give the saved model's logits`, async () => {
      const lm = new LanguageModel(config(kind), { seed: 3 });
      // non-trivial weights everywhere (some start at zero)
      for (const l of [lm.embedding, ...lm.blocks, lm.head]) for (const w of l.weights) w.write(tf.randomNormal(w.shape as number[], 0, 0.3, 'float32', 5));
      const x = ids();
      const want = lm.logits(x);
      const artifacts = await saveToMemory(lm);
      expect((artifacts.userDefinedMetadata as { nestedLearning: { format: string } }).nestedLearning.format).to.equal(LANGUAGE_MODEL_FORMAT);

      const again = await LanguageModel.load(tf.io.fromMemory(artifacts));
      expect(again.metadata.extra).to.deep.equal({ tokenizer: { kind: 'bytes' } });
      const got = again.logits(x);
      assertClose(got, want, { rtol: 1e-6, atol: 1e-6, name: `${kind} LanguageModel.load logits` });

      const plain = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
      const viaTfjs = plain.predict(x) as tf.Tensor;
      assertClose(viaTfjs, want, { rtol: 1e-5, atol: 1e-5, name: `${kind} tf.loadLayersModel logits` });
      tf.dispose([want, got, viaTfjs, x]);
      plain.dispose();
      again.dispose();
      lm.dispose();
    });
  }

  it('an untied head round-trips too; a model.json that is not a language model is refused', async () => {
    const lm = new LanguageModel(config('hope', false), { seed: 4 });
    const x = ids();
    const want = lm.logits(x);
    const again = await LanguageModel.load(tf.io.fromMemory(await saveToMemory(lm)));
    const got = again.logits(x);
    assertClose(got, want, { rtol: 1e-6, atol: 1e-6 });
    const dense = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
    let saved: tf.io.ModelArtifacts | null = null;
    await dense.save(tf.io.withSaveHandler(async (a) => ((saved = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
    let err: Error | null = null;
    await LanguageModel.load(tf.io.fromMemory(saved!)).catch((e: Error) => (err = e));
    expect(err!.message).to.match(/not a nested-learning language model/);
    tf.dispose([want, got, x]);
    dense.dispose();
    again.dispose();
    lm.dispose();
  });

  it('save and load leave no tensors behind', async () => {
    const lm = new LanguageModel(config('hope'), { seed: 1 });
    await expectNoLeakedTensors(async () => {
      const again = await LanguageModel.load(tf.io.fromMemory(await saveToMemory(lm)));
      again.dispose();
    });
    lm.dispose();
  });
});
