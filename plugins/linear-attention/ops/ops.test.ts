/**
 * Recurrence ops: hand-computed cases per rule, the (I + N)^{-1} builders against float64 forward
 * substitution, and the chunked form against the naive one at op level (incl. gradients w.r.t. every input).
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose } from '../../../core/testing';
import { chunkedRecurrence } from './chunked';
import { naiveRecurrence } from './naive';
import { seriesInverse, wyInverse, wyMatrix, type TrilInverseMethod } from '../../../core/ops/tril-inverse';
import { LINEAR_ATTENTION_RULES, type LinearAttentionRule, type RecurrenceInputs, type RecurrenceOutputs } from './types';

/** Float64 forward substitution: (I + N)^{-1} for one strictly lower C x C matrix (row-major). */
function inverse64(n: ArrayLike<number>, c: number): Float64Array {
  const r = new Float64Array(c * c);
  for (let col = 0; col < c; col++) {
    for (let i = 0; i < c; i++) {
      let s = i === col ? 1 : 0;
      for (let j = 0; j < i; j++) s -= n[i * c + j] * r[j * c + col];
      r[i * c + col] = s;
    }
  }
  return r;
}

interface WyCase {
  k: tf.Tensor3D; // [X, C, dk], unit rows
  beta: tf.Tensor2D; // [X, C]
  g: tf.Tensor2D | null; // [X, C] cumulative log gates (non-increasing), or null
}

/** Random WY inputs; `repeat` makes all keys of a chunk nearly equal (the hard case for 'series'). */
function wyCase(x: number, c: number, dk: number, seed: number, repeat: boolean, gated: boolean): WyCase {
  const k = tf.tidy(() => {
    let kk = tf.randomNormal([x, c, dk], 0, 1, 'float32', seed);
    if (repeat) kk = kk.slice([0, 0, 0], [x, 1, dk]).tile([1, c, 1]).add(tf.randomNormal([x, c, dk], 0, 0.05, 'float32', seed + 1));
    return kk.div(kk.norm('euclidean', -1, true)) as tf.Tensor3D;
  });
  const beta = tf.randomUniform([x, c], 0.5, 1, 'float32', seed + 2) as tf.Tensor2D;
  const g = gated ? tf.tidy(() => tf.cumsum(tf.randomUniform([x, c], -0.3, 0, 'float32', seed + 3), 1) as tf.Tensor2D) : null;
  return { k, beta, g };
}

/** N = strictly_lower(diag(beta) (Gam o K K^T)) in float64 JS, one [C, C] matrix per batch entry. */
function wyMatrix64(w: WyCase): number[][] {
  const k = w.k.arraySync();
  const beta = w.beta.arraySync();
  const g = w.g ? w.g.arraySync() : null;
  return k.map((kb, b) => {
    const c = kb.length;
    const n = new Array<number>(c * c).fill(0);
    for (let i = 0; i < c; i++) {
      for (let j = 0; j < i; j++) {
        const dot = kb[i].reduce((acc, v, d) => acc + v * kb[j][d], 0);
        n[i * c + j] = beta[b][i] * dot * (g ? Math.exp(g[b][i] - g[b][j]) : 1);
      }
    }
    return n;
  });
}

/** max |a - e| / max |e| */
function normRelErr(a: tf.Tensor, e: tf.Tensor): number {
  return tf.tidy(() => a.sub(e).abs().max().dataSync()[0] / e.abs().max().dataSync()[0]);
}

describe('linear-attention ops: WY inverse (I + N)^-1', () => {
  for (const c of [1, 2, 5, 13, 32, 64]) {
    for (const gated of [false, true]) {
      it(`wyMatrix, blocked and series match float64 (forward substitution), C=${c}${gated ? ', gated' : ''}`, () => {
        const w = wyCase(3, c, 8, 10 + c, false, gated);
        const n64 = wyMatrix64(w);
        assertClose(wyMatrix(w.k, w.beta, w.g), n64.flat(), { rtol: 1e-5, atol: 1e-6, name: `wyMatrix C=${c}` });
        for (const method of ['blocked', 'series'] as const) {
          const inv = wyInverse(w.k, w.beta, w.g, method);
          expect(inv.shape).to.deep.equal([3, c, c]);
          const want = n64.flatMap((m) => Array.from(inverse64(m, c)));
          // The series form accumulates more rounding (long products), hence its looser bound.
          const tol = method === 'blocked' ? 1e-5 : 1e-4;
          assertClose(inv, want, { rtol: tol, atol: tol, name: `${method} C=${c}` });
          inv.dispose();
        }
        tf.dispose([w.k, w.beta, w.g as tf.Tensor]);
      });
    }
  }

  it('blocked stays exact for near-repeated keys where the series form loses float32 precision (C=64)', () => {
    const c = 64;
    const w = wyCase(2, c, 16, 7, true, false);
    const want = tf.tensor3d(wyMatrix64(w).flatMap((m) => Array.from(inverse64(m, c))), [2, c, c]);
    const blocked = wyInverse(w.k, w.beta, null, 'blocked');
    const series = wyInverse(w.k, w.beta, null, 'series');
    const errBlocked = normRelErr(blocked, want);
    const errSeries = normRelErr(series, want);
    expect(errBlocked, 'blocked').to.be.below(1e-5);
    // Documents why 'blocked' is the default: the partial Neumann products cancel catastrophically here.
    expect(errSeries, 'series').to.be.above(1e-3);
    tf.dispose([w.k, w.beta, want, blocked, series]);
  });

  it('seriesInverse inverts a generic strictly lower matrix: (I + N) T = I', () => {
    const n = tf.linalg.bandPart(tf.randomNormal([2, 6, 6], 0, 0.5, 'float32', 3), -1, 0).sub(tf.linalg.bandPart(tf.randomNormal([2, 6, 6], 0, 0.5, 'float32', 3), 0, 0)) as tf.Tensor3D;
    const t = seriesInverse(n);
    assertClose(tf.matMul(tf.eye(6).expandDims(0).add(n) as tf.Tensor3D, t), tf.eye(6).expandDims(0).tile([2, 1, 1]), { atol: 1e-5 });
  });
});

