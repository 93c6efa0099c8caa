/**
 * M3 (Algorithm 1) against an independent float64 computation written out here: the first 2f + 1
 * steps (f = 3: steps 1..3 use O2 = 0, the refresh at the end of step 3 serves steps 4..6, the one at
 * the end of step 6 serves step 7), for a tall, a wide and two same-shaped matrices (the batched
 * Newton-Schulz path), in both momentum modes. Also: Newton-Schulz batched == one at a time.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose } from '../../core/testing';
import { m3 } from './m3';
import { runSteps } from './test-helpers';
import { NS_COEFFS, newtonSchulz, newtonSchulzMany } from './util';

type Mat = number[][];
const zeros = (r: number, c: number): Mat => Array.from({ length: r }, () => new Array<number>(c).fill(0));
const map2 = (a: Mat, b: Mat, f: (x: number, y: number) => number): Mat => a.map((row, i) => row.map((x, j) => f(x, b[i][j])));
const scal = (a: Mat, s: number): Mat => a.map((row) => row.map((x) => x * s));
const mm = (a: Mat, b: Mat): Mat => a.map((row) => b[0].map((_, j) => row.reduce((acc, x, k) => acc + x * b[k][j], 0)));
const tr = (a: Mat): Mat => a[0].map((_, j) => a.map((row) => row[j]));

/** Float64 quintic Newton-Schulz on G / ||G||_F (the paper layout does not matter: X X^T on the wide side). */
function ns64(g: Mat, steps = 5): Mat {
  const tall = g.length > g[0].length;
  let x = tall ? tr(g) : g;
  const n = Math.sqrt(x.flat().reduce((a, v) => a + v * v, 0));
  x = scal(x, 1 / (n + 1e-7));
  const [a, b, c] = NS_COEFFS;
  for (let i = 0; i < steps; i++) {
    const A = mm(x, tr(x));
    const poly = map2(scal(A, b), scal(mm(A, A), c), (p, q) => p + q);
    x = map2(scal(x, a), mm(poly, x), (p, q) => p + q);
  }
  return tall ? tr(x) : x;
}

/** Algorithm 1 in float64, step by step: returns the parameters after each step. */
function m3Reference(w0: Mat, grads: Mat[], o: { lr: number; b1: number; b2: number; b3: number; alpha: number; f: number; eps: number; ema: boolean; before?: boolean }): Mat[] {
  const r = w0.length;
  const c = w0[0].length;
  let w = w0;
  let m1 = zeros(r, c);
  let m2 = zeros(r, c);
  let v = zeros(r, c);
  let o2 = zeros(r, c); // O2 = 0 for steps 1..f
  let block: Mat[] = [];
  const out: Mat[] = [];
  grads.forEach((g, i) => {
    const t = i + 1;
    block.push(g);
    m1 = o.ema ? map2(scal(m1, o.b1), g, (p, q) => p + (1 - o.b1) * q) : map2(m1, g, (p, q) => p + o.b1 * q);
    v = o.ema ? map2(scal(v, o.b2), g, (p, q) => p + (1 - o.b2) * q * q) : map2(v, g, (p, q) => p + o.b2 * q * q);
    const vRead = o.ema ? scal(v, 1 / (1 - o.b2 ** t)) : v;
    const den = vRead.map((row) => row.map((x) => Math.sqrt(x) + o.eps));
    const o1 = ns64(o.before ? map2(m1, den, (p, q) => p / q) : m1);
    const num = map2(o1, o2, (p, q) => p + o.alpha * q);
    w = w.map((row, a) => row.map((x, b) => x - (o.lr * num[a][b]) / (o.before ? 1 : den[a][b])));
    out.push(w);
    if (t % o.f === 0) {
      // next outer iteration: slow memory over this block's gradients, then O2 for the next f steps
      const s = block.reduce((acc, gg) => map2(acc, gg, (p, q) => p + q), zeros(r, c));
      m2 = o.ema ? map2(scal(m2, o.b3), s, (p, q) => p + (1 - o.b3) * q) : map2(m2, s, (p, q) => p + o.b3 * q);
      o2 = ns64(o.before ? map2(m2, den, (p, q) => p / q) : m2); // 'beforeNs': V of this step
      block = [];
    }
  });
  return out;
}

/** Deterministic pseudo-random matrix with entries in [-1, 1] plus `shift` on the diagonal-ish entries. */
function pseudo(r: number, c: number, seed: number): Mat {
  let s = seed;
  const next = (): number => {
    s = (s * 16807) % 2147483647;
    return (s / 2147483647) * 2 - 1;
  };
  return Array.from({ length: r }, () => Array.from({ length: c }, () => next() + 0.3));
}

