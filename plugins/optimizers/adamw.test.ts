/**
 * Adam as the optimal associative memory of its element-wise L2 objective (Eqs. 101-105):
 * after T steps, Adam's bias-corrected moments are the minimisers
 *   m* = argmin_m sum_i b1^(T-i) (m - g_i)^2,   v* = argmin_v sum_i b2^(T-i) (v - g_i^2)^2
 * (element-wise), and its step is -lr m* / (sqrt(v*) + eps).
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose } from '../../core/testing';
import { adamw } from './adamw';
import { runSteps } from './test-helpers';

describe('optimizers/adamw: the closed-form optimal memory (Eqs. 101-105)', () => {
  it('Adam\'s step equals the step built from the weighted-L2 minimisers of past gradients', () => {
    const b1 = 0.8;
    const b2 = 0.9;
    const lr = 0.05;
    const gs = [[1, -2, 0.5], [0.3, 1, -1], [2, 0, 0.25], [-1, 0.5, 3], [0.7, -0.4, 1]];
    const T = gs.length;
    // Closed form, element-wise weighted means (the objective is a weighted sum of squares).
    const wMean = (beta: number, f: (g: number) => number, j: number): number => {
      let num = 0;
      let den = 0;
      gs.forEach((g, i) => {
        const w = Math.pow(beta, T - 1 - i);
        num += w * f(g[j]);
        den += w;
      });
      return num / den;
    };
    const mStar = [0, 1, 2].map((j) => wMean(b1, (g) => g, j));
    const vStar = [0, 1, 2].map((j) => wMean(b2, (g) => g * g, j));
    // They are the minimisers: the objective's gradient vanishes there (checked with autodiff).
    const weights1 = tf.tensor1d(gs.map((_, i) => Math.pow(b1, T - 1 - i)));
    const G = tf.tensor2d(gs); // [T, 3]
    const obj = (m: tf.Tensor): tf.Scalar => G.sub(m).square().mul(weights1.reshape([T, 1])).sum() as tf.Scalar;
    const mT = tf.tensor1d(mStar);
    assertClose(tf.grad(obj)(mT), [0, 0, 0], { atol: 1e-5 });
    const shifted = tf.tensor1d(mStar.map((x) => x + 0.1));
    expect(obj(shifted).dataSync()[0]).to.be.above(obj(mT).dataSync()[0]);
    // Adam after T steps.
    const r = runSteps(adamw({ learningRate: lr, beta1: b1, beta2: b2, epsilon: 1e-8 }), { w: [0, 0, 0] }, gs.map((g) => ({ w: g })));
    assertClose(tf.div(r.state['w::m'], 1 - Math.pow(b1, T)), mStar, { rtol: 1e-5 });
    assertClose(tf.div(r.state['w::v'], 1 - Math.pow(b2, T)), vStar, { rtol: 1e-5 });
    const expected = mStar.map((m, j) => (-lr * m) / (Math.sqrt(vStar[j]) + 1e-8));
    assertClose(r.updates[T - 1].w, expected, { rtol: 1e-5 });
    tf.dispose([weights1, G, mT, shifted, r.state]);
  });
});
