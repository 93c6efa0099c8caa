import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { assertClose, expectNoLeakedTensors } from '../testing';
import { NODE_FS_OPS, type AtomicFsOps } from './atomic-write';
import { fileSystem, registerFileSystemRouter } from './file-system';

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the promise to reject');
}

/** A fixed input so predictions are comparable across models. */
function input(rows: number, cols: number): tf.Tensor2D {
  return tf.tidy(() => tf.linspace(-1, 1, rows * cols).reshape([rows, cols]) as tf.Tensor2D);
}

async function predictValues(model: tf.LayersModel, x: tf.Tensor): Promise<number[]> {
  const y = model.predict(x) as tf.Tensor;
  const v = Array.from(await y.data());
  y.dispose();
  return v;
}

async function weightValues(model: tf.LayersModel): Promise<Array<{ name: string; values: number[] }>> {
  const out = [];
  for (const w of model.weights) out.push({ name: w.originalName, values: Array.from(await w.read().data()) });
  return out;
}

function denseSequential(seed: number): tf.Sequential {
  const m = tf.sequential({ name: `seq_${seed}` });
  m.add(tf.layers.dense({ units: 5, inputShape: [4], activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed }) }));
  m.add(tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), biasInitializer: 'ones' }));
  return m;
}

function functionalModel(): tf.LayersModel {
  const x = tf.input({ shape: [4] });
  const left = tf.layers.dense({ units: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) }).apply(x) as tf.SymbolicTensor;
  const right = tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) }).apply(x) as tf.SymbolicTensor;
  const joined = tf.layers.concatenate().apply([left, right]) as tf.SymbolicTensor;
  const y = tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 9 }) }).apply(joined) as tf.SymbolicTensor;
  return tf.model({ inputs: x, outputs: y, name: 'functional' });
}

/** Adds a per-weight offset so that no value equals its initialiser (a silent no-op load would show). */
function perturb(model: tf.LayersModel, by: number): void {
  tf.tidy(() => {
    model.weights.forEach((w, i) => {
      (w as unknown as { write(t: tf.Tensor): void }).write(w.read().add(by * (i + 1)));
    });
  });
}

