/**
 * The fused Newton-Schulz kernel (NlNewtonSchulz; on wasm gemm.wasm's newton_schulz) against the op path
 * (util.ts newtonSchulzBatch with setFusedNewtonSchulz(false), the reference) and a float64 computation.
 * Skipped where the kernel is not registered (e.g. NL_BACKEND=cpu).
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { countKernels } from '../../core/profiling';
import { fusedKernelUsable } from '../../core/ops/fused-step';
import { NEWTON_SCHULZ_KERNEL } from '../../core/transforms/newton-schulz-kernel';
import { NS_COEFFS, newtonSchulz, newtonSchulzBatch, newtonSchulzMany, newtonSchulzParams, setFusedNewtonSchulz } from './util';

/** max |a - b| / max |b| (0 when b is all zeros and a equals it). */
function relDiff(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  expect(x.length).to.equal(y.length);
  let d = 0;
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    d = Math.max(d, Math.abs(x[i] - y[i]));
    s = Math.max(s, Math.abs(y[i]));
  }
  return s === 0 ? d : d / s;
}

function withFused<T>(on: boolean, fn: () => T): T {
  const previous = setFusedNewtonSchulz(on);
  try {
    return fn();
  } finally {
    setFusedNewtonSchulz(previous);
  }
}

/** Newton-Schulz in float64 (plain arrays), the same iteration as util.ts. g: [r][c]. */
function nsFloat64(g: number[][], steps: number, eps = 1e-7): number[][] {
  const [a, b, c] = NS_COEFFS;
  const r = g.length;
  const cols = g[0].length;
  const norm = Math.sqrt(g.flat().reduce((s, v) => s + v * v, 0));
  let x = g.map((row) => row.map((v) => v / (norm + eps)));
  const mm = (p: number[][], q: number[][]): number[][] => p.map((row) => q[0].map((_, j) => row.reduce((s, v, k) => s + v * q[k][j], 0)));
  const tr = (p: number[][]): number[][] => p[0].map((_, j) => p.map((row) => row[j]));
  for (let i = 0; i < steps; i++) {
    const tall = r > cols;
    const gram = tall ? mm(tr(x), x) : mm(x, tr(x));
    const g2 = mm(gram, gram);
    const poly = gram.map((row, p) => row.map((v, q) => b * v + c * g2[p][q]));
    const px = tall ? mm(x, poly) : mm(poly, x);
    x = x.map((row, p) => row.map((v, q) => a * v + px[p][q]));
  }
  return x;
}

describe('optimizers: fused Newton-Schulz kernel', () => {
  before(function () {
    if (!fusedKernelUsable(NEWTON_SCHULZ_KERNEL)) this.skip();
  });

  it('agrees with the op path on wide, tall, square, tiny and k-blocked shapes, batched and not, 0-5 steps', () => {
    // [300, 9] / [9, 300]: Gram products with k = 300 > 256 (the kernel's k blocking); odd sizes hit the
    // 1-3 row and partial-panel tails; [4, 128]: a 4 x 4 Gram; steps 0..5 cover both ping-pong parities.
    const shapes: Array<[number, number]> = [[3, 5], [5, 3], [1, 7], [7, 1], [13, 13], [4, 128], [64, 128], [128, 64], [300, 9], [9, 300], [37, 21]];
    const before = tf.memory().numTensors;
    for (const steps of [0, 1, 2, 5]) {
      const xs = shapes.map((s, i) => tf.randomNormal(s, 0, 1, 'float32', 10 * steps + i) as tf.Tensor2D);
      const ref = withFused(false, () => newtonSchulzMany(xs, steps));
      const fused = withFused(true, () => newtonSchulzMany(xs, steps));
      xs.forEach((x, i) => {
        expect(fused[i].shape).to.deep.equal(x.shape);
        expect(relDiff(fused[i], ref[i]), `[${x.shape}] steps ${steps}`).to.be.below(2e-5);
      });
      tf.dispose([...xs, ...ref, ...fused]);
    }
    // A batch [n, r, c]: each matrix normalised by its own norm.
    const g = tf.randomNormal([3, 24, 40], 0, 1, 'float32', 5) as tf.Tensor3D;
    const scaled = tf.tidy(() => tf.mul(g, tf.tensor([1, 100, 1e-3]).reshape([3, 1, 1]))) as tf.Tensor3D;
    const ref = withFused(false, () => newtonSchulzBatch(scaled, 5));
    const fused = withFused(true, () => newtonSchulzBatch(scaled, 5));
    expect(relDiff(fused, ref)).to.be.below(2e-5);
    // batchAxis: [B, ...] parameters, B matrices each.
    const p = tf.randomNormal([2, 3, 4, 6], 0, 1, 'float32', 6);
    const refP = withFused(false, () => newtonSchulzParams([p, scaled], 5, true));
    const fusedP = withFused(true, () => newtonSchulzParams([p, scaled], 5, true));
    refP.forEach((r, i) => expect(relDiff(fusedP[i], r), `param ${i}`).to.be.below(2e-5));
    tf.dispose([g, scaled, ref, fused, p, ...refP, ...fusedP]);
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('matches a float64 computation; a zero matrix gives zeros', () => {
    const g = tf.randomNormal([6, 10], 0, 1, 'float32', 3) as tf.Tensor2D;
    const expected = nsFloat64(g.arraySync(), 5);
    for (const x of [g, g.transpose() as tf.Tensor2D]) {
      const want = x === g ? expected : expected[0].map((_, j) => expected.map((row) => row[j]));
      const o = withFused(true, () => newtonSchulz(x, 5));
      expect(relDiff(o, tf.tensor2d(want))).to.be.below(2e-5);
      o.dispose();
    }
    const z = withFused(true, () => newtonSchulz(tf.zeros([4, 6]) as tf.Tensor2D, 5));
    expect(Array.from(z.dataSync()).every((v) => v === 0)).to.equal(true);
    tf.dispose([g, z]);
  });

  it('runs every matrix in one kernel call (no stacking or splitting); the op path under a gradient tape', () => {
    const xs = ([[8, 4], [8, 4], [4, 8], [16, 16]] as Array<[number, number]>).map((s, i) => tf.randomNormal(s, 0, 1, 'float32', i) as tf.Tensor2D);
    const { kernels } = countKernels(() => tf.tidy(() => withFused(true, () => newtonSchulzMany(xs, 5))));
    expect(kernels.total).to.equal(1);
    expect(kernels.byKernel[NEWTON_SCHULZ_KERNEL]).to.equal(1);
    // Gradients flow through the op path (the kernel has no gradient).
    const x = xs[3];
    const grad = (on: boolean): tf.Tensor => withFused(on, () => tf.grad((t: tf.Tensor) => tf.sum(tf.square(newtonSchulz(t as tf.Tensor2D, 2))))(x));
    const gFused = grad(true);
    const gRef = grad(false);
    expect(relDiff(gFused, gRef)).to.equal(0);
    tf.dispose([...xs, gFused, gRef]);
  });
});
