import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { definePlugin, type OptimizerClass } from '../plugin';
import { assertClose, expectNoLeakedTensors } from '../testing';
import { NlTransformOptimizer, transformOptimizer, type NamedTensor } from './optimizer';
import { buildTransform, type TransformSpec } from './registry';
import type { NamedTensors } from './transform';

let uid = 0;
/** A fresh, uniquely named trainable variable. */
function variable(values: number[] | number[][], name = 'w'): tf.Variable {
  return tf.variable(tf.tensor(values), true, `nlt${++uid}/${name}`);
}

const EVERY2_MOMENTUM: TransformSpec = {
  transform: 'everyK',
  config: { k: 2, transform: { transform: 'momentum', config: { learningRate: 0.1, beta: 0.5 } } },
};

/** Copies of what getWeights returns (its tensors are live variables). */
async function snapshotWeights(opt: tf.Optimizer): Promise<NamedTensor[]> {
  return (await opt.getWeights()).map((w) => ({ name: w.name, tensor: w.tensor.clone() }));
}

describe('transforms/NlTransformOptimizer', () => {
  before(() => {
    // The plugin registry registers manifest classes; here we do it ourselves.
    tf.serialization.registerClass(NlTransformOptimizer as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);
  });

  it('is a tf.Optimizer the plugin manifest accepts', () => {
    const cls: OptimizerClass = NlTransformOptimizer;
    expect(cls.className).to.equal('NlTransformOptimizer');
    expect(() => definePlugin({ name: 'transforms-test', version: '0.0.0', optimizers: [NlTransformOptimizer] })).to.not.throw();
    const opt = transformOptimizer('sgd', { learningRate: 1 });
    expect(opt).to.be.instanceOf(tf.Optimizer);
    expect(opt.getClassName()).to.equal('NlTransformOptimizer');
    opt.dispose();
  });

  it('applyGradients: two hand-computed momentum steps, map and array forms agree', () => {
    // momentum lr 0.1 beta 0.9 on W0 = [1, 1]: g1 = [1, -2] -> m1 = [-0.1, 0.2], W1 = [0.9, 1.2]
    // g2 = [0.5, 1] -> m2 = [-0.14, 0.08], W2 = [0.76, 1.28]
    const a = variable([1, 1]);
    const b = variable([1, 1]);
    const optA = transformOptimizer('momentum', { learningRate: 0.1, beta: 0.9 });
    const optB = transformOptimizer('momentum', { learningRate: 0.1, beta: 0.9 });
    const g1 = tf.tensor1d([1, -2]);
    const g2 = tf.tensor1d([0.5, 1]);
    optA.applyGradients({ [a.name]: g1 });
    optB.applyGradients([{ name: b.name, tensor: g1 }]);
    assertClose(a, [0.9, 1.2]);
    optA.applyGradients({ [a.name]: g2 });
    optB.applyGradients([{ name: b.name, tensor: g2 }]);
    assertClose(a, [0.76, 1.28]);
    assertClose(b, a);
    expect(optA.iterations).to.equal(2);
    expect(g1.isDisposed || g2.isDisposed).to.equal(false); // gradients belong to the caller
    tf.dispose([a, b, g1, g2]);
    optA.dispose();
    optB.dispose();
  });

  it('skips null gradients like the tfjs optimizers do', () => {
    const a = variable([1]);
    const b = variable([1]);
    const opt = transformOptimizer('sgd', { learningRate: 1 });
    const g = tf.tensor1d([2]);
    opt.applyGradients([
      { name: a.name, tensor: g },
      { name: b.name, tensor: null as unknown as tf.Tensor },
    ]);
    assertClose(a, [-1]);
    assertClose(b, [1]);
    tf.dispose([a, b, g]);
    opt.dispose();
  });

  it('minimize: hand-computed steps of (w - 3)^2, then convergence; varList restricts the update', () => {
    // sgd lr 0.1: w0 = 0, dL/dw = 2(w-3) = -6 -> w1 = 0.6; dL/dw = -4.8 -> w2 = 1.08
    const w = tf.variable(tf.scalar(0), true, `nlt${++uid}/w`);
    const other = tf.variable(tf.scalar(5), true, `nlt${++uid}/other`);
    const opt = transformOptimizer('sgd', { learningRate: 0.1 });
    const f = (): tf.Scalar => w.sub(3).square().add(other.sub(1).square()) as tf.Scalar;
    const cost = opt.minimize(f, true, [w]);
    assertClose(cost!, 9 + 16);
    cost!.dispose();
    assertClose(w, 0.6);
    assertClose(other, 5); // not in varList
    opt.minimize(f, false, [w]);
    assertClose(w, 1.08);
    for (let i = 0; i < 60; i++) opt.minimize(f); // all trainable variables
    assertClose(w, 3, { atol: 1e-3 });
    assertClose(other, 1, { atol: 1e-3 });
    tf.dispose([w, other]);
    opt.dispose();
  });

  it('model.compile + fit reduces the loss and gives the weights of applying the transform by hand', async () => {
    const spec: TransformSpec = {
      transform: 'chain',
      config: { transforms: [{ transform: 'clipByGlobalNorm', config: { maxNorm: 5 } }, { transform: 'momentum', config: { learningRate: 0.05, beta: 0.8 } }] },
    };
    const x = tf.tensor2d([[1, 0, 2], [0, 1, -1], [2, 1, 0], [-1, 2, 1], [0.5, -1, 1], [1, 1, 1]]); // [6, 3]
    const y = x.matMul(tf.tensor2d([[1], [-2], [0.5]])).add(0.3); // [6, 1]
    const kernel0 = tf.tensor2d([[0.1], [0.2], [-0.1]]);
    const bias0 = tf.tensor1d([0]);
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [3] })] });
    model.setWeights([kernel0, bias0]);
    const opt = new NlTransformOptimizer(spec);
    model.compile({ optimizer: opt, loss: 'meanSquaredError' });
    const epochs = 8;
    const hist = await model.fit(x, y, { epochs, batchSize: 6, shuffle: false, verbose: 0 });
    const losses = hist.history.loss as number[];
    expect(losses[epochs - 1]).to.be.below(0.5 * losses[0]);

    // By hand: full-batch MSE gradients, the same transform, updates added.
    const t = buildTransform(spec);
    let params: NamedTensors = { kernel: kernel0.clone(), bias: bias0.clone() };
    let state = t.init(params);
    const lossOf = (k: tf.Tensor, b: tf.Tensor): tf.Scalar => x.matMul(k).add(b).sub(y).square().mean() as tf.Scalar;
    for (let step = 1; step <= epochs; step++) {
      const [gk, gb] = tf.grads(lossOf)([params.kernel, params.bias]);
      const r = t.update({ kernel: gk, bias: gb }, state, params, step);
      const next = { kernel: params.kernel.add(r.updates.kernel), bias: params.bias.add(r.updates.bias) };
      tf.dispose([gk, gb, params, state, r.updates]);
      params = next;
      state = r.state;
    }
    const [kFit, bFit] = model.getWeights();
    assertClose(kFit, params.kernel, { rtol: 1e-4, atol: 1e-5, name: 'kernel' });
    assertClose(bFit, params.bias, { rtol: 1e-4, atol: 1e-5, name: 'bias' });
    expect(opt.iterations).to.equal(epochs);
    tf.dispose([x, y, kernel0, bias0, params, state]);
    model.dispose(); // also disposes the optimizer
  });

  it('getWeights/setWeights round trip: the next step equals an uninterrupted run', async () => {
    // everyK(2, momentum): step 4 is a boundary, so the result depends on the restored step count,
    // the accumulator and the momentum.
    const a = variable([[1, 2], [3, 4]], 'a');
    const b = variable([0.5, -0.5], 'b');
    const gA = (s: number): tf.Tensor => tf.tensor2d([[s, -1], [0.5, 2 * s]]);
    const gB = (s: number): tf.Tensor => tf.tensor1d([1 - s, 0.25 * s]);
    const step = (opt: tf.Optimizer, s: number): void => {
      const ga = gA(s);
      const gb = gB(s);
      opt.applyGradients({ [a.name]: ga, [b.name]: gb });
      tf.dispose([ga, gb]);
    };
    const optA = new NlTransformOptimizer(EVERY2_MOMENTUM);
    for (let s = 1; s <= 3; s++) step(optA, s);
    const saved = await snapshotWeights(optA);
    expect(saved.map((w) => w.name)).to.deep.equal(['iter', `${a.name}::inner/m`, `${a.name}::acc`, `${b.name}::inner/m`, `${b.name}::acc`]);
    assertClose(saved[0].tensor, 3);
    const a3 = a.clone();
    const b3 = b.clone();
    step(optA, 4); // uninterrupted
    const aRef = a.clone();
    const bRef = b.clone();
    expect(() => assertClose(aRef, a3)).to.throw(); // step 4 moved the weights

    a.assign(a3);
    b.assign(b3);
    const optB = new NlTransformOptimizer(EVERY2_MOMENTUM);
    await optB.setWeights(saved);
    tf.dispose(saved.map((w) => w.tensor)); // setWeights copied them
    expect(optB.iterations).to.equal(3);
    step(optB, 4);
    assertClose(a, aRef, { name: 'a after resume' });
    assertClose(b, bRef, { name: 'b after resume' });
    // The following step agrees too (state was written back, not only read).
    step(optA, 5);
    const aRef5 = a.clone();
    a.assign(aRef);
    b.assign(bRef);
    step(optB, 5);
    assertClose(a, aRef5);
    tf.dispose([a, b, a3, b3, aRef, bRef, aRef5]);
    optA.dispose();
    optB.dispose();
  });

  it('setWeights restores by position when the variable names changed, and refuses mismatches', async () => {
    const a = variable([1, 2], 'a');
    const optA = transformOptimizer('momentum', { learningRate: 0.5, beta: 0.5 });
    const g = tf.tensor1d([1, -1]);
    optA.applyGradients({ [a.name]: g }); // m = [-0.5, 0.5]
    const saved = await snapshotWeights(optA);
    const renamed = variable([0, 0], 'renamed');
    const optB = transformOptimizer('momentum', { learningRate: 0.5, beta: 0.5 });
    await optB.setWeights(saved);
    optB.applyGradients({ [renamed.name]: g }); // m = 0.5*[-0.5, 0.5] - 0.5*[1, -1] = [-0.75, 0.75]
    assertClose(renamed, [-0.75, 0.75]);
    const names = (await optB.getWeights()).map((w) => w.name);
    expect(names).to.deep.equal(['iter', `${renamed.name}::m`]);

    const optC = transformOptimizer('momentum', { learningRate: 0.5, beta: 0.5 });
    await optC.setWeights(saved);
    const x1 = variable([0, 0], 'x');
    const x2 = variable([0, 0], 'y');
    expect(() => optC.applyGradients({ [x1.name]: g, [x2.name]: g })).to.throw(/NlTransformOptimizer\.setWeights: restored state is for variables \[.*\], which match neither by name nor by position/);
    const optD = transformOptimizer('momentum', { learningRate: 0.5, beta: 0.5 });
    await optD.setWeights(saved);
    const wrongShape = variable([0, 0, 0], 'z');
    const g3 = tf.tensor1d([1, 1, 1]);
    expect(() => optD.applyGradients({ [wrongShape.name]: g3 })).to.throw(/state '.*::m' has shape \[2\], but the transform expects \[3\]/);
    // The failed restore changed nothing: the saved state still applies to a matching variable.
    const fits = variable([0, 0], 'fits');
    optD.applyGradients({ [fits.name]: g });
    assertClose(fits, [-0.75, 0.75]);
    const optE = transformOptimizer('sgd', { learningRate: 0.5 });
    let err: Error | null = null;
    try {
      await optE.setWeights([saved[0], { name: 'no-separator', tensor: saved[1].tensor }]);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/NlTransformOptimizer\.setWeights: state key 'no-separator' is not of the form '<param>::<slot>'/);
    tf.dispose([a, g, g3, renamed, x1, x2, wrongShape, fits, ...saved.map((w) => w.tensor)]);
    [optA, optB, optC, optD, optE].forEach((o) => o.dispose());
  });

  it('getConfig/fromConfig round trip (strings with "_" survive tfjs-layers key/string camel-casing)', () => {
    const spec: TransformSpec = {
      transform: 'partition',
      config: {
        rules: [{ match: 'kernel_?\\d*$', label: 'slow_k' }],
        default: 'rest',
        transforms: { slow_k: EVERY2_MOMENTUM as unknown as tf.serialization.ConfigDict, rest: { transform: 'sgd', config: { learningRate: 0.1 } } },
      } as never,
    };
    const opt = new NlTransformOptimizer(spec);
    const cfg = opt.getConfig();
    expect(JSON.stringify(cfg)).to.not.include('_');
    const again = NlTransformOptimizer.fromConfig(NlTransformOptimizer, JSON.parse(JSON.stringify(cfg))) as NlTransformOptimizer;
    expect(again.getConfig()).to.deep.equal(cfg);
    expect(again.gradientTransform.config).to.deep.equal(opt.gradientTransform.config);
    // Same behaviour: one kernel-like and one other variable, 2 steps each.
    const k1 = variable([1, 1], 'kernel_1');
    const k2 = variable([1, 1], 'kernel_1');
    const o1 = variable([1], 'bias');
    const o2 = variable([1], 'bias');
    const gk = tf.tensor1d([1, 2]);
    const go = tf.tensor1d([3]);
    for (let s = 0; s < 2; s++) {
      opt.applyGradients({ [k1.name]: gk, [o1.name]: go });
      again.applyGradients({ [k2.name]: gk, [o2.name]: go });
    }
    assertClose(k2, k1);
    assertClose(o2, o1);
    assertClose(o1, [1 - 0.6]); // sgd on the non-kernel
    assertClose(k1, [1 - 0.1 * 2, 1 - 0.1 * 4]); // everyK(2, momentum): one emitted update of -0.1 * sum
    tf.dispose([k1, k2, o1, o2, gk, go]);
    opt.dispose();
    again.dispose();
  });

  it('model.save/loadLayersModel with includeOptimizer resumes training exactly', async () => {
    const spec: TransformSpec = {
      transform: 'partition',
      // '_D' would be camel-cased to 'D' by tfjs-layers on load (and stop matching) without the codec.
      config: { rules: [{ match: '^dense_Dense\\d+/kernel', label: 'k' }], default: 'b', transforms: { k: EVERY2_MOMENTUM as never, b: { transform: 'sgd', config: { learningRate: 0.05 } } } },
    };
    const x = tf.tensor2d([[1, 2], [0, -1], [2, 0.5], [-1, 1]]); // [4, 2]
    const y = tf.tensor2d([[1], [0], [2], [-1]]); // [4, 1]
    const a = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2], kernelInitializer: 'ones' })] });
    a.compile({ optimizer: new NlTransformOptimizer(spec), loss: 'meanSquaredError' });
    await a.fit(x, y, { epochs: 3, batchSize: 4, shuffle: false, verbose: 0 });
    let artifacts: tf.io.ModelArtifacts | null = null;
    await a.save(
      tf.io.withSaveHandler(async (art) => {
        artifacts = art;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
      { includeOptimizer: true },
    );
    const b = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
    expect(b.optimizer).to.be.instanceOf(NlTransformOptimizer);
    expect(b.optimizer.iterations).to.equal(3);
    expect(b.weights[0].name).to.not.equal(a.weights[0].name); // renamed in this process ('..._1')
    await a.fit(x, y, { epochs: 2, batchSize: 4, shuffle: false, verbose: 0 });
    await b.fit(x, y, { epochs: 2, batchSize: 4, shuffle: false, verbose: 0 });
    const wa = a.getWeights();
    const wb = b.getWeights();
    assertClose(wb[0], wa[0], { name: 'kernel' });
    assertClose(wb[1], wa[1], { name: 'bias' });
    tf.dispose([x, y]);
    a.dispose();
    b.dispose();
  });

  it('keeps numTensors flat over many applyGradients and minimize calls', async () => {
    const a = variable([[1, 2, 3], [4, 5, 6]], 'a');
    const b = variable([1, 2, 3], 'b');
    const opt = new NlTransformOptimizer({
      transform: 'chain',
      config: { transforms: [{ transform: 'clipByGlobalNorm', config: { maxNorm: 1 } }, EVERY2_MOMENTUM as never] },
    });
    const ga = tf.fill([2, 3], 0.3);
    const gb = tf.fill([3], -0.1);
    await expectNoLeakedTensors(() => opt.applyGradients({ [a.name]: ga, [b.name]: gb }), { iterations: 20, name: 'applyGradients' });
    const f = (): tf.Scalar => a.square().sum().add(b.sum()) as tf.Scalar;
    await expectNoLeakedTensors(() => opt.minimize(f, false, [a, b]), { iterations: 20, name: 'minimize' });
    tf.dispose([a, b, ga, gb]);
    const before = tf.memory().numTensors;
    opt.dispose();
    expect(tf.memory().numTensors).to.equal(before - 4); // 2 state variables per parameter
  });

  it('rejects bad configs and inputs with errors naming the field', () => {
    expect(() => new NlTransformOptimizer({ transform: 'adamw' })).to.throw(/NlTransformOptimizer\.transform: unknown transform 'adamw' \(known: sgd, momentum/);
    expect(() => transformOptimizer('momentum', { learningRate: -0.1 })).to.throw(/NlTransformOptimizer\.config\.learningRate: must be a finite number and >= 0, got -0\.1/);
    expect(() => new NlTransformOptimizer({ transform: 'sgd', config: { learningRate: (() => 1) as never } })).to.throw(/NlTransformOptimizer\.config\.learningRate: must be JSON/);
    expect(() => new NlTransformOptimizer({ transform: 'sgd', config: { learningRate: 1 }, extra: 1 } as never)).to.throw(/NlTransformOptimizer\.extra: unknown option/);
    const opt = transformOptimizer('sgd', { learningRate: 1 });
    const g = tf.tensor1d([1]);
    expect(() => opt.applyGradients({ 'no-such-variable': g })).to.throw(/NlTransformOptimizer\.applyGradients: no registered variable named 'no-such-variable'/);
    g.dispose();
    opt.dispose();
  });
});
