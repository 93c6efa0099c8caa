/**
 * Hand-computed steps of every optimizer (2-3 steps each), checked through the GradientTransform
 * contract. Expected numbers are derived in the comments.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose } from '../../core/testing';
import type { NamedTensors } from '../../core';
import { adamw } from './adamw';
import { assocMomentum } from './assoc-momentum';
import { deltaMomentum } from './delta-momentum';
import { dgd } from './dgd';
import { dmgd, dmgdKeys } from './dmgd';
import { m3 } from './m3';
import { muon, orthogonalize } from './muon';
import { nsScalar, runSteps } from './test-helpers';
import { learnedPreconditionerLoss, newtonSchulz } from './util';

/** Smallest and largest eigenvalue of a small symmetric PSD matrix, by power iteration. */
function symmetricEigenRange(a: number[][]): [number, number] {
  const n = a.length;
  const power = (m: number[][]): number => {
    let v = Array.from({ length: n }, (_, i) => 1 + 0.1 * i);
    let lambda = 0;
    for (let it = 0; it < 500; it++) {
      const w = m.map((row) => row.reduce((s, x, j) => s + x * v[j], 0));
      lambda = Math.hypot(...w);
      v = w.map((x) => x / lambda);
    }
    return lambda;
  };
  const hi = power(a);
  const shifted = a.map((row, i) => row.map((x, j) => (i === j ? hi - x : -x)));
  return [hi - power(shifted), hi];
}

