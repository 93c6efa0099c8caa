/**
 * Optimizers of plugins/optimizers as a CMS level's inner transform (Eq. 71 with transform_l = DMGD
 * (Eq. 50) or M3 (Algorithm 1)): the level's loss falls in context on a repeated pattern (no outer
 * training), the memory state (fast weights + the transform's state) round-trips through the trainer's
 * checkpoint export/import mid-context, no leaked tensors; with batchAxis (one memory / Newton-Schulz per
 * sequence) sequences stay independent, as a CMS level requires.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import type { TransformSpec } from '../../core';
import { assertClose, expectNoLeakedTensors } from '../../core/testing';
import { registerOptimizerTransforms } from '../optimizers';
import { NestedModel } from '../../core';
import { tokenSquaredError } from '../scheduler';
import { NestedTrainer } from '../scheduler';
import { NlContinuumMemorySystem } from './layer';

const D = 8;
const P = 8; // pattern length (tokens)
const REPS = 4;

const SPECS: Record<string, { transform: TransformSpec; eta: number }> = {
  // the level update is eta * transform(sum of the chunk's gradients); each transform runs at learningRate 1
  dmgdL2: { transform: { transform: 'dmgd', config: { learningRate: 1, innerLoss: 'l2', hidden: 4, batchAxis: true } }, eta: 0.05 },
  dmgdDot: { transform: { transform: 'dmgd', config: { learningRate: 1, innerLoss: 'dot', hidden: 4, batchAxis: true } }, eta: 0.05 },
  m3: { transform: { transform: 'm3', config: { learningRate: 1, frequency: 2, batchAxis: true } }, eta: 0.03 },
  m3BeforeNs: { transform: { transform: 'm3', config: { learningRate: 1, frequency: 2, batchAxis: true, precondition: 'beforeNs' } }, eta: 0.05 },
};

function makeCms(spec: { transform: TransformSpec; eta: number } | null): NlContinuumMemorySystem {
  const cms = new NlContinuumMemorySystem({ levels: [{ period: 4, learningRate: spec ? spec.eta : 0, ...(spec ? { transform: spec.transform } : {}) }], expansion: 2, activation: 'gelu' });
  cms.build([null, null, D]);
  cms.setWeights(cms.getWeights().map((w, i) => tf.randomNormal(w.shape, 0, 0.3, 'float32', 100 + i))); // identical initial weights
  return cms;
}

describe('plugin cms: DMGD and M3 as a level optimizer', () => {
  let x: tf.Tensor3D;
  let y: tf.Tensor3D;
  before(() => {
    registerOptimizerTransforms();
    const pattern = tf.randomNormal([2, P, D], 0, 1, 'float32', 11);
    const targets = tf.randomNormal([2, P, D], 0, 1, 'float32', 12);
    x = tf.concat(Array(REPS).fill(pattern), 1) as tf.Tensor3D; // [2, 32, 8]
    y = tf.concat(Array(REPS).fill(targets), 1) as tf.Tensor3D;
    tf.dispose([pattern, targets]);
  });
  after(() => tf.dispose([x, y]));

  const repLosses = (spec: { transform: TransformSpec; eta: number } | null): number[] => {
    const tr = new NestedTrainer(new NestedModel([makeCms(spec)]), { loss: tokenSquaredError });
    const r = tr.memorize(x, y, { collect: true });
    const l = r.tokenLosses!; // [2, 32]
    const out = Array.from({ length: REPS }, (_, k) => tf.tidy(() => l.slice([0, k * P], [-1, P]).mean().dataSync()[0]));
    tf.dispose([r.outputs!, l]);
    tr.dispose();
    return out;
  };

  for (const [label, spec] of Object.entries(SPECS)) {
    it(`${label}: the level's loss falls in context (last repetition of the pattern below the first and below frozen)`, () => {
      const frozen = repLosses(null);
      const learned = repLosses(spec);
      process.stderr.write(`      [cms ${label}] loss per repetition: ${learned.map((v) => v.toFixed(3)).join(' ')} (frozen ${frozen[0].toFixed(3)})\n`);
      expect(learned[REPS - 1]).to.be.lessThan(0.9 * learned[0]);
      expect(learned[REPS - 1]).to.be.lessThan(0.9 * frozen[REPS - 1]);
    });

    it(`${label}: fast weights + transform state round-trip mid-context (export/import == uninterrupted); no leaks`, async () => {
      const half = (t: tf.Tensor3D, k: number): tf.Tensor3D => t.slice([0, k * 14], [-1, 14]) as tf.Tensor3D; // 14 tokens: a partial chunk carried
      const a = new NestedTrainer(new NestedModel([makeCms(spec)]), { loss: tokenSquaredError });
      const [x0, y0, x1, y1] = [half(x, 0), half(y, 0), half(x, 1), half(y, 1)];
      a.memorize(x0, y0, { newContext: true });
      const exp = await a.exportCheckpoint();
      const b = new NestedTrainer(new NestedModel([makeCms(spec)]), { loss: tokenSquaredError });
      const copies = new Map(exp.tensors.map((e) => [e.key, e.tensor.clone()] as [string, tf.Tensor]));
      expect([...copies.keys()].some((k) => k.includes('opt/')), 'transform state in the checkpoint').to.equal(true);
      await b.importCheckpoint(exp.meta, copies);
      tf.dispose([...copies.values(), ...exp.owned]);
      const ra = a.memorize(x1, y1, { collect: true });
      const rb = b.memorize(x1, y1, { collect: true });
      assertClose(rb.outputs!, ra.outputs!, { rtol: 1e-5, atol: 1e-6, name: label });
      tf.dispose([ra.outputs!, ra.tokenLosses!, rb.outputs!, rb.tokenLosses!]);
      await expectNoLeakedTensors(() => a.memorize(x1, y1), { name: label, iterations: 4 });
      a.dispose();
      b.dispose();
      tf.dispose([x0, y0, x1, y1]);
    });
  }

  for (const label of ['m3', 'dmgdL2'])
  it(`${label} with batchAxis: B = 2 in one run equals two B = 1 runs (no state shared across sequences)`, () => {
    const run = (xs: tf.Tensor3D, ys: tf.Tensor3D): tf.Tensor => {
      const tr = new NestedTrainer(new NestedModel([makeCms(SPECS[label])]), { loss: tokenSquaredError });
      const r = tr.memorize(xs, ys, { collect: true });
      tr.dispose();
      r.tokenLosses!.dispose();
      return r.outputs!;
    };
    const both = run(x, y);
    for (let b = 0; b < 2; b++) {
      const xb = x.slice([b, 0, 0], [1, -1, -1]) as tf.Tensor3D;
      const yb = y.slice([b, 0, 0], [1, -1, -1]) as tf.Tensor3D;
      const one = run(xb, yb);
      const part = both.slice([b, 0, 0], [1, -1, -1]);
      assertClose(one, part, { rtol: 1e-4, atol: 1e-5, name: `sequence ${b}` });
      tf.dispose([xb, yb, one, part]);
    }
    both.dispose();
  });
});