describe('optimizers: m3 (Algorithm 1) vs a float64 hand computation', () => {
  const f = 3;
  const steps = 2 * f + 1;
  const shapes: Record<string, [number, number]> = { tall: [4, 2], wide: [2, 5], twinA: [3, 3], twinB: [3, 3] };
  for (const [ema, before] of [[false, false], [true, false], [false, true]]) {
    const label = `${ema ? "momentum 'ema'" : "momentum 'accumulate' (as printed)"}${before ? ", precondition 'beforeNs'" : ''}`;
    it(`${label}: first 2f + 1 = ${steps} steps, O2 from the previous block only`, () => {
      const o = { lr: 0.01, b1: 0.9, b2: 0.999, b3: 0.9, alpha: 0.7, f, eps: 1e-8, ema, before };
      const t = m3({ learningRate: o.lr, alpha: o.alpha, frequency: f, ...(ema ? { momentum: 'ema' as const } : {}), ...(before ? { precondition: 'beforeNs' as const } : {}) });
      const names = Object.keys(shapes);
      const w0: Record<string, Mat> = {};
      const gseq: Array<Record<string, Mat>> = [];
      names.forEach((n, j) => (w0[n] = pseudo(shapes[n][0], shapes[n][1], 7 + j)));
      for (let i = 0; i < steps; i++) {
        const gs: Record<string, Mat> = {};
        names.forEach((n, j) => (gs[n] = pseudo(shapes[n][0], shapes[n][1], 1000 + 31 * i + j)));
        gseq.push(gs);
      }
      for (const n of names) {
        const ref = m3Reference(w0[n], gseq.map((g) => g[n]), o);
        // run the transform step by step, comparing the parameters after every step
        for (let k = 1; k <= steps; k++) {
          const r = runSteps(t, { [n]: w0[n] }, gseq.slice(0, k).map((g) => ({ [n]: g[n] })));
          assertClose(r.params[n] as number[][], ref[k - 1], { rtol: 2e-4, atol: 2e-6, name: `${n} step ${k}` });
          tf.dispose(r.state);
        }
      }
      // all four together (batched NS over twinA/twinB) give the same final parameters
      const all = runSteps(t, w0, gseq);
      for (const n of names) assertClose(all.params[n] as number[][], m3Reference(w0[n], gseq.map((g) => g[n]), o)[steps - 1], { rtol: 2e-4, atol: 2e-6, name: `${n} batched` });
      tf.dispose(all.state);
    });
  }

  it('steps f, 2f use the previous slow memory: with f = 1 step 1 has no slow term (the old early refresh had one)', () => {
    // f = 1, one step, g = diag(3, 1): Algorithm 1 gives u = -lr NS(M1) / sqrt(V) (O2 = 0 at step 1);
    // the previous code refreshed first and added alpha NS(M2) = NS(g) as well (twice the step).
    const r = runSteps(m3({ learningRate: 0.1, frequency: 1 }), { w: [[0, 0], [0, 0]] }, [{ w: [[3, 0], [0, 1]] }]);
    const o1 = ns64([[2.7, 0], [0, 0.9]]);
    assertClose(r.updates[0].w as number[][], [[(-0.1 * o1[0][0]) / Math.sqrt(0.999 * 9), 0], [0, (-0.1 * o1[1][1]) / Math.sqrt(0.999)]], { rtol: 1e-4, atol: 1e-6 });
    assertClose(r.state['w::o2'], ns64([[2.7, 0], [0, 0.9]]), { rtol: 1e-4, atol: 1e-6 }); // refreshed for step 2
    tf.dispose(r.state);
  });

  it('newtonSchulzMany (batched by shape) == newtonSchulz one matrix at a time; tall == transposed wide', () => {
    const xs = [tf.randomNormal([5, 3], 0, 1, 'float32', 1), tf.randomNormal([3, 5], 0, 1, 'float32', 2), tf.randomNormal([5, 3], 0, 1, 'float32', 3), tf.zeros([5, 3])] as tf.Tensor2D[];
    const many = newtonSchulzMany(xs, 5);
    xs.forEach((x, i) => {
      const one = newtonSchulz(x, 5);
      assertClose(many[i], one, { rtol: 1e-4, atol: 1e-5, name: `matrix ${i}` });
      assertClose(one, ns64(x.arraySync()), { rtol: 1e-3, atol: 1e-4, name: `float64 ${i}` });
      one.dispose();
    });
    const tallT = newtonSchulz(xs[0].transpose() as tf.Tensor2D, 5);
    assertClose(tallT, many[0].transpose(), { rtol: 1e-4, atol: 1e-5 });
    expect(many[3].arraySync().flat().every((v) => v === 0)).to.equal(true);
    tf.dispose([...xs, ...many, tallT]);
  });
});
