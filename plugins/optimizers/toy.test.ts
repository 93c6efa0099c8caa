/**
 * The toy problem of the paper's Figure 4: psi(r, theta) = r^2 + k (r - theta + a sin(w r))^2 from
 * (r, theta) = (-3.5, 2); minimum psi = 0 at (0, 0). Constants chosen BEFORE measuring and kept:
 * k = 10, a = 0.5, w = 3; both optimizers use learningRate 0.01 and alpha 0.9; "reached" means
 * psi < 1e-4; at most 2000 steps.
 *
 * Measured result (see README): at these constants delta momentum does NOT reach the minimum in
 * fewer steps than momentum (momentum ~174 steps, delta momentum with the default normalised key
 * ~1504, Eq. 49's raw key diverges). The paper's claim is not reproduced here; this test pins the
 * measured behaviour so a change in either optimizer shows up, and does not assert the claim.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import type { GradientTransform } from '../../core';
import { assocMomentum } from './assoc-momentum';
import { deltaMomentum } from './delta-momentum';

const K = 10;
const A = 0.5;
const W = 3;

function psi(p: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const r = p.slice(0, 1);
    const th = p.slice(1, 1);
    return r.square().add(r.sub(th).add(r.mul(W).sin().mul(A)).square().mul(K)).sum() as tf.Scalar;
  });
}

/** Steps until psi < 1e-4 (maxSteps + 1 if never; -1 if it diverges). */
function stepsToMinimum(t: GradientTransform, maxSteps = 2000): number {
  const grad = tf.grad(psi);
  let p: tf.Tensor = tf.tensor1d([-3.5, 2]);
  let s = t.init({ p });
  let result = maxSteps + 1;
  for (let i = 1; i <= maxSteps; i++) {
    const g = grad(p);
    const r = t.update({ p: g }, s, { p }, i);
    const np = p.add(r.updates.p);
    tf.dispose([g, p, s, r.updates]);
    p = np;
    s = r.state;
    const v = psi(p);
    const val = v.dataSync()[0]; // test-only read-back
    v.dispose();
    if (!Number.isFinite(val) || val > 1e8) {
      result = -1;
      break;
    }
    if (val < 1e-4) {
      result = i;
      break;
    }
  }
  tf.dispose([p, s]);
  return result;
}

describe('optimizers: Figure 4 toy (k = 10, a = 0.5, w = 3, lr 0.01, alpha 0.9)', () => {
  it('measured: momentum reaches the minimum first; delta momentum (normalised key) is slower; raw Eq. 49 diverges', () => {
    const mom = stepsToMinimum(assocMomentum({ learningRate: 0.01, alpha: 0.9 }));
    const delta = stepsToMinimum(deltaMomentum({ learningRate: 0.01, alpha: 0.9 }));
    const raw = stepsToMinimum(deltaMomentum({ learningRate: 0.01, alpha: 0.9, keyNorm: 'none' }), 100);
    process.stderr.write(`      [figure 4] steps to psi < 1e-4: momentum ${mom}, delta momentum ${delta}, raw Eq. 49 ${raw}\n`);
    // Pinned to the measured counts (cpu: 174 and 1504; wasm: 147 and see README), with a margin:
    // float differences between backends move the counts on this curved valley.
    expect(mom).to.be.within(120, 250);
    expect(delta).to.be.within(1000, 2000);
    expect(delta).to.be.above(mom);
    expect(raw).to.equal(-1); // |g|^2 >> alpha at the start: the factor (alpha I - g^T g) explodes
  });
});
