import * as tf from '@tensorflow/tfjs';
import { selfModifyingTitansForward } from './ops/forward';
import { testOptions, testWeights } from './ops/test-helpers';
for (const mom of [0.5, null]) for (const dgd of [true, false]) {
  const o = testOptions({ chunkSize: 16, memChunkSize: 8, momentum: mom, dgd });
  const w = testWeights(o);
  const x = tf.randomNormal([2, 130, 6], 0, 1, 'float32', 3);
  const a = selfModifyingTitansForward({ ...o, impl: 'naive' }, w, x, null);
  const b = selfModifyingTitansForward(o, w, x, null);
  const d = a.y.sub(b.y).abs().max([0, 2]).dataSync();
  const pr = (i: number) => d[i].toExponential(1);
  console.log(mom, dgd, [0, 16, 32, 64, 96, 128].map(pr).join(' '), 'W1 diff', a.state.W1.sub(b.state.W1).abs().max().dataSync()[0], 'max W1', a.state.W1.abs().max().dataSync()[0]);
}