describe('optimizers: hand-computed steps', () => {
  it('adamw: two steps, and decoupled weight decay', () => {
    // lr 0.1, b1 0.9, b2 0.999. g1 = 2: m = 0.2, v = 0.004, m^ = 2, v^ = 4 -> u = -0.1 * 2 / 2 = -0.1.
    // g2 = -1: m = 0.08, v = 0.004996, m^ = 0.08/0.19, v^ = 0.004996/0.001999 -> u = -0.0266337.
    const r = runSteps(adamw({ learningRate: 0.1 }), { w: [1] }, [{ w: [2] }, { w: [-1] }]);
    assertClose(r.updates[0].w, [-0.1], { rtol: 1e-5 });
    assertClose(r.updates[1].w, [-0.0266337], { rtol: 1e-4 });
    tf.dispose(r.state);
    // weightDecay 0.1 on p = 1: u = -0.1 * (1 + 0.1 * 1) = -0.11.
    const d = runSteps(adamw({ learningRate: 0.1, weightDecay: 0.1 }), { w: [1] }, [{ w: [2] }]);
    assertClose(d.updates[0].w, [-0.11], { rtol: 1e-5 });
    tf.dispose(d.state);
  });

  it('assocMomentum (Eq. 33): forget gate alpha, P = I', () => {
    // lr 0.1, alpha 0.5: m1 = -0.1 [1, -2] = [-0.1, 0.2]; m2 = 0.5 m1 - 0.1 [2, 0] = [-0.25, 0.1].
    const r = runSteps(assocMomentum({ learningRate: 0.1, alpha: 0.5 }), { w: [0, 0] }, [{ w: [1, -2] }, { w: [2, 0] }]);
    assertClose(r.updates[0].w, [-0.1, 0.2]);
    assertClose(r.updates[1].w, [-0.25, 0.1]);
    assertClose(r.params.w, [-0.35, 0.3]);
    tf.dispose(r.state);
  });

  it('assocMomentum (Eq. 47): diagonal preconditioner', () => {
    // beta2 0.5: g1 = 2: v = 2, v^ = 2/0.5 = 4, P g = 1, m1 = -0.1.
    // g2 = 1: v = 1.5, v^ = 1.5/0.75 = 2, P g = 1/sqrt 2, m2 = -0.05 - 0.0707107 = -0.1207107.
    const r = runSteps(assocMomentum({ learningRate: 0.1, alpha: 0.5, preconditioner: 'diagonal', beta2: 0.5, epsilon: 1e-12 }), { w: [0] }, [{ w: [2] }, { w: [1] }]);
    assertClose(r.updates[0].w, [-0.1]);
    assertClose(r.updates[1].w, [-0.1207107]);
    tf.dispose(r.state);
  });

  it('assocMomentum (Eqs. 38-41): the learned preconditioner is trained by GD on its objective', () => {
    // pLearningRate 0.5, s = log P = 0. g1 = 0.5: dl/ds = 1 * 0.25 - 1 = -0.75 -> s = 0.375,
    // P = e^0.375 = 1.4549914, m1 = -0.1 * 1.4549914 * 0.5 = -0.0727496.
    // g2 = 2: dl/ds = e^0.75 * 4 - 1 = 7.468 -> clipped to 1 -> s = -0.125, P = 0.8824969,
    // m2 = 0.5 m1 - 0.1 * 0.8824969 * 2 = -0.2128742.
    const t = assocMomentum({ learningRate: 0.1, alpha: 0.5, preconditioner: 'learned', pLearningRate: 0.5 });
    const r = runSteps(t, { w: [0] }, [{ w: [0.5] }, { w: [2] }]);
    assertClose(r.updates[0].w, [-0.0727496], { rtol: 1e-5 });
    assertClose(r.updates[1].w, [-0.2128742], { rtol: 1e-5 });
    assertClose(r.state['w::P/logp'], [-0.125]);
    tf.dispose(r.state);
  });

  it('assocMomentum learned P converges to 1/RMS(g) (Adam\'s preconditioner) and its objective falls', () => {
    // Stationary gradient entries of magnitude 0.01 and 4 (alternating sign): optimum P = 100 and 0.25.
    const t = assocMomentum({ learningRate: 0.01, preconditioner: 'learned', pLearningRate: 0.1 });
    const seq = Array.from({ length: 120 }, (_, i) => ({ w: i % 2 ? [0.01, -4] : [-0.01, 4] }));
    const gAbs = tf.tensor1d([0.01, 4]);
    const s0 = tf.zeros([2]);
    const before = learnedPreconditionerLoss(s0, gAbs);
    const r = runSteps(t, { w: [0, 0] }, seq);
    const after = learnedPreconditionerLoss(r.state['w::P/logp'], gAbs);
    assertClose(tf.exp(r.state['w::P/logp']), [100, 0.25], { rtol: 0.1 });
    expect(after.dataSync()[0]).to.be.below(before.dataSync()[0] - 1);
    tf.dispose([gAbs, s0, before, after, r.state]);
  });

  it('deltaMomentum (Eq. 49): vector case, raw and normalised keys', () => {
    // lr 0.5, alpha 0.9, beta 1. g1 = [1, 0]: m1 = -0.5 g1 = [-0.5, 0] (m0 = 0, erase term 0).
    // g2 = [0.5, 0.5], raw key k = g2: k (k . m1) = [0.5, 0.5] * (-0.25) = [-0.125, -0.125];
    //   m2 = 0.9 m1 - k(k.m1) - 0.5 g2 = [-0.45 + 0.125 - 0.25, 0.125 - 0.25] = [-0.575, -0.125].
    // frobenius key k = g2 / |g2|: k (k . m1) = [-0.25, -0.25] -> m2 = [-0.45, 0] (the g2 direction is erased).
    const seq = [{ w: [1, 0] }, { w: [0.5, 0.5] }];
    const raw = runSteps(deltaMomentum({ learningRate: 0.5, keyNorm: 'none' }), { w: [0, 0] }, seq);
    assertClose(raw.updates[0].w, [-0.5, 0]);
    assertClose(raw.updates[1].w, [-0.575, -0.125]);
    const nrm = runSteps(deltaMomentum({ learningRate: 0.5 }), { w: [0, 0] }, seq);
    assertClose(nrm.updates[1].w, [-0.45, 0], { atol: 1e-6 });
    tf.dispose([raw.state, nrm.state]);
  });

  for (const [rows, cols] of [[3, 5], [6, 2]] as const) {
    it(`deltaMomentum matches the explicit d x d matrix formula of Eq. 49 ([${rows}, ${cols}] kernel)`, () => {
      // tfjs kernel [in, out] = paper W^T. Paper layout: m_p (alpha I_in - g_p^T g_p) - eta g_p with
      // g_p = g^T [out, in], so g_p^T g_p = g g^T is [in, in]: formed explicitly here, never in the transform.
      const t = deltaMomentum({ learningRate: 0.3, alpha: 0.8, beta: 1, keyNorm: 'none' });
      const params = { w: tf.zeros([rows, cols]) };
      let state = t.init(params);
      let mRef = tf.zeros([cols, rows]); // paper layout
      for (let step = 1; step <= 3; step++) {
        const g = tf.randomNormal([rows, cols], 0, 0.5, 'float32', step);
        const r = t.update({ w: g }, state, params, step);
        const gp = g.transpose();
        const factor = tf.eye(rows).mul(0.8).sub(tf.matMul(gp, gp, true, false)); // [in, in]
        const mNext = tf.matMul(mRef, factor).sub(gp.mul(0.3));
        assertClose(r.updates.w, mNext.transpose(), { rtol: 1e-4, atol: 1e-5, name: `step ${step}` });
        tf.dispose([g, gp, factor, mRef, state, r.updates]);
        mRef = mNext;
        state = r.state;
      }
      tf.dispose([mRef, state, params.w]);
    });
  }

  it('Newton-Schulz: a diagonal matrix follows the scalar quintic map; tall == transpose of wide', () => {
    const g = tf.tensor2d([[3, 0], [0, 1]]);
    const n = 1 / Math.sqrt(10); // ||G||_F = sqrt 10
    assertClose(newtonSchulz(g, 5), [[nsScalar(3 * n), 0], [0, nsScalar(n)]], { rtol: 1e-4, atol: 1e-6 });
    const wide = tf.randomNormal([3, 7], 0, 1, 'float32', 7) as tf.Tensor2D;
    const o = newtonSchulz(wide, 5);
    assertClose(newtonSchulz(wide.transpose() as tf.Tensor2D, 5), o.transpose(), { rtol: 1e-4, atol: 1e-5 });
    // Orthogonalised: the singular values of NS(G) lie in the quintic's band (~0.68..1.13), so the
    // eigenvalues of O O^T (their squares) lie in ~[0.46, 1.28] (checked by power iteration).
    const gram = tf.matMul(o, o, false, true).arraySync() as number[][];
    const [lo, hi] = symmetricEigenRange(gram);
    expect(lo).to.be.above(0.4);
    expect(hi).to.be.below(1.35);
    tf.dispose([g, wide, o]);
  });

  it('muon (Eq. 52): two steps with momentum; biases fall back to AdamW', () => {
    // beta 0.5, no nesterov, scale 'none', lr 0.1. g1 = diag(3, 1): M = g1, u = -0.1 NS(diag(3,1)).
    // g2 = I: M = 0.5 g1 + I = diag(2.5, 1.5), ||M||_F = sqrt 8.5.
    const t = muon({ learningRate: 0.1, beta: 0.5, nesterov: false, scale: 'none' });
    const r = runSteps(t, { w: [[0, 0], [0, 0]], b: [0] }, [{ w: [[3, 0], [0, 1]], b: [2] }, { w: [[1, 0], [0, 1]], b: [-1] }]);
    const n1 = Math.sqrt(10);
    const n2 = Math.sqrt(8.5);
    assertClose(r.updates[0].w, [[-0.1 * nsScalar(3 / n1), 0], [0, -0.1 * nsScalar(1 / n1)]], { rtol: 1e-4, atol: 1e-6 });
    assertClose(r.updates[1].w, [[-0.1 * nsScalar(2.5 / n2), 0], [0, -0.1 * nsScalar(1.5 / n2)]], { rtol: 1e-4, atol: 1e-6 });
    assertClose(r.updates[0].b, [-0.1], { rtol: 1e-5 }); // AdamW step 1 (see the adamw case)
    assertClose(r.updates[1].b, [-0.0266337], { rtol: 1e-4 });
    tf.dispose(r.state);
    // nesterov + 'rms' scale on a [2, 2]: read = g + beta M = 1.5 g1 at step 1 (same direction as g1),
    // scale 0.2 sqrt 2.
    const nt = runSteps(muon({ learningRate: 0.1, beta: 0.5 }), { w: [[0, 0], [0, 0]] }, [{ w: [[3, 0], [0, 1]] }]);
    const s = 0.2 * Math.sqrt(2);
    assertClose(nt.updates[0].w, [[-0.1 * s * nsScalar(3 / n1), 0], [0, -0.1 * s * nsScalar(1 / n1)]], { rtol: 1e-4, atol: 1e-6 });
    tf.dispose(nt.state);
    // orthogonalize is sigma alone: stateless NS of the incoming update.
    const o = runSteps(orthogonalize(), { w: [[0, 0], [0, 0]] }, [{ w: [[3, 0], [0, 1]] }]);
    assertClose(o.updates[0].w, [[nsScalar(3 / n1), 0], [0, nsScalar(1 / n1)]], { rtol: 1e-4, atol: 1e-6 });
  });

  it('dgd (Eq. 57): hand-computed matrix and bias steps', () => {
    // eta = 1 -> eta' = 0.5. W = I (tfjs [in, out]), x = [1, 0], dL/dy = [1, 2]: G = x dy^T = [[1, 2], [0, 0]].
    // Paper layout: W_p (I - eta' x x^T) - eta' dy x^T = [[0, 0], [-1, 1]] -> tfjs (transpose) [[0, -1], [0, 1]].
    // Bias (input 1): b <- (1 - eta') b - eta' g = 0.5 * 1 - 0.5 * 2 = -0.5.
    const r = runSteps(dgd({ learningRate: 1 }), { w: [[1, 0], [0, 1]], b: [1] }, [{ w: [[1, 2], [0, 0]], b: [2] }]);
    assertClose(r.params.w, [[0, -1], [0, 1]]);
    assertClose(r.params.b, [-0.5]);
  });

  it('dgd equals Eq. 57 with the explicit input x on a linear layer (batch 1, |x| = 1), over 3 steps', () => {
    const eta = 0.4;
    const etaP = eta / 1.4;
    const t = dgd({ learningRate: eta });
    let w = tf.randomNormal([4, 3], 0, 1, 'float32', 3); // tfjs kernel [in, out]
    let wRef = w.transpose(); // paper [out, in]
    for (let step = 1; step <= 3; step++) {
      const xr = tf.randomNormal([1, 4], 0, 1, 'float32', 10 + step);
      const x = xr.div(xr.norm()); // [1, in], unit norm
      const target = tf.randomNormal([1, 3], 0, 1, 'float32', 20 + step);
      const loss = (k: tf.Tensor): tf.Scalar => tf.matMul(x, k).sub(target).square().sum().mul(0.5) as tf.Scalar;
      const g = tf.grad(loss)(w); // x^T (x W - target), [in, out]
      const dy = tf.matMul(x, w).sub(target); // dL/dy, [1, out]
      const r = t.update({ w: g }, {}, { w }, step);
      const wNext = w.add(r.updates.w);
      const xx = tf.matMul(x, x, true, false); // [in, in] explicit
      const refNext = tf.matMul(wRef, tf.eye(4).sub(xx.mul(etaP))).sub(tf.matMul(dy, x, true, false).mul(etaP));
      assertClose(wNext, refNext.transpose(), { rtol: 1e-4, atol: 1e-5, name: `step ${step}` });
      tf.dispose([xr, x, target, g, dy, r.updates, xx, w, wRef]);
      w = wNext;
      wRef = refNext;
    }
    tf.dispose([w, wRef]);
  });

  it('m3 (Algorithm 1): accumulator steps with a slow-momentum refresh at the end of t = f = 2, and the EMA option', () => {
    // b1 0.9, b2 0.999, b3 0.9, alpha 1, lr 0.1, f = 2. Diagonal gradients keep every NS diagonal.
    // t=1, g = diag(3, 1): M1 = diag(2.7, 0.9) (same direction as g: NS -> nsScalar(3/sqrt10), nsScalar(1/sqrt10)),
    //   V = 0.999 diag(9, 1), O2 = 0 -> u = -0.1 NS(M1) / sqrt(V).
    // t=2, g = I: M1 = diag(3.6, 1.8), V = diag(9.99, 1.998); the step still uses O2 = 0 (Algorithm 1: O2 of the
    //   previous block) -> u = -0.1 NS(M1) / sqrt(V); then S = diag(4, 2) -> M2 = 0.9 S = diag(3.6, 1.8), serving t = 3.
    // (m3.test.ts checks 2f + 1 steps against a float64 computation.)
    const t = m3({ learningRate: 0.1, frequency: 2 });
    const r = runSteps(t, { w: [[0, 0], [0, 0]], b: [0] }, [{ w: [[3, 0], [0, 1]], b: [2] }, { w: [[1, 0], [0, 1]], b: [-1] }]);
    const n1 = Math.sqrt(10);
    const n2 = Math.sqrt(3.6 ** 2 + 1.8 ** 2);
    const u1 = [-0.1 * nsScalar(3 / n1) / Math.sqrt(0.999 * 9), -0.1 * nsScalar(1 / n1) / Math.sqrt(0.999)];
    const u2 = [-0.1 * nsScalar(3.6 / n2) / Math.sqrt(9.99), -0.1 * nsScalar(1.8 / n2) / Math.sqrt(1.998)];
    assertClose(r.updates[0].w, [[u1[0], 0], [0, u1[1]]], { rtol: 1e-4, atol: 1e-6 });
    assertClose(r.updates[1].w, [[u2[0], 0], [0, u2[1]]], { rtol: 1e-4, atol: 1e-6 });
    assertClose(r.state['w::s'], [[0, 0], [0, 0]]); // cleared at the refresh
    assertClose(r.state['w::m2'], [[3.6, 0], [0, 1.8]], { rtol: 1e-5 });
    assertClose(r.state['w::o2'], [[nsScalar(3.6 / n2), 0], [0, nsScalar(1.8 / n2)]], { rtol: 1e-4, atol: 1e-6 }); // for t = 3
    assertClose(r.updates[1].b, [-0.0266337], { rtol: 1e-4 }); // AdamW fallback for 1-D
    tf.dispose(r.state);
    // EMA, t=1: M1 = 0.1 g (same direction), V^ = g^2 -> u = -0.1 NS(g) / |g|.
    const e = runSteps(m3({ learningRate: 0.1, momentum: 'ema', frequency: 3 }), { w: [[0, 0], [0, 0]] }, [{ w: [[3, 0], [0, 1]] }]);
    assertClose(e.updates[0].w, [[-0.1 * nsScalar(3 / n1) / 3, 0], [0, -0.1 * nsScalar(1 / n1)]], { rtol: 1e-4, atol: 1e-6 });
    tf.dispose(e.state);
  });

  it('dmgd (Eq. 50): one hand-computed write + read of a known memory', () => {
    // width b = 2, h = 1, linear activation, 'l2', eta_m 0.5, decay 1, lr 1.
    // Memory: W1 = [[1], [0]], W2 = 0, c = 0. g = [[3, 4]]: rms = sqrt(12.5) = 3.5355339,
    // u^ = g / rms = [0.8485281, 1.1313708]; target -u^; out = 0 -> loss = 1/2 |u^|^2 = 1.
    // dL/dout = u^: dc = u^ * u^ = [0.72, 1.28]; a = u^ W1 = 0.8485281; dW2 = a u^ = [0.72, 0.96]; dW1 = 0 (W2 = 0).
    // c = [-0.36, -0.64], W2 = [[-0.36, -0.48]]; read: out = u^ * c + a W2 = [-0.6109402, -1.1313708];
    // update = rms * out = [-2.16, -4].
    const t = dmgd({ hidden: 1, activation: 'linear', memoryLearningRate: 0.5 });
    const k = dmgdKeys(2);
    const state: NamedTensors = { [k.w1]: tf.tensor2d([[1], [0]]), [k.w2]: tf.zeros([1, 2]), [k.c]: tf.zeros([2]), [k.loss]: tf.scalar(0) };
    const g = tf.tensor2d([[3, 4]]);
    const w = tf.zeros([1, 2]);
    const r = t.update({ w: g }, state, { w }, 1);
    assertClose(r.updates.w, [[-2.16, -4]], { rtol: 1e-5 });
    assertClose(r.state[k.loss], 1, { rtol: 1e-5 });
    assertClose(r.state[k.c], [-0.36, -0.64], { rtol: 1e-5 });
    assertClose(r.state[k.w2], [[-0.36, -0.48]], { rtol: 1e-5 });
    assertClose(r.state[k.w1], [[1], [0]]);
    // Second step, same g: now dW1 != 0 (W2 != 0), so the hidden layer trains too.
    const r2 = t.update({ w: g }, r.state, { w }, 2);
    expect(() => assertClose(r2.state[k.w1], [[1], [0]])).to.throw();
    expect(r2.state[k.loss].dataSync()[0]).to.be.below(1); // the memory got better at its objective
    tf.dispose([state, g, w, r.updates, r.state, r2.updates, r2.state]);
  });

  it('rejects bad configs with errors naming the field', () => {
    expect(() => adamw({ learningRate: -1 })).to.throw(/adamw\.learningRate: must be a finite number and >= 0/);
    expect(() => assocMomentum({ learningRate: 0.1, preconditioner: 'full' as never })).to.throw(/assocMomentum\.preconditioner: must be one of 'none', 'diagonal', 'learned'/);
    expect(() => deltaMomentum({ learningRate: 0.1, keyNorm: 'l2' as never })).to.throw(/deltaMomentum\.keyNorm/);
    expect(() => dmgd({ innerLoss: 'cosine' as never })).to.throw(/dmgd\.innerLoss: must be one of 'dot', 'l2'/);
    expect(() => dmgd({ hidden: 0 })).to.throw(/dmgd\.hidden: must be an integer and >= 1/);
    expect(() => muon({ learningRate: 0.1, nsSteps: 1.5 })).to.throw(/muon\.nsSteps/);
    expect(() => m3({ learningRate: 0.1, frequency: 0 })).to.throw(/m3\.frequency: must be an integer and >= 1/);
    expect(() => m3({ learningRate: 0.1, momentum: 'nesterov' as never })).to.throw(/m3\.momentum: must be one of 'accumulate', 'ema'/);
    expect(() => dgd({ learningRate: 0.1, lr: 1 } as never)).to.throw(/dgd\.lr: unknown option/);
  });
});
