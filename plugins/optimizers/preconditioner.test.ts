/**
 * Matrix preconditioners of Eq. 49 (P_i g_i as a matrix product): delta momentum with a fixed P given in
 * the config ('matrix') and with a P memory learned by GD on its own objective ('learnedMatrix',
 * Eqs. 38-41), both sides, against the explicit paper-layout formula; the vector case; a fixed diagonal
 * 'learned' P with pLearningRate 0 (no 1e-30 hack); bad configs.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../../core/testing';
import { assocMomentum } from './assoc-momentum';
import { deltaMomentum } from './delta-momentum';

/** A well-conditioned pseudo-random NON-symmetric [d, d] matrix (I + noise), so a transposed P would show. */
function someP(d: number, seed: number): number[][] {
  return tf.tidy(() => tf.eye(d).add(tf.randomNormal([d, d], 0, 0.2, 'float32', seed)).arraySync() as number[][]);
}

describe('optimizers: matrix preconditioner P of Eq. 49', () => {
  const rows = 3; // tfjs kernel [in, out] = [3, 5]; paper g_p [out, in] = [5, 3]
  const cols = 5;
  for (const side of ['out', 'in'] as const) {
    for (const learned of [false, true]) {
      const kind = learned ? 'learnedMatrix' : 'matrix';
      it(`deltaMomentum, preconditioner '${kind}', pSide '${side}': 3 steps == m (alpha I - g^T g) - eta ${side === 'out' ? 'P g' : 'g P'} (paper layout, explicit)`, () => {
        const d = side === 'out' ? cols : rows;
        const p0 = someP(d, 11);
        const pLr = 0.05;
        const t = deltaMomentum({ learningRate: 0.3, alpha: 0.8, keyNorm: 'none', preconditioner: kind, pSide: side, pMatrix: p0, ...(learned ? { pLearningRate: pLr } : {}) });
        const params = { w: tf.zeros([rows, cols]) };
        let state = t.init(params);
        let mRef = tf.zeros([cols, rows]); // paper layout [out, in]
        let pRef = tf.tensor2d(p0);
        for (let step = 1; step <= 3; step++) {
          const g = tf.randomNormal([rows, cols], 0, 0.5, 'float32', step);
          const r = t.update({ w: g }, state, params, step);
          const gp = g.transpose() as tf.Tensor2D; // [out, in]
          if (learned) {
            // GD on l(P) = 1/2 ||P g||^2 - tr P ('out'; 'in': 1/2 ||g P||^2 - tr P): P <- P - pLr (P g g^T - I) / (g^T g P - I)
            const grad = side === 'out' ? tf.matMul(pRef, tf.matMul(gp, gp, false, true)).sub(tf.eye(d)) : tf.matMul(tf.matMul(gp, gp, true, false), pRef).sub(tf.eye(d));
            const pNext = pRef.sub(grad.mul(pLr));
            tf.dispose([grad, pRef]);
            pRef = pNext as tf.Tensor2D;
            assertClose(r.state['w::P/mat'], pRef, { rtol: 1e-4, atol: 1e-5, name: `P step ${step}` });
          }
          const pg = side === 'out' ? tf.matMul(pRef, gp) : tf.matMul(gp, pRef); // [out, in]
          const factor = tf.eye(rows).mul(0.8).sub(tf.matMul(gp, gp, true, false)); // alpha I - g^T g, [in, in]
          const mNext = tf.matMul(mRef, factor).sub(pg.mul(0.3));
          assertClose(r.updates.w, mNext.transpose(), { rtol: 1e-4, atol: 1e-5, name: `step ${step}` });
          tf.dispose([g, gp, pg, factor, mRef, state, r.updates]);
          mRef = mNext;
          state = r.state;
        }
        expect(Object.keys(state).sort()).to.deep.equal(learned ? ['w::P/mat', 'w::m'] : ['w::m']);
        tf.dispose([mRef, pRef, state, params.w]);
      });
    }
  }

  it("vector case (the Figure 4 toy's shape): 'matrix' P acts on g itself", () => {
    const p = [[2, 1], [0, 1]];
    const t = deltaMomentum({ learningRate: 0.1, alpha: 0.9, keyNorm: 'none', beta: 0, preconditioner: 'matrix', pMatrix: p });
    const params = { v: tf.zeros([2]) };
    const s = t.init(params);
    const r = t.update({ v: tf.tensor1d([3, 4]) }, s, params, 1);
    assertClose(r.updates.v, [-0.1 * (2 * 3 + 1 * 4), -0.1 * 4]); // m = -eta P g with beta 0
    tf.dispose([r.updates, r.state, s, params.v]);
  });

  it("a fixed diagonal P: 'learned' with pLearningRate 0 keeps P = 1 (== no preconditioner)", () => {
    const a = assocMomentum({ learningRate: 0.1, preconditioner: 'learned', pLearningRate: 0 });
    const b = assocMomentum({ learningRate: 0.1 });
    const params = { w: tf.zeros([2, 2]) };
    const g = tf.tensor2d([[1, -2], [0.5, 3]]);
    const [sa, sb] = [a.init(params), b.init(params)];
    const [ra, rb] = [a.update({ w: g }, sa, params, 1), b.update({ w: g }, sb, params, 1)];
    assertClose(ra.updates.w, rb.updates.w);
    assertClose(ra.state['w::P/logp'], [[0, 0], [0, 0]]);
    tf.dispose([params.w, g, sa, sb, ra, rb] as unknown as tf.Tensor[]);
  });

  it('rejects bad matrix configs with errors naming the field and the parameter', () => {
    expect(() => deltaMomentum({ learningRate: 0.1, preconditioner: 'matrix' })).to.throw(/deltaMomentum\.pMatrix: is required with preconditioner 'matrix'/);
    expect(() => deltaMomentum({ learningRate: 0.1, preconditioner: 'matrix', pMatrix: [[1, 2]] })).to.throw(/deltaMomentum\.pMatrix: must be a square matrix/);
    expect(() => deltaMomentum({ learningRate: 0.1, preconditioner: 'diagonal', pMatrix: [[1]] })).to.throw(/pMatrix: is only used with preconditioner 'matrix' or 'learnedMatrix'/);
    expect(() => deltaMomentum({ learningRate: 0.1, preconditioner: 'matrix', pMatrix: [[1]], pSide: 'left' as never })).to.throw(/deltaMomentum\.pSide: must be one of 'out', 'in'/);
    const t = deltaMomentum({ learningRate: 0.1, preconditioner: 'matrix', pMatrix: [[1, 0], [0, 1]] });
    const w = tf.zeros([3, 4]);
    expect(() => t.init({ w })).to.throw(/deltaMomentum\.pMatrix: is 2 x 2, but parameter 'w' of shape \[3, 4\] needs 4 x 4 \(pSide 'out'\)/);
    w.dispose();
  });

  it('no leaked tensors (matrix and learnedMatrix, both sides)', async () => {
    for (const spec of [
      { preconditioner: 'matrix' as const, pMatrix: someP(4, 3) },
      { preconditioner: 'learnedMatrix' as const, pSide: 'in' as const, pLearningRate: 0.01 },
    ]) {
      const t = deltaMomentum({ learningRate: 0.1, ...spec });
      const params = { w: tf.zeros([3, 4]) };
      let state = t.init(params);
      const g = tf.randomNormal([3, 4], 0, 0.1, 'float32', 2);
      let i = 1;
      await expectNoLeakedTensors(() => {
        const r = t.update({ w: g }, state, params, i++);
        tf.dispose([state, r.updates] as unknown as tf.Tensor[]);
        state = r.state;
      });
      tf.dispose([params.w, g, state] as unknown as tf.Tensor[]);
    }
  });
});
