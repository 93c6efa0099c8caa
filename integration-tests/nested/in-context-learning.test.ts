/**
 * End to end: in-context CMS updates (Eq. 71) lower the loss on a pattern that repeats later in the same
 * context, compared with the same model frozen (eta = 0), with no outer training at all.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { NlContinuumMemorySystem } from '../../plugins/cms';
import { NestedModel, NestedTrainer, tokenSquaredError } from '../../plugins/scheduler';

describe('integration: nested in-context learning on a repeated pattern', () => {
  it('the last repetition has a clearly lower loss with in-context updates than frozen', () => {
    const d = 8;
    const p = 8; // pattern length (tokens)
    const reps = 4;
    const pattern = tf.randomNormal([2, p, d], 0, 1, 'float32', 11); // inputs
    const targets = tf.randomNormal([2, p, d], 0, 1, 'float32', 12); // arbitrary associations to learn
    const x = tf.concat(Array(reps).fill(pattern), 1); // [2, 32, 8]
    const y = tf.concat(Array(reps).fill(targets), 1);
    const lastRep = (eta: number): { first: number; last: number } => {
      const cms = new NlContinuumMemorySystem({ levels: [{ period: 4, learningRate: eta }, { period: 16, learningRate: eta / 4 }], expansion: 2, activation: 'gelu' });
      cms.build([null, null, d]);
      // identical initial weights for both runs
      cms.setWeights(cms.getWeights().map((w, i) => tf.randomNormal(w.shape, 0, 0.3, 'float32', 100 + i)));
      const tr = new NestedTrainer(new NestedModel([cms]), { loss: tokenSquaredError });
      const r = tr.memorize(x, y, { collect: true });
      const l = r.tokenLosses!; // [2, 32]
      const first = l.slice([0, 0], [-1, p]).mean().dataSync()[0];
      const last = l.slice([0, (reps - 1) * p], [-1, p]).mean().dataSync()[0];
      tf.dispose([r.outputs!, l]);
      tr.dispose();
      return { first, last };
    };
    const frozen = lastRep(0);
    const learned = lastRep(0.02);
    // eslint-disable-next-line no-console
    console.log(`    loss per token, last repetition: frozen ${frozen.last.toFixed(3)}, in-context ${learned.last.toFixed(3)} (first repetition ${learned.first.toFixed(3)})`);
    expect(frozen.last).to.be.closeTo(frozen.first, 1e-4); // frozen: every repetition costs the same
    expect(learned.last).to.be.lessThan(0.5 * frozen.last);
    tf.dispose([pattern, targets, x, y]);
  });
});