// Hand-computed two-token cases, N = 1, dk = dv = 2.
// k1 = [1, 0], k2 = [0.6, 0.8]; q1 = [1, 1], q2 = [0, 1]; v1 = [2, -1], v2 = [1, 3].
// additive, S0 = 0:
//   S1 = v1 k1^T = [[2, 0], [-1, 0]],                 o1 = S1 q1 = [2, -1]
//   S2 = S1 + v2 k2^T = [[2.6, 0.8], [0.8, 2.4]],     o2 = S2 q2 = [0.8, 2.4]
// delta, S0 = I, beta = [0.5, 0.25]:
//   e1 = v1 - S0 k1 = [1, -1]; S1 = I + 0.5 e1 k1^T = [[1.5, 0], [-0.5, 1]],   o1 = [1.5, 0.5]
//   S1 k2 = [0.9, 0.5]; e2 = [0.1, 2.5]; S2 = S1 + 0.25 e2 k2^T = [[1.515, 0.02], [-0.125, 1.5]],   o2 = [0.02, 1.5]
// gated-delta, S0 = I, beta = [0.5, 0.25], alpha = [0.5, 0.8]:
//   S0' = 0.5 I; e1 = v1 - S0' k1 = [1.5, -1]; S1 = S0' + 0.5 e1 k1^T = [[1.25, 0], [-0.5, 0.5]],   o1 = [1.25, 0]
//   S1' = 0.8 S1 = [[1, 0], [-0.4, 0.4]]; S1' k2 = [0.6, 0.08]; e2 = [0.4, 2.92];
//   S2 = S1' + 0.25 e2 k2^T = [[1.06, 0.08], [0.038, 0.984]],   o2 = [0.08, 0.984]
const HAND: Record<LinearAttentionRule, { s0: number[][]; o: number[][]; s: number[][] }> = {
  additive: { s0: [[0, 0], [0, 0]], o: [[2, -1], [0.8, 2.4]], s: [[2.6, 0.8], [0.8, 2.4]] },
  delta: { s0: [[1, 0], [0, 1]], o: [[1.5, 0.5], [0.02, 1.5]], s: [[1.515, 0.02], [-0.125, 1.5]] },
  'gated-delta': { s0: [[1, 0], [0, 1]], o: [[1.25, 0], [0.08, 0.984]], s: [[1.06, 0.08], [0.038, 0.984]] },
};

function handInputs(rule: LinearAttentionRule): RecurrenceInputs {
  return {
    q: tf.tensor3d([[[1, 1], [0, 1]]]),
    k: tf.tensor3d([[[1, 0], [0.6, 0.8]]]),
    v: tf.tensor3d([[[2, -1], [1, 3]]]),
    beta: tf.tensor2d([[0.5, 0.25]]),
    logAlpha: tf.tensor2d([[Math.log(0.5), Math.log(0.8)]]),
    s0: tf.tensor3d([HAND[rule].s0]),
  };
}

