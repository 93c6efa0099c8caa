/**
 * NlLinearAttention: naive == chunked through the whole layer (outputs, final state, gradients w.r.t.
 * x, S0 and every weight), streaming == one call, batch == separate runs, finite-difference gradients,
 * (de)serialisation, leaks, bad config, and a short fit on wasm.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors, gradCheck, withBackend, roundTripInMemory } from '../../core/testing';
import { LINEAR_ATTENTION_RULES, type LinearAttentionRule } from './ops/types';
import {
  linearAttentionForward,
  NlLinearAttention,
  type LinearAttentionOptions,
  type LinearAttentionWeightName,
  type LinearAttentionWeights,
} from './layer';
import { disposeLinearAttentionState, type LinearAttentionState } from './state';
import type { LinearAttentionArgs } from './config';

const B = 2;
const D = 8;
const H = 2;
const DK = 4;
const DV = 4;

/** Random weights for every parameter the rule uses (biases included), gate logits around 1 so
 * alpha ~ 0.73 and the decays matter. Deterministic (seeded). */
function randomWeights(rule: LinearAttentionRule, seed: number): LinearAttentionWeights {
  const r = (shape: number[], s: number, mean = 0, std = 0.4): tf.Tensor => tf.randomNormal(shape, mean, std, 'float32', seed * 100 + s);
  const w: LinearAttentionWeights = {
    qKernel: r([D, H * DK], 1),
    kKernel: r([D, H * DK], 2),
    vKernel: r([D, H * DV], 3),
    outKernel: r([H * DV, D], 4),
    qBias: r([H * DK], 5, 0, 0.1),
    kBias: r([H * DK], 6, 0, 0.1),
    vBias: r([H * DV], 7, 0, 0.1),
    outBias: r([D], 8, 0, 0.1),
  };
  if (rule !== 'additive') {
    w.betaKernel = r([D, H], 9);
    w.betaBias = r([H], 10, 0, 0.5);
  }
  if (rule === 'gated-delta') {
    w.gateKernel = r([D, H], 11);
    w.gateBias = r([H], 12, 1, 0.3);
  }
  return w;
}

function options(rule: LinearAttentionRule, impl: 'naive' | 'chunked', chunkSize = 64): LinearAttentionOptions {
  return {
    numHeads: H,
    keyDim: DK,
    valueDim: DV,
    rule,
    qkNorm: rule === 'additive' ? 'none' : 'l2',
    queryScale: 'rsqrt-dk',
    impl,
    chunkSize,
    inverse: 'blocked',
  };
}

/** |a - e| <= 1e-4 (|e| + max|e|) elementwise: relative error 1e-4 with a floor at 1e-4 of the scale. */
function closeRel(a: tf.Tensor, e: tf.Tensor, name: string): void {
  const scale = tf.tidy(() => e.abs().max().dataSync()[0]);
  assertClose(a, e, { rtol: 1e-4, atol: 1e-4 * scale, name });
}

/** Layers with fixed weights (copied from `w`) for the object-level tests. */
function layerWith(args: LinearAttentionArgs, w: LinearAttentionWeights): NlLinearAttention {
  const layer = new NlLinearAttention({ numHeads: H, keyDim: DK, valueDim: DV, useBias: true, ...args });
  layer.build([null, null, D]);
  const names = layer.weights.map((v) => v.originalName.split('/').pop() as LinearAttentionWeightName);
  layer.setWeights(names.map((n) => w[n] as tf.Tensor));
  return layer;
}

