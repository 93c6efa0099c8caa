import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { disposeState } from '../../core/memory-state';
import { assertClose, expectNoLeakedTensors, roundTripInMemory } from '../../core/testing';
import { NlSelfModifyingTitans } from './layer';
import { selfModifyingTitansPlugin } from './plugin';

const D = 8;

describe('NlSelfModifyingTitans layer', () => {
  before(() => tf.serialization.registerClass(NlSelfModifyingTitans));

  it('manifest', () => {
    expect(selfModifyingTitansPlugin.name).to.equal('self-modifying-titans');
    expect(selfModifyingTitansPlugin.requires).to.deep.equal(['linear-attention']);
    expect(NlSelfModifyingTitans.className.startsWith('Nl')).to.equal(true);
  });

  for (const args of [
    { parameterization: 'paper' as const, gradientMode: 'stop' as const, momentum: false, innerLoss: 'dot' as const, staticK: true },
    { gradientMode: 'stop' as const, slowRate: 0.2, staticK: true, checkpoint: false },
  ]) it(`config round trip (getConfig -> fromConfig) keeps every field, incl. gradientMode (${args.parameterization ?? 'stable'})`, () => {
    const a = new NlSelfModifyingTitans({ numHeads: 2, chunkSize: 4, memChunkSize: 8, ...args });
    a.apply(tf.zeros([1, 3, D]));
    const cfg = a.getConfig();
    expect(cfg.gradientMode).to.equal('stop');
    expect(JSON.parse(JSON.stringify(cfg))).to.deep.equal(cfg);
    const b = tf.serialization.SerializationMap.getMap().classNameMap.NlSelfModifyingTitans[1](NlSelfModifyingTitans as never, cfg) as NlSelfModifyingTitans;
    b.build([1, 3, D]);
    const { name: _n1, ...c1 } = cfg;
    const { name: _n2, ...c2 } = b.getConfig();
    expect(c2).to.deep.equal(c1);
    expect(c1.parameterization).to.equal(args.parameterization ?? 'stable');
  });

  for (const parameterization of ['stable', 'paper'] as const) it(`save/load gives identical outputs (tf.sequential, ${parameterization})`, async () => {
    const model = tf.sequential({ layers: [new NlSelfModifyingTitans({ inputShape: [null, D], numHeads: 2, chunkSize: 4, memChunkSize: 4, parameterization })] });
    const x = tf.randomNormal([2, 9, D], 0, 1, 'float32', 1);
    const y1 = model.predict(x) as tf.Tensor;
    const loaded = await roundTripInMemory(model);
    const y2 = loaded.predict(x) as tf.Tensor;
    assertClose(y2, y1, { rtol: 1e-6, atol: 1e-7 });
    expect(y1.abs().max().dataSync()[0]).to.be.greaterThan(1e-3);
    tf.dispose([x, y1, y2]);
  });

  for (const parameterization of ['stable', 'paper'] as const) it(`fit reduces the loss and leaks nothing; streaming leaks nothing (${parameterization})`, async () => {
    const model = tf.sequential({ layers: [new NlSelfModifyingTitans({ inputShape: [null, D], numHeads: 2, chunkSize: 4, memChunkSize: 4, parameterization })] });
    model.compile({ optimizer: tf.train.adam(0.02), loss: 'meanSquaredError' });
    const x = tf.randomNormal([2, 8, D], 0, 1, 'float32', 2);
    const target = x.mul(0.5); // learnable through W_q/W_o and the memories
    const first = (await model.fit(x, target, { epochs: 1, verbose: 0 })).history.loss[0] as number;
    await expectNoLeakedTensors(async () => { await model.fit(x, target, { epochs: 1, verbose: 0 }); }, { name: 'fit', iterations: 4 });
    const last = (await model.fit(x, target, { epochs: 10, verbose: 0 })).history.loss.at(-1) as number;
    expect(last).to.be.lessThan(first);
    const layer = model.layers[0] as NlSelfModifyingTitans;
    let st = layer.initialState(2);
    const x0 = x.slice([0, 0, 0], [2, 1, D]);
    await expectNoLeakedTensors(() => {
      const r = layer.step(x0, st);
      disposeState(st);
      st = r.state;
      r.y.dispose();
    }, { name: 'stream', iterations: 6 });
    disposeState(st);
    tf.dispose([x, x0, target]);
  });

  it('sentinel names layer, memory and token index', () => {
    const layer = new NlSelfModifyingTitans({ name: 'smtX', parameterization: 'paper', numHeads: 2, normalize: 'none', chunkSize: 2, memChunkSize: 2 });
    const x = tf.randomNormal([1, 5, D], 0, 1, 'float32', 3);
    layer.apply(x);
    const bad = tf.tidy(() => tf.concat([x.slice([0, 0, 0], [1, 3, D]), tf.fill([1, 1, D], NaN), x.slice([0, 4, 0], [1, 1, D])], 1));
    expect(() => layer.forward(bad)).to.throw(/smtX.*memory 'k' at token index 3/);
    const quiet = new NlSelfModifyingTitans({ parameterization: 'paper', numHeads: 2, normalize: 'none', sentinel: false });
    const r = quiet.forward(bad);
    expect(Number.isNaN(r.y.max().dataSync()[0])).to.equal(true);
    disposeState(r.state);
    tf.dispose([x, bad, r.y]);
  });

  it('bad config and input errors name the field', () => {
    expect(() => new NlSelfModifyingTitans({ numHeads: 0 })).to.throw(/numHeads/);
    expect(() => new NlSelfModifyingTitans({ gradientMode: 'half' as never })).to.throw(/gradientMode/);
    expect(() => new NlSelfModifyingTitans({ etaMax: 2.5 })).to.throw(/etaMax.*\(0, 2\]/);
    expect(() => new NlSelfModifyingTitans({ parameterization: 'paper', etaMax: 2 })).to.throw(/etaMax.*\(0, 1\]/);
    expect(() => new NlSelfModifyingTitans({ parameterization: 'fast' as never })).to.throw(/parameterization/);
    expect(() => new NlSelfModifyingTitans({ momentum: true })).to.throw(/momentum.*'stable'/);
    expect(() => new NlSelfModifyingTitans({ normalize: 'none' })).to.throw(/normalize.*'stable'/);
    expect(() => new NlSelfModifyingTitans({ slowRate: 0 })).to.throw(/slowRate/);
    expect(() => new NlSelfModifyingTitans({ checkpoint: 'yes' as never })).to.throw(/checkpoint/);
    expect(() => new NlSelfModifyingTitans({ chunkSzie: 4 } as never)).to.throw(/NlSelfModifyingTitans\.chunkSzie: unknown key/);
    expect(() => new NlSelfModifyingTitans({ innerLoss: 'cosine' as never })).to.throw(/innerLoss/);
    expect(() => new NlSelfModifyingTitans({ parameterization: 'paper', normalize: 'rms' as never })).to.throw(/normalize/);
    const l = new NlSelfModifyingTitans({ numHeads: 3 });
    expect(() => l.apply(tf.zeros([1, 2, D]))).to.throw(/numHeads/);
    const ok = new NlSelfModifyingTitans({ numHeads: 2 });
    const y = ok.apply(tf.zeros([1, 2, D])) as tf.Tensor;
    const st = ok.initialState(2);
    expect(() => ok.forward(tf.zeros([1, 2, D]), st)).to.throw(/state\.W1/);
    disposeState(st);
    y.dispose();
  });
});
