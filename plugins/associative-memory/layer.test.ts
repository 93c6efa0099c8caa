import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { disposeState } from '../../core';
import { assertClose, expectNoLeakedTensors, gradCheck, roundTripInMemory } from '../../core/testing';
import { NlAssociativeMemory, associativeMemory, type AssociativeMemoryLayerArgs } from './layer';
import { MatrixMemory } from './matrix-memory';
import { associativeMemoryPlugin } from './plugin';
import type { AssocObjective } from './config';

tf.serialization.registerClass(NlAssociativeMemory);

function rand(seed: number, n: number): number[] {
  const out: number[] = [];
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push((s / 2 ** 32) * 2 - 1);
  }
  return out;
}
const randT = (seed: number, shape: number[]): tf.Tensor => tf.tensor(rand(seed, shape.reduce((a, b) => a * b, 1)), shape);

/** Builds a layer for inputs [*, *, d] and gives every weight deterministic values (biases non-zero). */
function makeLayer(args: AssociativeMemoryLayerArgs, d: number, seed = 1): NlAssociativeMemory {
  const layer = new NlAssociativeMemory(args);
  layer.build([null, null, d]);
  layer.setWeights(layer.getWeights().map((w, i) => tf.tidy(() => randT(seed * 100 + i, w.shape).mul(0.8))));
  return layer;
}

/**
 * Reference: projections by plain matmuls, then token by token MatrixMemory.store (one pair) and
 * retrieve (one query) — a separate code path from the layer's fused loop.
 */
function reference(layer: NlAssociativeMemory, x: tf.Tensor3D): tf.Tensor {
  return tf.tidy(() => {
    const o = layer.options;
    const names = layer.weights.map((w) => w.name.split('/').pop()!);
    const W = (n: string): tf.Tensor | null => {
      const i = names.findIndex((m) => m.startsWith(n));
      return i < 0 ? null : layer.weights[i].read();
    };
    const [b, t, d] = x.shape;
    const proj = (kern: string, bias: string): tf.Tensor => {
      let y = tf.matMul(x.reshape([b * t, d]), W(kern)! as tf.Tensor2D);
      const bb = W(bias);
      if (bb) y = y.add(bb);
      return y.reshape([b, t, -1]);
    };
    const norm = (z: tf.Tensor): tf.Tensor => (o.normalizeKeys ? z.div(z.square().sum(-1, true).add(1e-6).sqrt()) : z);
    const q = norm(proj('query_kernel', 'query_bias'));
    const k = norm(proj('key_kernel', 'key_bias'));
    const v = proj('value_kernel', 'value_bias');
    const [dv, dk] = layer.memoryShape;
    const mem = new MatrixMemory({ keyDim: dk, valueDim: dv, objective: o.objective, eta: o.eta, decay: o.decay });
    const init = W('memory_init');
    let state = { memory: (init ? tf.stack(Array.from({ length: b }, () => init)) : tf.zeros([b, dv, dk])) as tf.Tensor3D };
    const ys: tf.Tensor[] = [];
    for (let i = 0; i < t; i++) {
      state = mem.store(state, k.slice([0, i, 0], [b, 1, dk]), v.slice([0, i, 0], [b, 1, dv]));
      ys.push(mem.retrieve(state, q.slice([0, i, 0], [b, 1, dk])));
    }
    const y = tf.concat(ys, 1).reshape([b * t, dv]);
    let out = tf.matMul(y as tf.Tensor2D, W('output_kernel') as tf.Tensor2D);
    const bo = W('output_bias');
    if (bo) out = out.add(bo);
    return out.reshape([b, t, d]);
  });
}

