import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../../core/testing';
import { loadTrainerCheckpoint, saveTrainerCheckpoint } from '../scheduler';
import { tokenCrossEntropy } from '../scheduler';
import { NestedTrainer } from '../scheduler';
import { disposeStates } from '../../core';
import { NlContinuumMemorySystem } from '../cms';
import { NlHopeBlock, NlResidualBlock, LanguageModel, blockSpec, BLOCK_KINDS, rmsNorm, type BlockKind, type LanguageModelConfig } from './index';

const V = 11;
const D = 16;
const CMS_LEVELS = [{ period: 4, learningRate: 0.1 }, { period: 0 }];

function config(kind: BlockKind, blocks = 1): LanguageModelConfig {
  // chunk 4 with 9-token calls: token-by-token calls cut every chunk, so the carried partial chunks are exercised
  const chunkSize = 4;
  return { vocabSize: V, dModel: D, blocks: Array.from({ length: blocks }, () => blockSpec(kind, { numHeads: 2, chunkSize, cmsLevels: CMS_LEVELS })) };
}

function ids(b: number, t: number, seed: number): tf.Tensor2D {
  const out: number[][] = [];
  let s = seed;
  for (let i = 0; i < b; i++) {
    out.push([]);
    for (let j = 0; j < t; j++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      out[i].push(s % V);
    }
  }
  return tf.tensor2d(out, [b, t], 'int32');
}