describe('NlLinearAttention: naive == chunked (outputs, final state, grads w.r.t. x, S0, every weight)', function () {
  // Relative error bound 1e-4 (see closeRel), T in {1, 7, 63, 64, 130}, C in {8, 16, 32}.
  for (const rule of LINEAR_ATTENTION_RULES) {
    it(`${rule}`, () => {
      const w = randomWeights(rule, 1);
      const wNames = Object.keys(w) as LinearAttentionWeightName[];
      for (const t of [1, 7, 63, 64, 130]) {
        const x = tf.randomNormal([B, t, D], 0, 1, 'float32', t);
        const s0 = tf.randomNormal([B, H, DV, DK], 0, 0.5, 'float32', t + 1);
        const ry = tf.randomNormal([B, t, D], 0, 1, 'float32', t + 2); // random read-out of y
        const rs = tf.randomNormal([B, H, DV, DK], 0, 1, 'float32', t + 3); // and of the final S
        const run = (opts: LinearAttentionOptions) => {
          const f = (...a: tf.Tensor[]): tf.Scalar => {
            const ww = Object.fromEntries(wNames.map((n, i) => [n, a[i + 2]])) as unknown as LinearAttentionWeights;
            const r = linearAttentionForward(opts, ww, a[0], a[1]);
            return r.y.mul(ry).sum().add(r.s.mul(rs).sum()) as tf.Scalar;
          };
          const out = linearAttentionForward(opts, w, x, s0);
          return { ...out, grads: tf.grads(f)([x, s0, ...wNames.map((n) => w[n] as tf.Tensor)]) };
        };
        const ref = run(options(rule, 'naive'));
        const names = ['x', 'S0', ...wNames];
        ref.grads.forEach((g, i) => {
          const m = tf.tidy(() => g.abs().max().dataSync()[0]);
          expect(m, `${rule} T=${t}: d/d${names[i]} is not trivially zero`).to.be.above(1e-4);
        });
        for (const c of [8, 16, 32]) {
          const got = run(options(rule, 'chunked', c));
          const tag = `${rule} T=${t} C=${c}`;
          closeRel(got.y, ref.y, `${tag} y`);
          closeRel(got.s, ref.s, `${tag} S`);
          got.grads.forEach((g, i) => closeRel(g, ref.grads[i], `${tag} d/d${names[i]}`));
          tf.dispose([got.y, got.s, ...got.grads]);
        }
        tf.dispose([x, s0, ry, rs, ref.y, ref.s, ...ref.grads]);
      }
      tf.dispose(Object.values(w));
    });
  }
});

describe('NlLinearAttention: streaming and batching', () => {
  const C = 8;
  for (const rule of LINEAR_ATTENTION_RULES) {
    it(`${rule}: one call on 3C tokens == 3 calls with carried state == 3C single-token steps`, () => {
      const w = randomWeights(rule, 2);
      const layer = layerWith({ rule, chunkSize: C }, w);
      const x = tf.randomNormal([B, 3 * C, D], 0, 1, 'float32', 5);
      const start = layer.initialState(B);
      const whole = layer.forward(x, start);
      // 3 calls of C tokens
      let state: LinearAttentionState = start;
      const parts: tf.Tensor[] = [];
      for (let i = 0; i < 3; i++) {
        const r = layer.forward(x.slice([0, i * C, 0], [B, C, D]), state);
        if (state !== start) disposeLinearAttentionState(state);
        parts.push(r.y);
        state = r.state;
      }
      closeRel(tf.concat(parts, 1), whole.y, `${rule} 3 calls y`);
      closeRel(state.S, whole.state.S, `${rule} 3 calls S`);
      // 3C single-token steps
      let st: LinearAttentionState = start;
      const steps: tf.Tensor[] = [];
      for (let i = 0; i < 3 * C; i++) {
        const r = layer.step(x.slice([0, i, 0], [B, 1, D]), st);
        if (st !== start) disposeLinearAttentionState(st);
        steps.push(r.y);
        st = r.state;
      }
      closeRel(tf.concat(steps, 1), whole.y, `${rule} steps y`);
      closeRel(st.S, whole.state.S, `${rule} steps S`);
      // call() runs from zero memory: equals forward from initialState
      closeRel(layer.apply(x) as tf.Tensor, whole.y, `${rule} call y`);
      expect(tf.tidy(() => whole.state.S.abs().max().dataSync()[0]), 'memory was written').to.be.above(1e-3);
    });

    it(`${rule}: B sequences in a batch == B separate runs (each sequence has its own memory)`, () => {
      const w = randomWeights(rule, 3);
      const layer = layerWith({ rule, chunkSize: 4 }, w);
      const b = 3;
      const x = tf.randomNormal([b, 10, D], 0, 1, 'float32', 6);
      const s0 = { S: tf.randomNormal([b, H, DV, DK], 0, 0.5, 'float32', 7) as tf.Tensor4D };
      const all = layer.forward(x, s0);
      for (let i = 0; i < b; i++) {
        const one = layer.forward(x.slice([i, 0, 0], [1, 10, D]), { S: s0.S.slice([i, 0, 0, 0], [1, H, DV, DK]) as tf.Tensor4D });
        closeRel(all.y.slice([i, 0, 0], [1, 10, D]), one.y, `${rule} seq ${i} y`);
        closeRel(all.state.S.slice([i, 0, 0, 0], [1, H, DV, DK]), one.state.S, `${rule} seq ${i} S`);
      }
      // and the sequences really differ (the check above is not vacuous)
      const diff = tf.tidy(() => all.y.slice([0, 0, 0], [1, 10, D]).sub(all.y.slice([1, 0, 0], [1, 10, D])).abs().max().dataSync()[0]);
      expect(diff).to.be.above(1e-3);
    });
  }

  it('naive and chunked layers agree, and the chunked layer with qkNorm none / queryScale none too', () => {
    const w = randomWeights('delta', 4);
    const x = tf.randomNormal([B, 19, D], 0, 1, 'float32', 8);
    for (const extra of [{}, { qkNorm: 'none', queryScale: 'none' }] as LinearAttentionArgs[]) {
      const a = layerWith({ rule: 'delta', impl: 'naive', ...extra }, w).apply(x) as tf.Tensor;
      const b = layerWith({ rule: 'delta', impl: 'chunked', chunkSize: 4, ...extra }, w).apply(x) as tf.Tensor;
      closeRel(b, a, `delta ${JSON.stringify(extra)}`);
    }
  });
});

