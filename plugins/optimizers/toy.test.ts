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
import { expect } from 'chai';
import type { GradientTransform } from '../../core';
import { assocMomentum } from './assoc-momentum';
import { deltaMomentum } from './delta-momentum';
import { toyRun } from './toy';

/** Steps until psi < 1e-4 (maxSteps + 1 if never; -1 if it diverges), k = 10, a = 0.5, w = 3. */
function stepsToMinimum(t: GradientTransform, maxSteps = 2000): number {
  return toyRun(t, { k: 10, a: 0.5, w: 3, maxSteps, curveEvery: maxSteps }).steps;
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