describe('plugin hope', () => {
  for (const kind of BLOCK_KINDS) {
    it(`${kind}: token-by-token with carried state == parallel forward (logits), and the states agree`, () => {
      const lm = new LanguageModel(config(kind, 2));
      // short-conv taps start at zero: make them non-zero so the carried conv tail matters
      const convs = lm.blocks.flatMap((bl) => bl.weights.filter((w) => w.name.includes('convKernel')));
      expect(convs.length).to.equal(kind === 'hope' ? 2 : 0);
      convs.forEach((w, i) => w.write(tf.randomNormal(w.shape as number[], 0, 0.5, 'float32', 20 + i)));
      const x = ids(2, 9, 7);
      const full = lm.forward(x, null);
      let st = lm.initialStates(2);
      const parts: tf.Tensor[] = [];
      for (let i = 0; i < 9; i++) {
        const r = lm.forward(x.slice([0, i], [2, 1]), st);
        disposeStates(st);
        st = r.states;
        parts.push(r.logits);
      }
      const step = tf.concat(parts, 1);
      expect(full.logits.abs().max().dataSync()[0]).to.be.greaterThan(1e-3); // not trivially zero
      assertClose(step, full.logits, { rtol: 2e-4, atol: 2e-5, name: `${kind} logits` });
      st.forEach((s, i) => {
        for (const k of Object.keys(s ?? {})) assertClose(s![k], full.states[i]![k], { rtol: 2e-4, atol: 2e-5, name: `${kind} stage ${i} state ${k}` });
      });
      tf.dispose([...parts, step, full.logits, x]);
      disposeStates(st);
      disposeStates(full.states);
      lm.dispose();
    });
  }

  it('generate (greedy) streams the same ids as re-running the parallel forward on the growing sequence', async () => {
    const lm = new LanguageModel(config('hope'));
    const prompt = [1, 5, 2];
    const streamed: number[] = [];
    const got = await lm.generate(prompt, { tokens: 6, temperature: 0, onToken: (id) => streamed.push(id) });
    const seq = [...prompt];
    for (let i = 0; i < 6; i++) {
      const lg = lm.logits(tf.tensor2d([seq], [1, seq.length], 'int32'));
      seq.push(tf.tidy(() => lg.slice([0, seq.length - 1, 0], [1, 1, V]).reshape([V]).argMax().dataSync()[0]));
      lg.dispose();
    }
    expect(got).to.deep.equal(seq.slice(3));
    expect(streamed).to.deep.equal(got);
    lm.dispose();
  });

  it('generate leaves no tensors behind, greedy and sampled (temperature > 0, with and without top-k)', async () => {
    const lm = new LanguageModel(config('hope'), { seed: 3 });
    for (const o of [{ temperature: 0 }, { temperature: 0.8 }, { temperature: 0.8, topK: 4 }, { temperature: 1.5, topK: 0 }]) {
      await lm.generate([1, 5, 2], { tokens: 2, ...o }); // warm-up (kernels, lazily built state)
      const before = tf.memory().numTensors;
      const got = await lm.generate([1, 5, 2], { tokens: 10, seed: 7, ...o });
      expect(got.length).to.equal(10);
      expect(tf.memory().numTensors - before, `tensors left by generate(${JSON.stringify(o)}) of 10 tokens`).to.equal(0);
    }
    lm.dispose();
  });

  it('NlHopeBlock computes x1 = x + SMT(conv4(norm1 x)), y = x1 + (CMS(norm2 x1) - norm2 x1) (Eqs. 94-97; CMS levels are residual)', () => {
    const block = new NlHopeBlock({ mixer: { className: 'NlSelfModifyingTitans', config: { numHeads: 2, chunkSize: 4, memChunkSize: 4 } } });
    const x = tf.randomNormal([2, 5, D], 0, 1, 'float32', 3);
    const y = block.apply(x) as tf.Tensor;
    // non-trivial norm scales (ones at init) and short-conv taps (zeros at init)
    const w = block.getWeights();
    expect(w[2].shape).to.deep.equal([4, D]); // conv window 4 by default
    const taps = tf.randomNormal([4, D], 0, 0.5, 'float32', 9);
    block.setWeights([tf.linspace(0.5, 1.5, D), tf.linspace(1.2, 0.3, D), taps, ...w.slice(3)]);
    const y2 = block.apply(x) as tf.Tensor;
    const expected = tf.tidy(() => {
      const [g1, g2] = block.getWeights();
      const n1 = rmsNorm(x, g1, 1e-6);
      const padded = tf.pad(n1, [[0, 0], [3, 0], [0, 0]]); // [B, 3+T, D]: zeros before the first token
      let h1 = n1;
      for (let j = 0; j < 4; j++) h1 = h1.add(padded.slice([0, 3 - j, 0], [2, 5, D]).mul(taps.slice([j, 0], [1, D]))); // h_t += w_j h_{t-j}
      const x1 = x.add(block.mixer.apply(h1) as tf.Tensor);
      const h2 = rmsNorm(x1, g2, 1e-6);
      return x1.add((block.ffn.apply(h2) as tf.Tensor).sub(h2));
    });
    assertClose(y2, expected, { rtol: 1e-5, atol: 1e-6 });
    expect(tf.sub(y, y2).abs().max().dataSync()[0]).to.be.greaterThan(1e-4); // the norm scales and taps matter
    expect(block.ffn).to.be.instanceOf(NlContinuumMemorySystem);
    // every parameter is visible: own norms and conv + SMT + CMS
    expect(block.countParams()).to.equal(2 * D + 4 * D + block.mixer.countParams() + block.ffn.countParams());
    tf.dispose([x, y, y2, expected, taps]);
  });

  it('NestedTrainer drives the CMS levels inside every HOPE block (ids <block>/ffn/level<l>), memorize changes the fast weights', () => {
    const lm = new LanguageModel(config('hope', 2));
    const trainer = new NestedTrainer(lm.nested, { loss: tokenCrossEntropy, optimizer: tf.train.adam(1e-2) });
    expect(trainer.levels().map((l) => `${l.id}:${l.period}`)).to.deep.equal(['block0/ffn/level0:4', 'block0/ffn/level1:0', 'block1/ffn/level0:4', 'block1/ffn/level1:0']);
    const x = ids(2, 13, 3);
    const inp = x.slice([0, 0], [2, 12]);
    const tgt = x.slice([0, 1], [2, 12]);
    const before = trainer.predict(inp);
    const r = trainer.memorize(inp, tgt, { newContext: true });
    expect(Number.isFinite(r.loss)).to.equal(true);
    const clocks = trainer.levelClocks();
    expect(clocks.find((c) => c.id === 'block0/ffn/level0')!.updatesFired).to.equal(3); // 12 tokens / period 4
    const fast = trainer.memoryState(1)!['ffn/L0/w1'];
    const init = ((lm.blocks[0] as NlResidualBlock).ffn as NlContinuumMemorySystem).variable(0, 'w1').read(); // meta-learned initial weights
    expect(tf.sub(fast, init.expandDims(0)).abs().max().dataSync()[0]).to.be.greaterThan(1e-6); // learned in context
    const after = trainer.predict(inp);
    expect(tf.sub(after, before).abs().max().dataSync()[0]).to.be.greaterThan(1e-6);
    trainer.resetMemory();
    const reset = trainer.predict(inp);
    assertClose(reset, before, { rtol: 1e-5, atol: 1e-6 });
    tf.dispose([x, inp, tgt, before, after, reset]);
    trainer.dispose();
    lm.dispose();
  });

  it('save/load: a fresh model loads the checkpoint, gives identical logits and the same next training loss', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-hope-'));
    const make = (): { lm: LanguageModel; tr: NestedTrainer } => {
      const lm = new LanguageModel({ ...config('hope'), tieEmbeddings: false });
      return { lm, tr: new NestedTrainer(lm.nested, { loss: tokenCrossEntropy, optimizer: tf.train.adam(1e-2), clipNorm: 1 }) };
    };
    const a = make();
    const x = ids(2, 9, 5);
    const inp = x.slice([0, 0], [2, 8]);
    const tgt = x.slice([0, 1], [2, 8]);
    a.tr.train(inp, tgt);
    a.tr.train(inp, tgt);
    await saveTrainerCheckpoint(a.tr, dir);
    const b = make();
    await loadTrainerCheckpoint(b.tr, dir);
    const la = a.lm.logits(inp);
    const lb = b.lm.logits(inp);
    assertClose(lb, la, { rtol: 0, atol: 0 });
    const na = a.tr.train(inp, tgt).loss;
    const nb = b.tr.train(inp, tgt).loss;
    expect(Math.abs(na - nb)).to.be.lessThan(1e-5 * Math.abs(na));
    tf.dispose([x, inp, tgt, la, lb]);
    a.tr.dispose();
    b.tr.dispose();
    a.lm.dispose();
    b.lm.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('training a HOPE LM lowers the loss on a repeated batch and leaks no tensors', async () => {
    const lm = new LanguageModel(config('hope'));
    const tr = new NestedTrainer(lm.nested, { loss: tokenCrossEntropy, optimizer: tf.train.adam(3e-2) });
    const x = ids(2, 9, 11);
    const inp = x.slice([0, 0], [2, 8]);
    const tgt = x.slice([0, 1], [2, 8]);
    const losses: number[] = [];
    await expectNoLeakedTensors(() => losses.push(tr.train(inp, tgt).loss), { warmup: 2, iterations: 6, name: 'hope LM training' });
    expect(losses[losses.length - 1]).to.be.lessThan(losses[0] - 0.05);
    tf.dispose([x, inp, tgt]);
    tr.dispose();
    lm.dispose();
  });

  it('getConfig is JSON and rebuilds the same block (same weights -> same output)', () => {
    const a = new NlResidualBlock(blockSpec('gated-deltanet', { numHeads: 2 }).config as object);
    const x = tf.randomNormal([1, 6, D], 0, 1, 'float32', 5);
    const ya = a.apply(x) as tf.Tensor;
    const cfg = JSON.parse(JSON.stringify(a.getConfig()));
    delete cfg.name;
    const b = new NlResidualBlock(cfg);
    b.build([1, 6, D]);
    b.setWeights(a.getWeights());
    assertClose(b.apply(x) as tf.Tensor, ya, { rtol: 1e-6, atol: 1e-7 });
    expect(cfg.mixer.config.rule).to.equal('gated-delta');
    tf.dispose([x, ya]);
  });

  it('bad configs name the field', () => {
    expect(() => new LanguageModel({ vocabSize: V, dModel: D, blocks: [{ className: 'NlNoSuchBlock' }] })).to.throw(/LanguageModel\.blocks\[0\]\.className: unknown layer class 'NlNoSuchBlock'/);
    expect(() => new LanguageModel({ vocabSize: 0, dModel: D, blocks: [] })).to.throw(/LanguageModel\.vocabSize/);
    expect(() => new NlResidualBlock({ ffn: { className: 'NlGatedMlp' } })).to.throw(/NlResidualBlock\.mixer: is required/);
    expect(() => new LanguageModel({ vocabSize: V, dModel: D, blocks: [{ className: 'NlResidualBlock', config: { mixer: { className: 'NlCausalAttention', config: { numHeads: 3 } }, ffn: { className: 'NlGatedMlp' } } }] })).to.throw(
      /NlCausalAttention\.numHeads: must divide dModel=16/,
    );
  });
});