describe('NlLinearAttention: finite-difference gradient check (tiny case, chunked C=2 with a padded chunk)', () => {
  for (const rule of LINEAR_ATTENTION_RULES) {
    it(`${rule}: d/dx, d/dS0, d/dWk and d/dWbeta / d/dWalpha`, () => {
      const w = randomWeights(rule, 5);
      const x = tf.randomNormal([1, 5, D], 0, 1, 'float32', 9);
      const s0 = tf.randomNormal([1, H, DV, DK], 0, 0.5, 'float32', 10);
      const ry = tf.randomNormal([1, 5, D], 0, 1, 'float32', 11);
      const opts = options(rule, 'chunked', 2);
      const checked: LinearAttentionWeightName[] = ['kKernel'];
      if (rule !== 'additive') checked.push('betaKernel');
      if (rule === 'gated-delta') checked.push('gateKernel');
      const f = (xx: tf.Tensor, ss: tf.Tensor, ...ws: tf.Tensor[]): tf.Scalar => {
        const ww = { ...w };
        checked.forEach((n, i) => (ww[n] = ws[i]));
        const r = linearAttentionForward(opts, ww, xx, ss);
        return r.y.mul(ry).sum().add(r.s.square().sum().mul(0.1)) as tf.Scalar;
      };
      gradCheck(f, [x, s0, ...checked.map((n) => w[n] as tf.Tensor)], { name: rule, eps: 1e-2 });
    });
  }
});

describe('NlLinearAttention: serialisation', () => {
  before(() => {
    tf.serialization.registerClass(NlLinearAttention);
  });

  it('getConfig is JSON and fromConfig rebuilds an identical layer (same config, same outputs)', () => {
    const layer = new NlLinearAttention({ numHeads: H, rule: 'gated-delta', chunkSize: 16, useBias: true, kernelInitializer: 'heNormal', gateBiasInit: 2 });
    const x = tf.randomNormal([B, 6, D], 0, 1, 'float32', 12);
    const y = layer.apply(x) as tf.Tensor;
    const cfg = layer.getConfig();
    const json = JSON.parse(JSON.stringify(cfg));
    expect(json).to.deep.equal(cfg);
    expect(cfg).to.include({ dModel: D, numHeads: H, keyDim: D / H, valueDim: D / H, rule: 'gated-delta', qkNorm: 'l2', chunkSize: 16, useBias: true, gateBiasInit: 2 });
    const copy = tf.serialization.SerializationMap.getMap().classNameMap.NlLinearAttention[1](NlLinearAttention as never, json) as NlLinearAttention;
    expect(copy.getConfig()).to.deep.equal(cfg);
    copy.build(x.shape);
    copy.setWeights(layer.getWeights());
    assertClose(copy.apply(x) as tf.Tensor, y, { rtol: 0, atol: 0 });
  });

  const saveCases: LinearAttentionArgs[] = [
    { numHeads: H, rule: 'delta', chunkSize: 4, useBias: true },
    { numHeads: H, rule: 'gated-delta', qkNorm: 'none', queryScale: 'none', inverse: 'series', keyDim: 3, valueDim: 5, biasInitializer: 'ones', useBias: true },
  ];
  for (const args of saveCases) {
    it(`model save/load through an in-memory handler gives identical outputs (${args.rule})`, async () => {
      const model = tf.sequential();
      model.add(new NlLinearAttention({ inputShape: [null, D], ...args }));
      model.add(tf.layers.dense({ units: 3 }));
      const x = tf.randomNormal([B, 9, D], 0, 1, 'float32', 13);
      const y = model.predict(x) as tf.Tensor;
      const loaded = await roundTripInMemory(model);
      expect(loaded.layers[0]).to.be.instanceOf(NlLinearAttention);
      expect(loaded.layers[0].getConfig()).to.deep.equal(model.layers[0].getConfig());
      assertClose(loaded.predict(x) as tf.Tensor, y, { rtol: 0, atol: 0 });
      model.dispose();
      loaded.dispose();
    });
  }
});

