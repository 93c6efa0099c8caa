/**
 * The catalogue (core/catalog.ts) end to end: a third-party plugin's inner loss and layer class, loaded
 * with createRuntime, are usable by name from JSON configs of first-party layers and blocks, exactly like
 * first-party names: build, train a step, save, load.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { TOKENS, catalog, getInnerLoss, withSeededRandom } from 'nested-learning/core';
import { assertClose } from 'nested-learning/core/testing';
import { NestedModel } from 'nested-learning/core';
import { createDefaultRuntime } from 'nested-learning/registry';
import { NestedTrainer, tokenSquaredError } from 'nested-learning/plugins/scheduler';
import { createSubLayer } from 'nested-learning/plugins/hope';
import { NlTitansMemory } from 'nested-learning/plugins/titans';
import { NlSelfModifyingTitans } from 'nested-learning/plugins/self-modifying-titans';
import { emaMemoryPlugin, huberLoss, NlEmaMemory } from './ema-memory';

describe('catalogue: third-party parts resolve by name from layer and block configs', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-catalogue-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the runtime binds the catalogue in its container; it lists the plugin parts with their owners', () => {
    const rt = createDefaultRuntime([emaMemoryPlugin]);
    expect(rt.get(TOKENS.Catalog)).to.equal(catalog);
    expect(catalog.innerLoss('huber')).to.equal(huberLoss);
    expect(catalog.innerLosses().get('huber')).to.equal('acme/ema-memory');
    expect(catalog.innerLosses().get('l2')).to.equal('core');
    expect(catalog.layerClass('NlEmaMemory')).to.equal(NlEmaMemory);
    expect(catalog.layerClasses().get('NlTitansMemory')).to.equal('titans');
    expect(catalog.transforms()).to.include('adamw'); // transforms of the optimizers plugin
    expect(getInnerLoss('huber', 'x.innerLoss')).to.equal(huberLoss);
    expect(() => getInnerLoss('acme-nope', 'x.innerLoss')).to.throw(/x\.innerLoss: unknown inner loss 'acme-nope'; allowed: l2, dot, cosine, .*huber/);
  });

  /**
   * A memory layer built by name from `json` with innerLoss 'huber' (the third-party loss): its reads differ from
   * the same weights with 'l2' by more than `minDiff` (Huber clips large inner errors), a nested-trainer step is
   * finite and moves the weights, and a tfjs save / load (the config names the loss, the catalogue resolves it
   * again) gives the same outputs. `seed`: weights initialised under withSeededRandom (null: unseeded).
   */
  async function huberEndToEnd<L extends tf.layers.Layer>(json: string, cls: new (...a: never[]) => L, minDiff: number, seed: number | null, folder: string): Promise<void> {
    const rt = createDefaultRuntime([emaMemoryPlugin]);
    const D = 4;
    const spec = JSON.parse(json);
    const layer = rt.createLayer<L>(spec.className, spec.config);
    expect(layer.getConfig().innerLoss).to.equal('huber');
    const l2 = rt.createLayer<L>(spec.className, { ...spec.config, innerLoss: 'l2', name: `${spec.config.name}_l2` });
    const x = tf.randomNormal([2, 8, D], 0, 3, 'float32', 5) as tf.Tensor3D;
    const y = seed === null ? (layer.apply(x) as tf.Tensor) : withSeededRandom(seed, () => layer.apply(x) as tf.Tensor);
    tf.dispose(l2.apply(x) as tf.Tensor);
    l2.setWeights(layer.getWeights());
    const yL2 = l2.apply(x) as tf.Tensor;
    expect(tf.tidy(() => y.sub(yL2).abs().max().dataSync()[0]), 'Huber and L2 writes give different reads').to.be.greaterThan(minDiff);

    // a training step through the nested trainer (the memory learns in context with the Huber gradient)
    const opt = tf.train.adam(1e-2);
    const trainer = new NestedTrainer(new NestedModel([layer]), { loss: tokenSquaredError, optimizer: opt });
    const target = tf.randomNormal([2, 8, D], 0, 1, 'float32', 6);
    const before = layer.getWeights().map((w) => w.clone());
    expect(Number.isFinite(trainer.train(x, target).loss)).to.equal(true);
    const moved = layer.getWeights().some((w, i) => tf.tidy(() => w.sub(before[i]).abs().max().dataSync()[0]) > 0);
    expect(moved, 'an outer step changed the weights').to.equal(true);

    // save / load through tfjs
    const model = tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [8, D] }), layer] });
    await model.save(`file://${dir}/${folder}`);
    const loaded = await rt.loadLayersModel(`file://${dir}/${folder}/model.json`);
    const back = loaded.layers.find((l) => l.name === spec.config.name) as L;
    expect(back).to.be.instanceOf(cls);
    expect(back.getConfig().innerLoss).to.equal('huber');
    assertClose(loaded.predict(x) as tf.Tensor, model.predict(x) as tf.Tensor, { rtol: 0, atol: 0 });
    trainer.dispose();
    opt.dispose();
    tf.dispose([x, y, yL2, target, ...before]);
    loaded.dispose();
    l2.dispose();
  }

  it("NlTitansMemory with innerLoss 'huber' from a JSON config: builds, writes with the Huber gradient, trains a step, saves and loads", async () => {
    const json = '{"className": "NlTitansMemory", "config": {"numHeads": 2, "chunkSize": 4, "innerLoss": "huber", "parameterization": "paper", "name": "mem"}}';
    await huberEndToEnd(json, NlTitansMemory, 1e-4, null, 'titans-huber');
  });

  it("NlSelfModifyingTitans ('paper') with innerLoss 'huber' from a JSON config: writes with the Huber gradient, trains a step, saves and loads; 'stable' refuses it", async () => {
    // static k / v (x W_k, x W_v): the inner errors M(k) - M(v) are then O(|x|), past Huber's clip at 1 (with the
    // adaptive k / v of the paper form k ~ v ~ x, the errors are tiny and Huber == L2); seeded weights
    const json = '{"className": "NlSelfModifyingTitans", "config": {"numHeads": 2, "chunkSize": 4, "memChunkSize": 4, "innerLoss": "huber", "parameterization": "paper", "normalize": "none", "staticK": true, "staticV": true, "name": "smt"}}';
    await huberEndToEnd(json, NlSelfModifyingTitans, 1e-3, 11, 'smt-huber');
    const rt = createDefaultRuntime([emaMemoryPlugin]);
    const { className, config } = JSON.parse(json);
    expect(() => rt.createLayer(className, { ...config, parameterization: 'stable', normalize: 'l2', momentum: false, name: 'smt_s' })).to.throw(/NlSelfModifyingTitans\.innerLoss: parameterization 'stable'/);
    expect(() => rt.createLayer(className, { ...config, innerLoss: 'acme-nope', name: 'smt_n' })).to.throw(/NlSelfModifyingTitans\.innerLoss: unknown inner loss 'acme-nope'/);
  });

  it('a block config names a third-party layer class and a Titans mixer with the third-party loss', () => {
    createDefaultRuntime([emaMemoryPlugin]);
    const block = createSubLayer(
      JSON.parse('{"className": "NlResidualBlock", "config": {"mixer": {"className": "NlTitansMemory", "config": {"numHeads": 1, "chunkSize": 4, "innerLoss": "huber", "parameterization": "paper"}}, "ffn": {"className": "NlEmaMemory", "config": {}}}}'),
      'blocks[0]',
      'block0',
    );
    const x = tf.randomNormal([1, 8, 4], 0, 1, 'float32', 7);
    const y = block.apply(x) as tf.Tensor;
    expect(y.shape).to.deep.equal([1, 8, 4]);
    const cfg = block.getConfig() as { mixer: { config: { innerLoss: string } }; ffn: { className: string } };
    expect(cfg.mixer.config.innerLoss).to.equal('huber');
    expect(cfg.ffn.className).to.equal('NlEmaMemory');
    tf.dispose([x, y]);
    block.dispose();
  });
});
