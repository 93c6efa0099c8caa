/**
 * End to end with a plugin that lives outside plugins/ and uses only the public API:
 * runtime -> layer from a JSON config -> model -> a training step -> save (file://) -> load.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { createRuntime } from 'nested-learning/registry';
import { assertClose, expectNoLeakedTensors } from 'nested-learning/core/testing';
import { emaMemoryPlugin, NlEmaMemory } from './ema-memory';

describe('third-party plugin (integration-tests/third-party-plugin)', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-third-party-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('registers through createRuntime and is listed with its capability and inner loss', () => {
    const rt = createRuntime({ plugins: [emaMemoryPlugin] });
    expect(rt.plugins().map((p) => p.name)).to.deep.equal(['acme/ema-memory']);
    expect(rt.layers().get('NlEmaMemory')).to.equal('acme/ema-memory');
    expect(rt.capabilities()['sequence-mixer']).to.deep.equal(['acme/ema-memory']);
    const huber = rt.innerLoss('huber');
    const v = tf.tidy(() => huber.value(tf.tensor([[0.5, 3]]), tf.tensor([[0, 0]])).arraySync());
    // 0.5 * 0.5^2 + (3 - 0.5) = 0.125 + 2.5
    expect(v).to.deep.equal([2.625]);
  });

  it('computes the EMA recurrence it documents (closed form == token loop)', () => {
    const rt = createRuntime({ plugins: [emaMemoryPlugin] });
    const layer = rt.createLayer<NlEmaMemory>('NlEmaMemory', { initialDecayLogit: 0.3 });
    const x = tf.randomNormal([2, 5, 3], 0, 1, 'float32', 1) as tf.Tensor3D;
    const y = layer.apply(x) as tf.Tensor;
    const [kernel, rho] = layer.getWeights();
    const expected = tf.tidy(() => {
      const lambda = tf.sigmoid(rho);
      const u = tf.matMul(x.reshape([10, 3]), kernel).reshape([2, 5, 3]);
      let m = tf.zeros([2, 3]);
      const rows: tf.Tensor[] = [];
      for (let t = 0; t < 5; t++) {
        const ut = u.slice([0, t, 0], [2, 1, 3]).reshape([2, 3]);
        m = m.mul(lambda).add(ut.mul(tf.sub(1, lambda)));
        rows.push(m);
      }
      return tf.stack(rows, 1).add(x);
    });
    assertClose(y, expected, { rtol: 1e-5, atol: 1e-6 });
    tf.dispose([x, y, expected]);
  });

  it('builds from a JSON config, trains a step, saves to file:// and loads identical outputs', async () => {
    const rt = createRuntime({ plugins: [emaMemoryPlugin] });
    const config = JSON.parse('{"layer": "NlEmaMemory", "config": {"initialDecayLogit": 0.5, "name": "ema"}}');
    const model = tf.sequential();
    model.add(tf.layers.inputLayer({ inputShape: [6, 4] }));
    model.add(rt.createLayer(config.layer, config.config));
    model.add(tf.layers.dense({ units: 2 }));
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const x = tf.randomNormal([3, 6, 4], 0, 1, 'float32', 2);
    const yTrue = tf.randomNormal([3, 6, 2], 0, 1, 'float32', 3);
    const before = (model.evaluate(x, yTrue) as tf.Scalar).dataSync()[0];
    await model.fit(x, yTrue, { epochs: 5, batchSize: 3, verbose: 0 });
    const after = (model.evaluate(x, yTrue) as tf.Scalar).dataSync()[0];
    expect(after).to.be.lessThan(before);

    await model.save(`file://${dir}/ema`);
    expect(fs.existsSync(path.join(dir, 'ema', 'model.json'))).to.equal(true);
    const loaded = await rt.loadLayersModel(`file://${dir}/ema/model.json`);
    assertClose(loaded.predict(x) as tf.Tensor, model.predict(x) as tf.Tensor, { rtol: 0, atol: 0 });
    const layer = loaded.layers.find((l) => l.name === 'ema');
    expect(layer).to.be.instanceOf(NlEmaMemory);
    expect(layer!.getConfig().initialDecayLogit).to.equal(0.5);
    tf.dispose([x, yTrue]);
    model.dispose();
    loaded.dispose();
  });

  it('does not leak tensors over training steps', async () => {
    const rt = createRuntime({ plugins: [emaMemoryPlugin] });
    const layer = rt.createLayer<NlEmaMemory>('NlEmaMemory', {});
    const opt = tf.train.adam(0.01);
    const x = tf.randomNormal([2, 4, 3]);
    tf.dispose(layer.apply(x) as tf.Tensor); // build the weights outside the gradient tape
    await expectNoLeakedTensors(() => {
      opt.minimize(() => (layer.apply(x) as tf.Tensor).square().mean() as tf.Scalar);
    }, { name: 'NlEmaMemory training step' });
    x.dispose();
    opt.dispose();
  });

  it('refuses a model.json whose class no loaded plugin provides, naming file and class', async () => {
    createRuntime({ plugins: [emaMemoryPlugin] });
    const d = path.join(dir, 'unknown');
    fs.mkdirSync(d, { recursive: true });
    const json = {
      format: 'layers-model',
      modelTopology: {
        class_name: 'Sequential',
        config: { name: 's', layers: [{ class_name: 'NlNotLoadedAnywhere', config: { name: 'x', batch_input_shape: [null, 2] } }] },
      },
      weightsManifest: [{ paths: ['weights.bin'], weights: [] }],
    };
    fs.writeFileSync(path.join(d, 'model.json'), JSON.stringify(json));
    fs.writeFileSync(path.join(d, 'weights.bin'), Buffer.alloc(0));
    const rt = createRuntime({ plugins: [] });
    let err: Error | null = null;
    try {
      await rt.loadLayersModel(`file://${d}/model.json`);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/model\.json: class 'NlNotLoadedAnywhere' is not registered; load the plugin/);
  });
});