describe('NlLinearAttention: no leaked tensors', () => {
  for (const rule of ['additive', 'gated-delta'] as const) {
    it(`${rule}: numTensors flat over optimizer.minimize training steps`, async () => {
      const layer = new NlLinearAttention({ numHeads: H, rule, chunkSize: 4 });
      const x = tf.randomNormal([B, 10, D], 0, 1, 'float32', 14);
      const target = tf.randomNormal([B, 10, D], 0, 1, 'float32', 15);
      const opt = tf.train.adam(1e-2);
      layer.apply(x); // build the variables before minimize collects them
      await expectNoLeakedTensors(
        () => {
          const loss = opt.minimize(() => tf.losses.meanSquaredError(target, layer.apply(x) as tf.Tensor) as tf.Scalar, true);
          loss?.dispose();
        },
        { warmup: 2, iterations: 6, name: `${rule} training` },
      );
      opt.dispose();
      tf.dispose([x, target]);
      layer.dispose();
    });
  }

  for (const [rule, impl] of [...LINEAR_ATTENTION_RULES.map((r) => [r, 'chunked'] as const), ['gated-delta', 'naive'] as const]) {
    it(`${rule} (${impl}): numTensors flat over streaming steps (caller disposes the old state)`, async () => {
      const layer = new NlLinearAttention({ numHeads: H, rule, dModel: D, impl });
      const x = tf.randomNormal([B, 1, D], 0, 1, 'float32', 16);
      let state = layer.initialState(B);
      await expectNoLeakedTensors(
        () => {
          const r = layer.step(x, state);
          disposeLinearAttentionState(state);
          state = r.state;
          r.y.dispose();
        },
        { warmup: 2, iterations: 20, name: `${rule} streaming` },
      );
      disposeLinearAttentionState(state);
      x.dispose();
      layer.dispose();
    });
  }
});