describe('core/io file-system (file:// handler)', () => {
  let root = '';
  let n = 0;
  let dir = '';
  before(() => {
    registerFileSystemRouter();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-fs-'));
  });
  after(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });
  beforeEach(() => {
    dir = path.join(root, `case-${n++}`, 'model'); // a missing parent too: save must create both
  });
  const modelJson = () => path.join(dir, 'model.json');
  const weightsBin = () => path.join(dir, 'weights.bin');

  describe('round trips', () => {
    it('tf.sequential of dense layers: identical weights and predictions, via dir/model.json and via dir', async () => {
      const model = denseSequential(1);
      perturb(model, 0.25);
      await model.save(`file://${dir}`);
      expect(fs.readdirSync(dir).sort()).to.deep.equal(['model.json', 'weights.bin']);
      const x = input(6, 4);
      const want = await predictValues(model, x);
      for (const url of [`file://${modelJson()}`, `file://${dir}`]) {
        const loaded = await tf.loadLayersModel(url);
        expect(await weightValues(loaded), url).to.deep.equal(await weightValues(model));
        expect(await predictValues(loaded, x), url).to.deep.equal(want);
        loaded.dispose();
      }
      // The comparison can fail: a same-shaped model with other weights predicts differently.
      const other = denseSequential(1);
      expect(await predictValues(other, x)).not.to.deep.equal(want);
      other.dispose();
      model.dispose();
      x.dispose();
    });

    it('functional model (two branches + concatenate): identical weights and predictions', async () => {
      const model = functionalModel();
      perturb(model, -0.125);
      await model.save(`file://${dir}`);
      const loaded = await tf.loadLayersModel(`file://${dir}/model.json`);
      expect(loaded.layers.map((l) => l.getClassName())).to.deep.equal(model.layers.map((l) => l.getClassName()));
      expect(await weightValues(loaded)).to.deep.equal(await weightValues(model));
      const x = input(5, 4);
      expect(await predictValues(loaded, x)).to.deep.equal(await predictValues(model, x));
      tf.dispose([x]);
      loaded.dispose();
      model.dispose();
    });

    it('includeOptimizer: Adam state round-trips and the next training step matches', async () => {
      const model = denseSequential(3);
      model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
      const x = input(8, 4);
      const y = tf.tidy(() => tf.linspace(0, 1, 24).reshape([8, 3]));
      await model.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
      await model.save(`file://${dir}`, { includeOptimizer: true });

      const json = JSON.parse(fs.readFileSync(modelJson(), 'utf8'));
      expect(json.trainingConfig.loss).to.equal('mean_squared_error'); // Keras naming in trainingConfig
      expect(json.trainingConfig.optimizer_config.class_name).to.equal('Adam');
      const groups = json.weightsManifest[0].weights.map((w: { group?: string }) => w.group ?? 'model');
      // 4 model weights, then Adam's iteration counter + 2 moments per weight.
      expect(groups).to.deep.equal([...Array(4).fill('model'), ...Array(9).fill('optimizer')]);

      const loaded = await tf.loadLayersModel(`file://${dir}`);
      expect(loaded.optimizer).to.be.instanceOf(tf.AdamOptimizer);
      const before = await model.optimizer.getWeights();
      const after = await loaded.optimizer.getWeights();
      expect(after.map((w) => w.name)).to.deep.equal(before.map((w) => w.name));
      for (let i = 0; i < before.length; i++) {
        expect(Array.from(await after[i].tensor.data()), before[i].name).to.deep.equal(Array.from(await before[i].tensor.data()));
      }
      // The Adam state is not trivial: after one step the first moments are non-zero.
      expect(Array.from(await before[1].tensor.data()).some((v) => v !== 0)).to.equal(true);
      tf.dispose([before[0].tensor, after[0].tensor]); // Adam hands out its iteration count as a new scalar

      // Training on from the loaded model continues the original run. wasm training is not bitwise
      // reproducible (two identical fresh models drift in the last float32 digit after a few
      // steps), so compare the step with a tight tolerance; the restored state above is exact.
      const fresh = await tf.loadLayersModel(`file://${dir}`);
      fresh.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' }); // Adam state reset
      const h1 = await model.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
      const h2 = await loaded.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
      await fresh.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
      assertClose(h2.history.loss[0] as number, h1.history.loss[0] as number, { rtol: 1e-6, name: 'next-step loss' });
      const want = (await weightValues(model)).flatMap((w) => w.values);
      assertClose((await weightValues(loaded)).flatMap((w) => w.values), want, { rtol: 1e-5, atol: 1e-7, name: 'weights after the next step' });
      const freshWeights = await weightValues(fresh);
      // Without the saved Adam moments the same step lands elsewhere: the check above can fail.
      expect(() => assertClose(freshWeights.flatMap((w) => w.values), want, { rtol: 1e-5, atol: 1e-7 })).to.throw();
      fresh.dispose();
      tf.dispose([x, y]);
      loaded.dispose();
      model.dispose();
    });

    it('save + load + dispose does not leak tensors', async () => {
      const model = denseSequential(5);
      await expectNoLeakedTensors(
        async () => {
          await model.save(`file://${dir}`);
          const loaded = await tf.loadLayersModel(`file://${dir}`);
          loaded.dispose();
        },
        { warmup: 1, iterations: 3, name: 'file:// save/load' },
      );
      model.dispose();
    });
  });

  describe('on-disk format (tfjs-node layout)', () => {
    it('model.json has exactly the tfjs-node fields and a single weights.bin group; weights.bin holds the raw float32 weights in order', async () => {
      const model = denseSequential(2);
      perturb(model, 0.5);
      await model.save(`file://${dir}`);
      const json = JSON.parse(fs.readFileSync(modelJson(), 'utf8'));
      expect(Object.keys(json)).to.deep.equal(['modelTopology', 'weightsManifest', 'format', 'generatedBy', 'convertedBy']);
      expect(json.format).to.equal('layers-model');
      expect(json.generatedBy).to.equal(`TensorFlow.js tfjs-layers v${tf.version_layers}`);
      expect(json.convertedBy).to.equal(null);
      expect(json.modelTopology.class_name).to.equal('Sequential');
      expect(json.weightsManifest).to.have.length(1);
      expect(Object.keys(json.weightsManifest[0])).to.deep.equal(['paths', 'weights']);
      expect(json.weightsManifest[0].paths).to.deep.equal(['weights.bin']);
      const names = model.weights.map((w) => w.originalName);
      expect(json.weightsManifest[0].weights).to.deep.equal([
        { name: names[0], shape: [4, 5], dtype: 'float32' },
        { name: names[1], shape: [5], dtype: 'float32' },
        { name: names[2], shape: [5, 3], dtype: 'float32' },
        { name: names[3], shape: [3], dtype: 'float32' },
      ]);
      // (20 + 5 + 15 + 3) float32 values = 172 bytes, in manifest order.
      const bin = fs.readFileSync(weightsBin());
      expect(bin.byteLength).to.equal(172);
      const stored = Array.from(new Float32Array(bin.buffer, bin.byteOffset, 43));
      const expected = (await weightValues(model)).flatMap((w) => w.values);
      expect(stored).to.deep.equal(expected);
      model.dispose();
    });

    it('optional fields follow in tfjs-node order: trainingConfig, userDefinedMetadata', async () => {
      const model = denseSequential(4);
      model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
      model.setUserDefinedMetadata({ run: 'io-test', step: 3 });
      await model.save(`file://${dir}`, { includeOptimizer: true });
      const json = JSON.parse(fs.readFileSync(modelJson(), 'utf8'));
      expect(Object.keys(json)).to.deep.equal([
        'modelTopology',
        'weightsManifest',
        'format',
        'generatedBy',
        'convertedBy',
        'trainingConfig',
        'userDefinedMetadata',
      ]);
      expect(json.userDefinedMetadata).to.deep.equal({ run: 'io-test', step: 3 });
      const loaded = await tf.loadLayersModel(`file://${dir}`);
      expect(loaded.getUserDefinedMetadata()).to.deep.equal({ run: 'io-test', step: 3 });
      loaded.dispose();
      model.dispose();
    });

    /** A model.json + weights.bin pair written by hand in the tfjs-node layout (not by our saver). */
    function writeHandMadeModel(quantized: boolean): void {
      fs.mkdirSync(dir, { recursive: true });
      const topology = {
        class_name: 'Sequential',
        config: {
          name: 'hand_made',
          layers: [{ class_name: 'Dense', config: { name: 'd1', units: 1, activation: 'linear', use_bias: true, batch_input_shape: [null, 2], dtype: 'float32' } }],
        },
        keras_version: 'tfjs-layers 4.22.0',
        backend: 'tensor_flow.js',
      };
      const kernelSpec = quantized
        ? // stored uint8 q, value = q * scale + min: q = [4, 6] -> [1, 2] with scale 0.5, min -1
          { name: 'd1/kernel', shape: [2, 1], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.5, min: -1 } }
        : { name: 'd1/kernel', shape: [2, 1], dtype: 'float32' };
      const json = {
        modelTopology: topology,
        weightsManifest: [{ paths: ['weights.bin'], weights: [kernelSpec, { name: 'd1/bias', shape: [1], dtype: 'float32' }] }],
        format: 'layers-model',
        generatedBy: 'hand',
        convertedBy: null,
      };
      fs.writeFileSync(modelJson(), JSON.stringify(json));
      const kernel = quantized ? Buffer.from([4, 6]) : Buffer.from(Float32Array.from([1, 2]).buffer);
      fs.writeFileSync(weightsBin(), Buffer.concat([kernel, Buffer.from(Float32Array.from([0.5]).buffer)]));
    }

    it('reads a hand-written tfjs-node model: y = 1*x0 + 2*x1 + 0.5', async () => {
      writeHandMadeModel(false);
      const loaded = await tf.loadLayersModel(`file://${modelJson()}`);
      const x = tf.tensor2d([1, 1, 2, -1], [2, 2]);
      expect(await predictValues(loaded, x)).to.deep.equal([3.5, 0.5]);
      x.dispose();
      loaded.dispose();
    });

    it('reads uint8-quantized weights, sizing them at 1 byte per value', async () => {
      writeHandMadeModel(true);
      expect(fs.statSync(weightsBin()).size).to.equal(2 + 4);
      const loaded = await tf.loadLayersModel(`file://${dir}`);
      const x = tf.tensor2d([1, 1, 2, -1], [2, 2]);
      expect(await predictValues(loaded, x)).to.deep.equal([3.5, 0.5]);
      x.dispose();
      loaded.dispose();
    });

    it('loads several groups and shards (cut mid-value) listed in the manifest', async () => {
      const model = denseSequential(6);
      perturb(model, 0.3);
      await model.save(`file://${dir}`);
      const json = JSON.parse(fs.readFileSync(modelJson(), 'utf8'));
      const bin = fs.readFileSync(weightsBin());
      const specs = json.weightsManifest[0].weights;
      // Group 0: first layer (kernel 80 bytes + bias 20) in two shards cut at byte 50;
      // group 1: second layer (60 + 12) in three shards.
      fs.writeFileSync(path.join(dir, 'g1-a.bin'), bin.subarray(0, 50));
      fs.writeFileSync(path.join(dir, 'g1-b.bin'), bin.subarray(50, 100));
      fs.writeFileSync(path.join(dir, 'g2-a.bin'), bin.subarray(100, 101));
      fs.writeFileSync(path.join(dir, 'g2-b.bin'), bin.subarray(101, 150));
      fs.writeFileSync(path.join(dir, 'g2-c.bin'), bin.subarray(150));
      fs.unlinkSync(weightsBin());
      json.weightsManifest = [
        { paths: ['g1-a.bin', 'g1-b.bin'], weights: specs.slice(0, 2) },
        { paths: ['g2-a.bin', 'g2-b.bin', 'g2-c.bin'], weights: specs.slice(2) },
      ];
      fs.writeFileSync(modelJson(), JSON.stringify(json));
      const loaded = await tf.loadLayersModel(`file://${dir}`);
      expect(await weightValues(loaded)).to.deep.equal(await weightValues(model));
      const x = input(3, 4);
      expect(await predictValues(loaded, x)).to.deep.equal(await predictValues(model, x));
      x.dispose();
      loaded.dispose();

      // A short shard inside a group is reported with that group's files.
      fs.writeFileSync(path.join(dir, 'g2-c.bin'), bin.subarray(150, 160));
      const err = await rejection(tf.loadLayersModel(`file://${dir}`));
      expect(err.message).to.contain(path.join(dir, 'g2-c.bin')).and.contain('truncated').and.contain('weightsManifest[1]');
      model.dispose();
    });
  });

  describe('errors name the file', () => {
    async function savedModel(): Promise<void> {
      const model = denseSequential(9);
      await model.save(`file://${dir}`);
      model.dispose();
    }

    it('missing model.json (file path and directory path)', async () => {
      const missing = path.join(root, 'nowhere', 'model.json');
      let err = await rejection(tf.loadLayersModel(`file://${missing}`));
      expect(err.message).to.equal(`fileSystem load: model file ${missing} does not exist`);
      fs.mkdirSync(dir, { recursive: true });
      err = await rejection(tf.loadLayersModel(`file://${dir}`));
      expect(err.message).to.contain(`model file ${modelJson()} does not exist`);
    });

    it('invalid JSON', async () => {
      await savedModel();
      fs.writeFileSync(modelJson(), '{"modelTopology": {');
      const err = await rejection(tf.loadLayersModel(`file://${modelJson()}`));
      expect(err.message).to.contain(`${modelJson()} is not valid JSON`);
    });

    it('missing weights file', async () => {
      await savedModel();
      fs.unlinkSync(weightsBin());
      const err = await rejection(tf.loadLayersModel(`file://${dir}`));
      expect(err.message).to.equal(
        `fileSystem load: weights file ${weightsBin()} (weightsManifest[0].paths[0] of ${modelJson()}) does not exist`,
      );
    });

    it('truncated and oversized weights file, with the byte counts the manifest needs', async () => {
      await savedModel(); // 43 float32 = 172 bytes
      const bin = fs.readFileSync(weightsBin());
      fs.writeFileSync(weightsBin(), bin.subarray(0, 170));
      let err = await rejection(tf.loadLayersModel(`file://${dir}`));
      expect(err.message).to.equal(
        `fileSystem load: weights file ${weightsBin()} of ${modelJson()} is truncated: holds 170 bytes but the weight specs need 172 bytes (weightsManifest[0])`,
      );
      fs.writeFileSync(weightsBin(), Buffer.concat([bin, Buffer.alloc(4)]));
      err = await rejection(tf.loadLayersModel(`file://${dir}`));
      expect(err.message).to.contain(`weights file ${weightsBin()}`).and.contain('oversized: holds 176 bytes but the weight specs need only 172 bytes');
    });

    it('wrong format: not an object, no model fields, wrong field types, bad manifest, unknown quantization', async () => {
      await savedModel();
      const good = JSON.parse(fs.readFileSync(modelJson(), 'utf8'));
      const cases: Array<[unknown, string]> = [
        [[1, 2, 3], 'is not a tfjs model.json: expected a JSON object, got an array'],
        [{ foo: 1 }, "is not a tfjs model.json: it has neither 'modelTopology' nor 'weightsManifest' (fields found: foo)"],
        [{ ...good, modelTopology: 'Sequential' }, "'modelTopology' must be a JSON object"],
        [{ ...good, format: 3 }, "'format' must be a string"],
        [{ ...good, weightsManifest: { paths: ['weights.bin'] } }, 'weightsManifest must be an array'],
        [
          { ...good, weightsManifest: [{ paths: ['weights.bin'], weights: [{ ...good.weightsManifest[0].weights[0], quantization: { dtype: 'int4' } }] }] },
          `weightsManifest[0].weights[0].quantization.dtype "int4"`,
        ],
        [{ ...good, weightsManifest: [{ paths: ['../escape.bin'], weights: [] }] }, "weightsManifest[0].paths[0] '../escape.bin' points outside the model directory"],
      ];
      for (const [content, message] of cases) {
        fs.writeFileSync(modelJson(), JSON.stringify(content));
        const err = await rejection(tf.loadLayersModel(`file://${modelJson()}`));
        expect(err.message, message).to.contain(modelJson()).and.contain(message);
      }
    });

    it('saving weightData that does not match weightSpecs writes nothing', async () => {
      const err = await rejection(
        fileSystem(dir).save({
          modelTopology: {},
          weightSpecs: [{ name: 'w', shape: [2], dtype: 'float32' }],
          weightData: new ArrayBuffer(4),
        }),
      );
      expect(err.message).to.equal(
        `fileSystem save (${dir}): the model's weightData is truncated: holds 4 bytes but the weight specs need 8 bytes; nothing was written`,
      );
      expect(fs.existsSync(dir)).to.equal(false);
    });

    it('saving into a path that is a file names that path', async () => {
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      fs.writeFileSync(dir, 'not a directory');
      const model = denseSequential(10);
      const err = await rejection(model.save(`file://${dir}`));
      expect(err.message).to.contain(`${dir} (or one of its parents) exists and is not a directory`);
      model.dispose();
    });
  });

  describe('atomic save', () => {
    /** Saves model A, then tries to save model B through `fsOps` that fail somewhere. */
    async function failedOverwrite(fsOps: Partial<AtomicFsOps>, expectMessage: string): Promise<void> {
      const a = denseSequential(11);
      await a.save(`file://${dir}`);
      const oldJson = fs.readFileSync(modelJson());
      const oldBin = fs.readFileSync(weightsBin());
      const b = denseSequential(12);
      perturb(b, 1);
      const err = await rejection(b.save(fileSystem(dir, { fsOps })));
      expect(err.message).to.contain(`fileSystem save (${dir})`).and.contain(expectMessage);
      expect(fs.readFileSync(modelJson()).equals(oldJson), 'model.json unchanged').to.equal(true);
      expect(fs.readFileSync(weightsBin()).equals(oldBin), 'weights.bin unchanged').to.equal(true);
      expect(fs.readdirSync(dir).sort(), 'no temp or backup files').to.deep.equal(['model.json', 'weights.bin']);
      // The previous model still loads and predicts as A.
      const loaded = await tf.loadLayersModel(`file://${dir}`);
      const x = input(2, 4);
      expect(await predictValues(loaded, x)).to.deep.equal(await predictValues(a, x));
      tf.dispose([x]);
      loaded.dispose();
      a.dispose();
      b.dispose();
    }

    it('write of weights.bin fails (disk full): previous model intact, no temp files', async () => {
      await failedOverwrite(
        {
          writeNewFile: async (file, chunks) => {
            if (path.basename(file).startsWith('.weights.bin')) {
              fs.writeFileSync(file, Buffer.from(chunks[0].subarray(0, 8))); // partial temp
              const e: NodeJS.ErrnoException = new Error('injected ENOSPC');
              e.code = 'ENOSPC';
              throw e;
            }
            await NODE_FS_OPS.writeNewFile(file, chunks);
          },
        },
        'injected ENOSPC',
      );
    });

    it('read-only target directory (real file system, non-root only): previous model intact', async function () {
      // root ignores directory permissions, so this case only runs for ordinary users.
      if (process.platform === 'win32' || process.getuid?.() === 0) this.skip();
      const a = denseSequential(14);
      await a.save(`file://${dir}`);
      const oldJson = fs.readFileSync(modelJson());
      const oldBin = fs.readFileSync(weightsBin());
      fs.chmodSync(dir, 0o555);
      try {
        const b = denseSequential(15);
        const err = await rejection(b.save(`file://${dir}`));
        expect(err.message).to.contain(`fileSystem save (${dir})`);
        b.dispose();
      } finally {
        fs.chmodSync(dir, 0o755);
      }
      expect(fs.readFileSync(modelJson()).equals(oldJson)).to.equal(true);
      expect(fs.readFileSync(weightsBin()).equals(oldBin)).to.equal(true);
      expect(fs.readdirSync(dir).sort()).to.deep.equal(['model.json', 'weights.bin']);
      a.dispose();
    });

    it('rename of model.json fails after weights.bin was replaced: weights.bin rolled back', async () => {
      let weightsRenamed = false;
      await failedOverwrite(
        {
          rename: async (from, to) => {
            if (path.basename(to) === 'model.json' && path.basename(from).startsWith('.model.json')) {
              throw new Error('injected rename failure');
            }
            await NODE_FS_OPS.rename(from, to);
            if (path.basename(to) === 'weights.bin') weightsRenamed = true;
          },
        },
        'injected rename failure',
      );
      expect(weightsRenamed, 'the failure really happened after weights.bin was replaced').to.equal(true);
    });
  });

  describe('router registration', () => {
    it('registering again is harmless: one handler per direction, save/load still work', async () => {
      expect(registerFileSystemRouter()).to.equal('already-registered');
      expect(registerFileSystemRouter()).to.equal('already-registered');
      expect(tf.io.getSaveHandlers(`file://${dir}`)).to.have.length(1);
      expect(tf.io.getLoadHandlers(`file://${dir}`)).to.have.length(1);
      expect(tf.io.getLoadHandlers('http://example.com/model.json').some((h) => 'nlFileSystemHandler' in h)).to.equal(false);
      const model = denseSequential(13);
      await model.save(`file://${dir}`);
      const loaded = await tf.loadLayersModel(`file://${dir}`);
      loaded.dispose();
      model.dispose();
    });

    it('in a fresh process: first call registers, second is a no-op; a foreign file:// router (tfjs-node) is left alone', () => {
      // A child process gets a fresh tfjs router registry (routers cannot be removed in-process).
      const script = `
        const tf = require('@tensorflow/tfjs');
        const { registerFileSystemRouter } = require(${JSON.stringify(path.join(__dirname, 'file-system.ts'))});
        const out = {};
        if (process.argv[1] === 'foreign') {
          const foreign = (url) => (typeof url === 'string' && url.startsWith('file://') ? { save: async () => ({}), load: async () => ({}) } : null);
          tf.io.registerSaveRouter(foreign);
          tf.io.registerLoadRouter(foreign);
        }
        out.first = registerFileSystemRouter();
        out.second = registerFileSystemRouter();
        out.save = tf.io.getSaveHandlers('file:///tmp/x').length;
        out.load = tf.io.getLoadHandlers('file:///tmp/x').length;
        process.stdout.write(JSON.stringify(out));
      `;
      const run = (mode: string) =>
        JSON.parse(
          execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script, mode], {
            cwd: path.join(__dirname, '..', '..'),
            encoding: 'utf8',
            env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' },
          }),
        );
      expect(run('fresh')).to.deep.equal({ first: 'registered', second: 'already-registered', save: 1, load: 1 });
      expect(run('foreign')).to.deep.equal({ first: 'handled-elsewhere', second: 'handled-elsewhere', save: 1, load: 1 });
    });
  });
});