describe('NlAssociativeMemory layer', () => {
  describe('forward values', () => {
    // Identity q/k projections, a swap for v, identity output; x1 = [1, 0], x2 = [1, 1].
    const handWeights = (): tf.Tensor[] => [
      tf.tensor2d([[1, 0], [0, 1]]), // query_kernel
      tf.tensor2d([[1, 0], [0, 1]]), // key_kernel
      tf.tensor2d([[0, 1], [1, 0]]), // value_kernel: v = [x_2, x_1]
      tf.tensor2d([[1, 0], [0, 1]]), // output_kernel
    ];
    const x = (): tf.Tensor3D => tf.tensor3d([[[1, 0], [1, 1]]]);

    it('hand-computed Hebbian (eta 1): y = [[0, 1], [2, 3]]', () => {
      const layer = new NlAssociativeMemory({ objective: 'dot', eta: 1, normalizeKeys: false });
      layer.build([1, 2, 2]);
      layer.setWeights(handWeights());
      // M1 = v1 k1^T = [[0,0],[1,0]], y1 = M1 q1 = [0, 1]; M2 = M1 + [1,1][1,1]^T = [[1,1],[2,1]], y2 = M2 [1,1] = [2, 3].
      assertClose(layer.apply(x()) as tf.Tensor, [[[0, 1], [2, 3]]]);
    });

    it('hand-computed delta rule (eta 0.5): y = [[0, 0.5], [1, 1]] (read after write)', () => {
      const layer = new NlAssociativeMemory({ objective: 'l2', eta: 0.5, normalizeKeys: false });
      layer.build([1, 2, 2]);
      layer.setWeights(handWeights());
      // M1 = 0.5 v1 k1^T = [[0,0],[0.5,0]], y1 = [0, 0.5];
      // err = M1 k2 - v2 = [-1, -0.5], M2 = M1 - 0.5 err k2^T = [[0.5,0.5],[0.75,0.25]], y2 = [1, 1].
      assertClose(layer.apply(x()) as tf.Tensor, [[[0, 0.5], [1, 1]]]);
    });

    for (const objective of ['dot', 'l2', 'cosine'] as const) {
      it(`${objective}: equals a token-by-token MatrixMemory reference (biases, normalised keys, decay, dk != dv)`, () => {
        const layer = makeLayer({ objective, eta: 0.4, decay: 0.1, useBias: true, keyDim: 3, valueDim: 2 }, 4, 3);
        const xs = randT(7, [2, 5, 4]) as tf.Tensor3D;
        const y = layer.apply(xs) as tf.Tensor;
        expect(y.shape).to.deep.equal([2, 5, 4]);
        assertClose(y, reference(layer, xs), { rtol: 1e-4, atol: 1e-5 });
        expect(layer.options.initialMemory).to.equal(objective === 'cosine' ? 'learned' : 'zeros');
        tf.dispose([xs, y]);
      });
    }
  });

  describe('streaming and batching', () => {
    for (const objective of ['l2', 'cosine'] as const) {
      it(`${objective}: one call == 3 + 3 tokens with carried state == 6 single-token calls`, () => {
        tf.tidy(() => {
          const layer = makeLayer({ objective, eta: 0.5, decay: 0.05, keyDim: 3, valueDim: 3 }, 4, 5);
          const xs = randT(11, [2, 6, 4]) as tf.Tensor3D;
          const whole = layer.stream(xs);
          assertClose(layer.apply(xs) as tf.Tensor, whole.output, { name: 'call == stream' });
          const a = layer.stream(xs.slice([0, 0, 0], [2, 3, 4]));
          const b = layer.stream(xs.slice([0, 3, 0], [2, 3, 4]), a.state);
          assertClose(tf.concat([a.output, b.output], 1), whole.output, { rtol: 1e-4, atol: 1e-5, name: '3+3 output' });
          assertClose(b.state.memory, whole.state.memory, { rtol: 1e-4, atol: 1e-5, name: '3+3 state' });
          let st = layer.initialState(2);
          const outs: tf.Tensor[] = [];
          for (let i = 0; i < 6; i++) {
            const r = layer.stream(xs.slice([0, i, 0], [2, 1, 4]), st);
            outs.push(r.output);
            st = r.state;
          }
          assertClose(tf.concat(outs, 1), whole.output, { rtol: 1e-4, atol: 1e-5, name: 'token by token' });
          assertClose(st.memory, whole.state.memory, { rtol: 1e-4, atol: 1e-5, name: 'token-by-token state' });
        });
      });
    }

    it('batch rows are independent: B=2 equals two B=1 runs', () => {
      tf.tidy(() => {
        const layer = makeLayer({ objective: 'l2', eta: 0.5, keyDim: 3, valueDim: 2 }, 4, 9);
        const xs = randT(12, [2, 4, 4]) as tf.Tensor3D;
        const y = layer.apply(xs) as tf.Tensor;
        for (const r of [0, 1]) assertClose(y.slice([r, 0, 0], [1, 4, 4]), layer.apply(xs.slice([r, 0, 0], [1, 4, 4])) as tf.Tensor, { name: `row ${r}` });
      });
    });
  });

  describe('serialisation', () => {
    it('getConfig holds only JSON values and round-trips through fromConfig (same outputs with same weights)', () => {
      const layer = makeLayer({ name: 'am', objective: 'cosine', eta: 0.3, decay: 0.2, keyDim: 3, useBias: true, gradientMode: 'stop' }, 4, 13);
      const cfg = layer.getConfig();
      const json = JSON.parse(JSON.stringify(cfg));
      expect(json).to.deep.equal(cfg);
      expect(cfg).to.include({ objective: 'cosine', eta: 0.3, decay: 0.2, keyDim: 3, valueDim: null, useBias: true, normalizeKeys: true, initialMemory: 'learned', gradientMode: 'stop' });
      const clone = NlAssociativeMemory.fromConfig(NlAssociativeMemory, json) as NlAssociativeMemory;
      expect(clone.getConfig()).to.deep.equal(cfg);
      clone.build([null, null, 4]);
      clone.setWeights(layer.getWeights());
      const xs = randT(14, [1, 3, 4]);
      assertClose(clone.apply(xs) as tf.Tensor, layer.apply(xs) as tf.Tensor);
    });

    it('a tf.sequential model saves and loads (in-memory handler) with identical outputs', async () => {
      const model = tf.sequential({
        layers: [associativeMemory({ inputShape: [5, 4], objective: 'l2', eta: 0.6, decay: 0.1, keyDim: 3, valueDim: 2, useBias: true }), tf.layers.dense({ units: 2 })],
      });
      const xs = randT(15, [2, 5, 4]);
      const before = model.predict(xs) as tf.Tensor;
      const loaded = await roundTripInMemory(model);
      const layer = loaded.layers[0] as NlAssociativeMemory;
      expect(layer).to.be.instanceOf(NlAssociativeMemory);
      expect(layer.getConfig()).to.include({ objective: 'l2', eta: 0.6, decay: 0.1, keyDim: 3, valueDim: 2 });
      const after = loaded.predict(xs) as tf.Tensor;
      assertClose(after, before, { rtol: 0, atol: 0, name: 'loaded model output' });
      tf.dispose([xs, before, after]);
      model.dispose();
      loaded.dispose();
    });
  });

  describe('training', () => {
    it('model.fit reduces the loss (40 epochs: below 0.7x the first epoch; measured 0.2505 -> 0.1433)', async () => {
      // Target at step t: the input at step t-1 (only reachable through the memory of earlier tokens).
      const xs = tf.tidy(() => randT(16, [4, 6, 3]));
      const ys = tf.tidy(() => tf.concat([tf.zeros([4, 1, 3]), xs.slice([0, 0, 0], [4, 5, 3])], 1));
      const model = tf.sequential({ layers: [associativeMemory({ inputShape: [6, 3], objective: 'l2', eta: 0.8, keyDim: 4, valueDim: 4 })] });
      // Deterministic start (glorot draws are unseeded).
      model.setWeights(model.getWeights().map((w, i) => tf.tidy(() => randT(160 + i, w.shape).mul(0.6))));
      model.compile({ optimizer: tf.train.adam(0.03), loss: 'meanSquaredError' });
      const h = await model.fit(xs, ys, { epochs: 40, batchSize: 4, verbose: 0, shuffle: false });
      const losses = h.history.loss as number[];
      expect(losses[losses.length - 1]).to.be.lessThan(0.7 * losses[0]);
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it("gradients: 'full' reaches every kernel; 'stop' leaves key/value kernels at exactly zero", () => {
      for (const gradientMode of ['full', 'stop'] as const) {
        const layer = makeLayer({ objective: 'l2', eta: 0.5, keyDim: 3, valueDim: 3, gradientMode }, 3, 17);
        const xs = randT(18, [2, 4, 3]);
        const vars = layer.trainableWeights.map((w) => w.read() as tf.Variable);
        const { value, grads } = tf.variableGrads(() => (layer.apply(xs) as tf.Tensor).square().mean() as tf.Scalar, vars);
        const norms: Record<string, number> = {};
        for (const w of layer.trainableWeights) norms[w.name.split('/').pop()!.replace(/_\d+$/, '')] = grads[(w.read() as tf.Variable).name].abs().max().arraySync() as number;
        expect(norms.query_kernel, `${gradientMode} q`).to.be.greaterThan(1e-4);
        expect(norms.output_kernel, `${gradientMode} o`).to.be.greaterThan(1e-4);
        if (gradientMode === 'full') {
          expect(norms.key_kernel, 'full k').to.be.greaterThan(1e-4);
          expect(norms.value_kernel, 'full v').to.be.greaterThan(1e-4);
        } else {
          expect(norms.key_kernel, 'stop k').to.equal(0);
          expect(norms.value_kernel, 'stop v').to.equal(0);
        }
        tf.dispose([xs, value, ...Object.values(grads)]);
      }
    });

    it('autodiff through the recurrence matches finite differences (d output / d input)', () => {
      const layer = makeLayer({ objective: 'l2', eta: 0.5, keyDim: 2, valueDim: 2 }, 2, 19);
      const xs = randT(20, [1, 3, 2]);
      const w = randT(21, [1, 3, 2]);
      gradCheck((x) => (layer.apply(x) as tf.Tensor).mul(w).sum() as tf.Scalar, [xs], { name: 'layer' });
      tf.dispose([xs, w]);
    });

    it('backpropagates a one-token call (tfjs 4.22 unstack-gradient regression) and matches finite differences', () => {
      const layer = makeLayer({ objective: 'l2', eta: 0.5, keyDim: 2, valueDim: 2 }, 2, 23);
      const xs = randT(24, [2, 1, 2]);
      const w = randT(25, [2, 1, 2]);
      gradCheck((x) => (layer.apply(x) as tf.Tensor).mul(w).sum() as tf.Scalar, [xs], { name: 'layer T=1' });
      tf.dispose([xs, w]);
    });
  });

  describe('errors and leaks', () => {
    it('bad config names the field', () => {
      const bad: Array<[AssociativeMemoryLayerArgs, RegExp]> = [
        [{ eta: -1 }, /NlAssociativeMemory\.eta: must be a finite number >= 0, got -1/],
        [{ eta: NaN }, /NlAssociativeMemory\.eta/],
        [{ decay: 1.2 }, /NlAssociativeMemory\.decay: must be a number in \[0, 1\), got 1.2/],
        [{ objective: 'huber' as AssocObjective }, /NlAssociativeMemory\.objective: must be one of 'dot', 'l2', 'cosine', got "huber"/],
        [{ keyDim: 0 }, /NlAssociativeMemory\.keyDim: must be a positive integer, got 0/],
        [{ valueDim: 2.5 }, /NlAssociativeMemory\.valueDim/],
        [{ objective: 'cosine', initialMemory: 'zeros' }, /NlAssociativeMemory\.initialMemory: 'zeros' is invalid with objective 'cosine'/],
        [{ initialMemory: 'ones' as never }, /NlAssociativeMemory\.initialMemory: must be one of/],
        [{ gradientMode: 'half' as never }, /NlAssociativeMemory\.gradientMode: must be one of 'full', 'stop'/],
        [{ normalizeKeys: 'yes' as never }, /NlAssociativeMemory\.normalizeKeys: must be a boolean/],
      ];
      for (const [args, re] of bad) expect(() => new NlAssociativeMemory(args), JSON.stringify(args)).to.throw(re);
    });

    it('bad inputs and state name what is wrong', () => {
      const layer = makeLayer({ keyDim: 3, valueDim: 2 }, 4);
      expect(() => layer.apply(tf.zeros([2, 4]))).to.throw(/NlAssociativeMemory '.*': inputs: must be \[B, T, D=4\], got shape \[2,4\]/);
      expect(() => layer.stream(tf.zeros([2, 3, 5]))).to.throw(/inputs: must be \[B, T, D=4\], got shape \[2,3,5\]/);
      expect(() => layer.stream(tf.zeros([2, 0, 4]))).to.throw(/at least one token/);
      const wrong = { memory: tf.zeros([2, 3, 2]) as tf.Tensor3D };
      expect(() => layer.stream(tf.zeros([2, 3, 4]), wrong)).to.throw(/stream: state\.memory: shape \[2,3,2\] does not match expected \[2,2,3\]/);
      expect(() => new NlAssociativeMemory({}).memoryShape).to.throw(/known after build/);
    });

    it('no tensors leak: apply, streaming with carried state, and training steps', async () => {
      const layer = makeLayer({ objective: 'cosine', eta: 0.3, decay: 0.1, keyDim: 3, valueDim: 2, useBias: true }, 4, 23);
      const xs = randT(24, [2, 3, 4]);
      await expectNoLeakedTensors(() => (layer.apply(xs) as tf.Tensor).dispose(), { name: 'apply' });
      let state = layer.initialState(2);
      await expectNoLeakedTensors(() => {
        const r = layer.stream(xs, state);
        disposeState(state);
        state = r.state;
        r.output.dispose();
      }, { name: 'stream', iterations: 8 });
      disposeState(state);
      const opt = tf.train.sgd(0.01);
      await expectNoLeakedTensors(() => {
        opt.minimize(() => (layer.apply(xs) as tf.Tensor).square().mean() as tf.Scalar);
      }, { name: 'training step' });
      opt.dispose();
      xs.dispose();
    });
  });

  it('plugin manifest lists the layer and the capability', () => {
    expect(associativeMemoryPlugin.name).to.equal('associative-memory');
    expect(associativeMemoryPlugin.version).to.equal('0.1.0');
    expect(associativeMemoryPlugin.layers).to.deep.equal([NlAssociativeMemory]);
    expect(associativeMemoryPlugin.capabilities).to.deep.equal(['associative-memory']);
    expect(NlAssociativeMemory.className).to.equal('NlAssociativeMemory');
    expect(Object.isFrozen(associativeMemoryPlugin)).to.equal(true);
  });
});