describe('NlLinearAttention: bad config and bad input name the field', () => {
  const cases: Array<[LinearAttentionArgs, RegExp]> = [
    [{ numHeads: 0 }, /^NlLinearAttention\.numHeads: must be a positive integer, got 0/],
    [{ dModel: 8, numHeads: 3 }, /^NlLinearAttention\.numHeads: must be a positive integer dividing dModel=8 .*got 3/],
    [{ dModel: -1 }, /^NlLinearAttention\.dModel: must be a positive integer/],
    [{ keyDim: 1.5 }, /^NlLinearAttention\.keyDim: must be a positive integer, got 1\.5/],
    [{ valueDim: 0 }, /^NlLinearAttention\.valueDim: must be a positive integer/],
    [{ rule: 'hebbian' as never }, /^NlLinearAttention\.rule: must be one of 'additive', 'delta', 'gated-delta', got "hebbian"/],
    [{ qkNorm: 'l1' as never }, /^NlLinearAttention\.qkNorm: must be one of 'l2', 'none'/],
    [{ queryScale: 2 as never }, /^NlLinearAttention\.queryScale: must be one of/],
    [{ chunkSize: 0 }, /^NlLinearAttention\.chunkSize: must be a positive integer, got 0/],
    [{ impl: 'fast' as never }, /^NlLinearAttention\.impl: must be one of 'chunked', 'naive'/],
    [{ inverse: 'lu' as never }, /^NlLinearAttention\.inverse: must be one of 'blocked', 'series'/],
    [{ useBias: 'yes' as never }, /^NlLinearAttention\.useBias: must be a boolean/],
    [{ kernelInitializer: 'bogus' as never }, /^NlLinearAttention\.kernelInitializer: must be one of/],
    [{ biasInitializer: { className: 'NoSuchInit', config: {} } }, /^NlLinearAttention\.biasInitializer: unknown initializer className 'NoSuchInit'/],
    [{ betaBiasInit: NaN }, /^NlLinearAttention\.betaBiasInit: must be a finite number/],
    [{ gateBiasInit: 'high' as never }, /^NlLinearAttention\.gateBiasInit: must be a finite number/],
  ];
  for (const [args, re] of cases) {
    it(`${JSON.stringify(args)} -> ${re.source.slice(1, 40)}...`, () => {
      expect(() => new NlLinearAttention(args)).to.throw(re);
    });
  }

  it('numHeads must divide the inferred dModel at build time', () => {
    expect(() => new NlLinearAttention({ numHeads: 3 }).apply(tf.zeros([1, 2, 8]))).to.throw(
      /NlLinearAttention\.numHeads: must be a positive integer dividing dModel=8/,
    );
    // explicit per-head widths lift the divisibility requirement
    const y = new NlLinearAttention({ numHeads: 3, keyDim: 2, valueDim: 5 }).apply(tf.zeros([1, 2, 8])) as tf.Tensor;
    expect(y.shape).to.deep.equal([1, 2, 8]);
  });

  it('wrong input width, rank or state shape', () => {
    const layer = new NlLinearAttention({ numHeads: H, dModel: D });
    expect(() => layer.apply(tf.zeros([1, 3, 6]))).to.throw(/NlLinearAttention\.dModel: input last dimension 6 does not match dModel=8/);
    expect(() => layer.forward(tf.zeros([3, 8]))).to.throw(/NlLinearAttention: input must be \[B, T, D\]/);
    const bad = { S: tf.zeros([2, H, DV, DK + 1]) as tf.Tensor4D };
    expect(() => layer.forward(tf.zeros([2, 3, 8]), bad)).to.throw(/NlLinearAttention\.state\.S: shape \[2,2,4,5\] does not match expected \[2,2,4,4\]/);
    expect(() => layer.step(tf.zeros([2, 1, 8]), undefined as never)).to.throw(/NlLinearAttention\.step: state is required/);
    expect(() => new NlLinearAttention({ numHeads: 2 }).initialState(1)).to.throw(/NlLinearAttention\.keyDim: unknown until the layer is built/);
    expect(() => layer.initialState(0)).to.throw(/NlLinearAttention\.initialState: batchSize must be a positive integer/);
  });
});

describe('NlLinearAttention: fit on wasm', () => {
  it('a tiny model (delta rule + dense layers) learns an exponential moving average of its inputs', async () => {
    await withBackend('wasm', async () => {
      const t = 12;
      const n = 32;
      // y_t = 0.5 y_{t-1} + 0.5 x_t: needs memory of the past. The best per-token model (y = 0.5 x_t)
      // leaves an MSE of 1/3 - 1/4 = 0.083; the delta rule with a constant key and beta = 0.5 is exact.
      const x = tf.randomNormal([n, t, 4], 0, 1, 'float32', 17);
      const y = tf.tidy(() => {
        const outs: tf.Tensor[] = [];
        let s: tf.Tensor = tf.zeros([n, 4]);
        for (let i = 0; i < t; i++) {
          s = s.mul(0.5).add(x.slice([0, i, 0], [n, 1, 4]).reshape([n, 4]).mul(0.5));
          outs.push(s);
        }
        return tf.stack(outs, 1);
      });
      const init = (seed: number) => tf.initializers.glorotUniform({ seed });
      const model = tf.sequential();
      model.add(tf.layers.dense({ inputShape: [t, 4], units: 16, kernelInitializer: init(1) }));
      model.add(new NlLinearAttention({ numHeads: 2, rule: 'delta', chunkSize: 4, kernelInitializer: init(11) }));
      model.add(tf.layers.dense({ units: 4, kernelInitializer: init(21) }));
      model.compile({ optimizer: tf.train.adam(0.02), loss: 'meanSquaredError' });
      const hist = await model.fit(x, y, { epochs: 30, batchSize: 16, verbose: 0, shuffle: false });
      const losses = hist.history.loss as number[];
      expect(losses.every(Number.isFinite)).to.equal(true);
      expect(losses[losses.length - 1]).to.be.below(0.05); // from ~0.37; below the per-token optimum
      model.dispose();
      tf.dispose([x, y]);
    });
  });
});
