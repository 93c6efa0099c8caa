/** Tiny options and weights for the tests of this plugin. */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { l2Loss } from '../../../core/inner-loss';
import { assertClose } from '../../../core/testing';
import { memoryNames, selfModifyingTitansForward, type SmtOptions, type SmtState, type SmtWeights } from './forward';

export const TEST_H = 2;
export const TEST_DH = 3;
export const TEST_D = TEST_H * TEST_DH;
export const TEST_DHID = 4;

export function testOptions(over: Partial<SmtOptions> = {}): SmtOptions {
  return {
    numHeads: TEST_H,
    headDim: TEST_DH,
    hiddenDim: TEST_DHID,
    act: 'silu',
    innerLoss: l2Loss,
    momentum: 0.5,
    dgd: true,
    weightDecay: true,
    staticK: false,
    staticV: false,
    adaptiveQ: false,
    normalize: 'l2',
    chunkSize: 4,
    memChunkSize: 4,
    etaMax: 0.15,
    alphaMin: 0.5,
    gradClip: 10,
    impl: 'chunked',
    gradientMode: 'full',
    sentinel: false,
    layerName: 'test',
    parameterization: 'paper',
    slowRate: 0.1,
    ...over,
  };
}

/** Options of parameterization 'stable' (no momentum; a bigger step so the test writes matter). */
export function stableTestOptions(over: Partial<SmtOptions> = {}): SmtOptions {
  return testOptions({ parameterization: 'stable', momentum: null, etaMax: 1, slowRate: 0.1, gradClip: 1, ...over });
}

/** Random weights (scale large enough that memories matter; seeded). */
export function testWeights(o: SmtOptions, seed = 1): SmtWeights {
  const nm = memoryNames(o).length;
  const h = o.numHeads;
  const d = h * o.headDim;
  const g = (shape: number[], s: number, std: number): tf.Tensor => tf.randomNormal(shape, 0, std, 'float32', seed * 100 + s);
  const w: SmtWeights = {
    w1Init: g([nm, h, o.headDim, o.hiddenDim], 1, 0.5),
    w2Init: g([nm, h, o.hiddenDim, o.headDim], 2, 0.7),
    memW1Init: g([h, o.headDim, o.hiddenDim], 3, 0.5),
    memW2Init: g([h, o.hiddenDim, o.headDim], 4, 0.7),
    etaBias: g([h], 5, 0.3),
    outKernel: g([d, d], 6, 0.5),
  };
  if (o.weightDecay) w.alphaBias = g([h], 7, 0.3).add(3);
  if (!o.adaptiveQ) w.qKernel = g([d, d], 8, 0.5);
  if (o.staticK) w.kKernel = g([d, d], 9, 0.5);
  if (o.staticV) w.vKernel = g([d, d], 10, 0.5);
  if (o.parameterization === 'stable') {
    // output matrices near the stable initialisation (0): large random W1 make the self-referential
    // targets chaotic at these tiny widths, and float32 rounding then separates naive from chunked
    w.w1Init = w.w1Init.mul(0.2);
    w.memW1Init = w.memW1Init.mul(0.2);
    w.qKernel = g([d, d], 8, 0.5);
    w.kKernel = g([d, d], 9, 0.5);
    w.vKernel = g([d, d], 10, 0.5);
    w.gateKernel = g([d, d], 11, 0.5);
    w.normGain = g([d], 12, 0.2).add(1);
  }
  return w;
}

/** Random input [b, t, TEST_D] (seeded). */
export function testX(b: number, t: number, seed = 3): tf.Tensor3D {
  return tf.randomNormal([b, t, TEST_D], 0, 1, 'float32', seed) as tf.Tensor3D;
}
/** |a - e| <= tol |e| + tol max|e| + 1e-6; tol 1e-4, or 1e-3 for the longest streams (float32 drift through 16+ chunks of self-referential targets). */
export function close(a: tf.Tensor, e: tf.Tensor, name: string, tol = 1e-4): void {
  const m = e.size ? e.abs().max().dataSync()[0] : 0;
  assertClose(a, e, { rtol: tol, atol: tol * m + 1e-6, name });
}
export function compareStates(a: SmtState, e: SmtState, name: string, tol = 1e-4): void {
  expect(Object.keys(a).sort()).to.deep.equal(Object.keys(e).sort());
  for (const k of Object.keys(e)) {
    expect(a[k].shape, `${name}.${k} shape`).to.deep.equal(e[k].shape);
    close(a[k], e[k], `${name}.${k}`, tol);
  }
}
export function gradsOf(o: SmtOptions, w: SmtWeights, xx: tf.Tensor, r: tf.Tensor): tf.Tensor[] {
  const names = Object.keys(w) as Array<keyof SmtWeights>;
  return tf.grads((...args: tf.Tensor[]) => {
    const ww = { ...w } as Record<string, tf.Tensor>;
    names.forEach((n, i) => (ww[n] = args[i + 1]));
    return selfModifyingTitansForward(o, ww as unknown as SmtWeights, args[0], null).y.mul(r).sum();
  })([xx, ...names.map((n) => w[n] as tf.Tensor)]);
}