describe('linear-attention ops: hand-computed two-token cases', () => {
  for (const rule of LINEAR_ATTENTION_RULES) {
    it(`${rule}: naive and chunked (C = 1, 2, 64) give the hand-computed reads and memory`, () => {
      const inp = handInputs(rule);
      const runs: Array<[string, RecurrenceOutputs]> = [
        ['naive', naiveRecurrence(rule, inp)],
        ...[1, 2, 64].map((c): [string, RecurrenceOutputs] => [`chunked C=${c}`, chunkedRecurrence(rule, inp, { chunkSize: c })]),
      ];
      for (const [name, r] of runs) {
        assertClose(r.o, tf.tensor3d([HAND[rule].o]), { rtol: 1e-5, atol: 1e-6, name: `${rule} ${name} o` });
        assertClose(r.s, tf.tensor3d([HAND[rule].s]), { rtol: 1e-5, atol: 1e-6, name: `${rule} ${name} S` });
      }
    });
  }

  it('rejects missing beta / logAlpha and mismatched shapes, naming the input', () => {
    const inp = handInputs('gated-delta');
    expect(() => naiveRecurrence('delta', { ...inp, beta: null })).to.throw(/naiveRecurrence: rule 'delta' needs beta/);
    expect(() => chunkedRecurrence('gated-delta', { ...inp, logAlpha: undefined }, { chunkSize: 4 })).to.throw(
      /chunkedRecurrence: rule 'gated-delta' needs logAlpha/,
    );
    expect(() => chunkedRecurrence('additive', { ...inp, s0: tf.zeros([1, 3, 2]) as tf.Tensor3D }, { chunkSize: 4 })).to.throw(/s0 shape/);
    expect(() => chunkedRecurrence('additive', inp, { chunkSize: 0 })).to.throw(/chunkSize must be a positive integer/);
  });
});

describe('linear-attention ops: chunked == naive incl. gradients w.r.t. q, k, v, beta, log alpha, S0', () => {
  // Relative error bound: |chunked - naive| <= 1e-4 (|naive| + max|naive|) elementwise.
  const N = 3;
  const DK = 4;
  const DV = 3;
  for (const rule of LINEAR_ATTENTION_RULES) {
    it(`${rule}: T = 37, C in {8, 37, 64} (blocked) and 16 (series), random gates`, () => {
      const t = 37;
      const inputs = tf.tidy(() => {
        const unit = (a: tf.Tensor): tf.Tensor3D => a.div(a.norm('euclidean', -1, true)) as tf.Tensor3D;
        return [
          tf.randomNormal([N, t, DK], 0, 1, 'float32', 1), // q
          unit(tf.randomNormal([N, t, DK], 0, 1, 'float32', 2)), // k
          tf.randomNormal([N, t, DV], 0, 1, 'float32', 3), // v
          tf.sigmoid(tf.randomNormal([N, t], 0, 1, 'float32', 4)), // beta
          tf.logSigmoid(tf.randomNormal([N, t], 1, 1, 'float32', 5)), // log alpha, alpha ~ 0.5..0.95
          tf.randomNormal([N, DV, DK], 0, 1, 'float32', 6), // S0
        ];
      });
      const wO = tf.randomNormal([N, t, DV], 0, 1, 'float32', 7);
      const wS = tf.randomNormal([N, DV, DK], 0, 1, 'float32', 8);
      // Only the inputs a rule reads (tf.grads rejects inputs that do not reach the loss).
      const used = rule === 'additive' ? [0, 1, 2, 5] : rule === 'delta' ? [0, 1, 2, 3, 5] : [0, 1, 2, 3, 4, 5];
      const names = ['q', 'k', 'v', 'beta', 'logAlpha', 'S0'];
      const pack = (a: tf.Tensor[]): RecurrenceInputs => {
        const full = [...inputs];
        used.forEach((u, i) => (full[u] = a[i]));
        const [q, k, v, beta, logAlpha, s0] = full;
        return { q, k, v, beta, logAlpha, s0 } as RecurrenceInputs;
      };
      const run = (impl: (inp: RecurrenceInputs) => { o: tf.Tensor; s: tf.Tensor }) => {
        const f = (...a: tf.Tensor[]): tf.Scalar => {
          const r = impl(pack(a));
          return r.o.mul(wO).sum().add(r.s.mul(wS).sum()) as tf.Scalar;
        };
        const out = impl(pack(used.map((u) => inputs[u])));
        return { ...out, grads: tf.grads(f)(used.map((u) => inputs[u])) };
      };
      const ref = run((inp) => naiveRecurrence(rule, inp));
      const variants: Array<[number, TrilInverseMethod]> = [[8, 'blocked'], [37, 'blocked'], [64, 'blocked'], [16, 'series']];
      for (const [c, inverse] of variants) {
        const got = run((inp) => chunkedRecurrence(rule, inp, { chunkSize: c, inverse }));
        const close = (a: tf.Tensor, e: tf.Tensor, name: string): void => {
          const scale = e.abs().max().dataSync()[0];
          assertClose(a, e, { rtol: 1e-4, atol: 1e-4 * scale, name: `${rule} C=${c} ${inverse} ${name}` });
        };
        close(got.o, ref.o, 'o');
        close(got.s, ref.s, 'S');
        got.grads.forEach((g, i) => {
          close(g, ref.grads[i], `d/d${names[used[i]]}`);
          expect(ref.grads[i].abs().max().dataSync()[0], `d/d${names[used[i]]} is not trivially zero`).to.be.above(1e-3);
        });
        tf.dispose([got.o, got.s, ...got.grads]);
      }
      tf.dispose([...inputs, wO, wS, ref.o, ref.s, ...ref.grads]);
    });
  }
});
