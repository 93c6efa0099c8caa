import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { BUILTIN_INNER_LOSSES, disposeState, sliceStateBatch, concatStateBatch, l2Loss } from '../../core';
import { assertClose, expectNoLeakedTensors, forEachBackend, gradCheck } from '../../core/testing';
import { MatrixMemory } from './matrix-memory';
import type { AssocObjective } from './config';
import type { MatrixMemoryState } from './state';

const st = (m: number[][][]): MatrixMemoryState => ({ memory: tf.tensor3d(m) });
/** [N][d] pairs of one sequence -> [1, N, d]. */
const seq = (rows: number[][]): tf.Tensor3D => tf.tensor3d([rows]);

/** Deterministic pseudo-random numbers in [-1, 1) (no tf.random: identical on every backend). */
function rand(seed: number, n: number): number[] {
  const out: number[] = [];
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push((s / 2 ** 32) * 2 - 1);
  }
  return out;
}
const randT = (seed: number, shape: number[]): tf.Tensor => tf.tensor(rand(seed, shape.reduce((a, b) => a * b, 1)), shape);

/**
 * Plain-JS float64 reference of the write rules, one pair at a time (independent of tf and of the
 * core InnerLoss code): M[b] is dv x dk.
 */
function naiveStore(m: number[][][], keys: number[][][], values: number[][][], obj: AssocObjective, eta: number, decay: number): number[][][] {
  return m.map((mb, b) => {
    let M = mb.map((r) => r.slice());
    keys[b].forEach((k, i) => {
      const v = values[b][i];
      const p = M.map((row) => row.reduce((s, x, j) => s + x * k[j], 0));
      let g: number[];
      if (obj === 'dot') g = v.map((x) => -x);
      else if (obj === 'l2') g = p.map((x, r) => x - v[r]);
      else {
        const np = Math.hypot(...p) + 1e-6;
        const nv = Math.hypot(...v) + 1e-6;
        const dot = p.reduce((s, x, r) => s + x * v[r], 0);
        g = p.map((x, r) => -(v[r] / (np * nv) - (x * dot) / (np ** 3 * nv)));
      }
      M = M.map((row, r) => row.map((x, j) => (1 - decay) * x - eta * g[r] * k[j]));
    });
    return M;
  });
}

forEachBackend('MatrixMemory', () => {
  describe('hand-computed recall', () => {
    // Orthonormal keys e1, e2; values v1 = [1, 2], v2 = [3, -1].
    const K = [[1, 0], [0, 1]];
    const V = [[1, 2], [3, -1]];

    for (const objective of ['dot', 'l2'] as const) {
      it(`${objective === 'dot' ? 'Hebbian' : 'delta'} rule recalls exactly with orthonormal keys (eta = 1)`, () => {
        const mem = new MatrixMemory({ keyDim: 2, valueDim: 2, objective, eta: 1 });
        const s0 = mem.initialState(1);
        const s1 = mem.store(s0, seq(K), seq(V));
        // M = v1 e1^T + v2 e2^T = [[1, 3], [2, -1]] (rows: value index).
        assertClose(s1.memory, [[[1, 3], [2, -1]]], { name: `${objective} M` });
        assertClose(mem.retrieve(s1, seq(K)), [V], { name: `${objective} recall` });
        disposeState(s0);
        disposeState(s1);
      });
    }

    it('decay alpha = 0.5 halves the older pair (Hebbian and delta)', () => {
      for (const objective of ['dot', 'l2'] as const) {
        const mem = new MatrixMemory({ keyDim: 2, valueDim: 2, objective, eta: 1, decay: 0.5 });
        const s1 = mem.store(mem.initialState(1), seq(K), seq(V));
        // M = 0.5 v1 e1^T + v2 e2^T.
        assertClose(mem.retrieve(s1, seq(K)), [[[0.5, 1], [3, -1]]], { name: objective });
      }
    });

    // Non-orthogonal unit keys k1 = [1, 0], k2 = [0.6, 0.8] (cos = 0.6); v1 = [1, 0], v2 = [0, 1].
    const K2 = [[1, 0], [0.6, 0.8]];
    const V2 = [[1, 0], [0, 1]];

    it('Hebbian suffers interference with non-orthogonal keys: recall(k1) = [1, 0.6], recall(k2) = [0.6, 1]', () => {
      const mem = new MatrixMemory({ keyDim: 2, valueDim: 2, objective: 'dot', eta: 1 });
      const s = mem.store(mem.initialState(1), seq(K2), seq(V2));
      // M = v1 k1^T + v2 k2^T = [[1, 0], [0.6, 0.8]].
      assertClose(s.memory, [[[1, 0], [0.6, 0.8]]]);
      assertClose(mem.retrieve(s, seq(K2)), [[[1, 0.6], [0.6, 1]]]);
    });

    it('delta rule writes the latest pair exactly: M = [[0.64, -0.48], [0.6, 0.8]], recall(k2) = v2', () => {
      const mem = new MatrixMemory({ keyDim: 2, valueDim: 2, objective: 'l2', eta: 1 });
      const s = mem.store(mem.initialState(1), seq(K2), seq(V2));
      // Step 1: M = v1 k1^T. Step 2: err = M k2 - v2 = [0.6, -1]; M -= err k2^T.
      assertClose(s.memory, [[[0.64, -0.48], [0.6, 0.8]]]);
      assertClose(mem.retrieve(s, seq(K2)), [[[0.64, 0.6], [0, 1]]]);
    });

    it('delta rule removes interference over repeated sweeps, Hebbian does not', () => {
      const sweeps = 10;
      const keys = seq(Array.from({ length: sweeps }, () => K2).flat());
      const values = seq(Array.from({ length: sweeps }, () => V2).flat());
      const delta = new MatrixMemory({ keyDim: 2, valueDim: 2, objective: 'l2', eta: 1 });
      // eta = 1/sweeps so the Hebbian total write equals one pass at eta = 1 (same scale as the targets).
      const hebb = new MatrixMemory({ keyDim: 2, valueDim: 2, objective: 'dot', eta: 1 / sweeps });
      const err = (mem: MatrixMemory): number =>
        tf.tidy(() => {
          const s = mem.store(mem.initialState(1), keys, values);
          return mem.retrieve(s, seq(K2)).sub(seq(V2)).abs().max().arraySync() as number;
        });
      const dErr = err(delta);
      const hErr = err(hebb);
      // Delta = Kaczmarz projections: the error contracts by cos^2 = 0.36 per sweep (0.36^10 ~ 4e-5).
      expect(dErr).to.be.lessThan(1e-3);
      expect(hErr).to.be.closeTo(0.6, 1e-4);
    });
  });

  describe('each rule is one GD step on its objective', () => {
    const B = 2;
    const dv = 3;
    const dk = 4;
    for (const objective of ['dot', 'l2', 'cosine'] as const) {
      for (const decay of [0, 0.3]) {
        it(`${objective}, decay ${decay}: store(1 pair) = M - eta * tf.grad(L~ + decay/(2 eta) |M|^2)`, () => {
          const eta = 0.7;
          const mem = new MatrixMemory({ keyDim: dk, valueDim: dv, objective, eta, decay });
          const m = randT(1, [B, dv, dk]) as tf.Tensor3D;
          const k = randT(2, [B, 1, dk]);
          const v = randT(3, [B, 1, dv]);
          const loss = BUILTIN_INNER_LOSSES[objective];
          // Autodiff of the InnerLoss VALUE (not its analytic grad), summed over the batch rows.
          const f = (M: tf.Tensor): tf.Scalar =>
            loss.value(tf.matMul(k, M, false, true), v).sum().add(M.square().sum().mul(decay / (2 * eta))) as tf.Scalar;
          const expected = m.sub(tf.grad(f)(m).mul(eta));
          const got = mem.store({ memory: m }, k, v);
          const gotSeq = mem.storeSequential({ memory: m }, k, v);
          assertClose(got.memory, expected, { rtol: 1e-4, atol: 1e-5, name: 'store' });
          assertClose(gotSeq.memory, expected, { rtol: 1e-4, atol: 1e-5, name: 'storeSequential' });
          expect(mem.rule).to.equal({ dot: 'hebbian', l2: 'delta', cosine: 'cosine-normalized' }[objective]);
          // The write decreases the objective it descends (small eta: a strict decrease for a GD step).
          const small = new MatrixMemory({ keyDim: dk, valueDim: dv, objective, eta: 0.01 });
          const s2 = small.store({ memory: m }, k, v);
          expect(small.objective(s2, k, v).arraySync()).to.be.lessThan(small.objective({ memory: m }, k, v).arraySync() as number);
          tf.dispose([m, k, v, expected, got.memory, gotSeq.memory, s2.memory]);
        });
      }
    }

    it('the rules in closed form: Hebbian M + eta v k^T, delta M - eta (Mk - v) k^T, cosine Oja-style', () => {
      const eta = 0.5;
      const m = randT(4, [1, 2, 3]) as tf.Tensor3D;
      const k = randT(5, [1, 1, 3]);
      const v = randT(6, [1, 1, 2]);
      const outer = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.matMul(a, b, true, false); // [1,1,dv]^T [1,1,dk]
      const p = tf.matMul(k, m, false, true); // [1, 1, dv]
      const hebb = m.add(outer(v, k).mul(eta));
      const delta = m.sub(outer(p.sub(v), k).mul(eta));
      // Cosine: M += eta/|p| (v^ - <p^, v^> p^) k^T (derivation in README; eps terms ignored).
      const pn = p.norm();
      const ph = p.div(pn);
      const vh = v.div(v.norm());
      const cos = tf.add(m, outer(vh.sub(ph.mul(ph.mul(vh).sum())), k).mul(tf.scalar(eta).div(pn)));
      const run = (objective: AssocObjective): tf.Tensor => new MatrixMemory({ keyDim: 3, valueDim: 2, objective, eta }).store({ memory: m }, k, v).memory;
      assertClose(run('dot'), hebb, { name: 'hebbian' });
      assertClose(run('l2'), delta, { name: 'delta' });
      assertClose(run('cosine'), cos, { rtol: 1e-4, atol: 1e-5, name: 'cosine' });
    });
  });

  describe('sequential semantics', () => {
    for (const objective of ['dot', 'l2', 'cosine'] as const) {
      it(`${objective}: store and storeSequential equal a float64 token-by-token reference (B=2, N=7, decay 0.1)`, () => {
        const B = 2;
        const N = 7;
        const dk = 3;
        const dv = 2;
        const m0 = tf.tensor3d(rand(7, B * dv * dk).map((x) => x * 0.5), [B, dv, dk]);
        // Unit keys keep the delta recurrence contractive for eta = 0.5.
        const keys = tf.tidy(() => {
          const r = randT(8, [B, N, dk]);
          return r.div(r.norm('euclidean', -1, true));
        });
        const values = randT(9, [B, N, dv]);
        const mem = new MatrixMemory({ keyDim: dk, valueDim: dv, objective, eta: 0.5, decay: 0.1 });
        const ref = naiveStore(
          m0.arraySync() as number[][][],
          keys.arraySync() as number[][][],
          values.arraySync() as number[][][],
          objective,
          0.5,
          0.1,
        );
        const a = mem.store({ memory: m0 }, keys, values);
        const b = mem.storeSequential({ memory: m0 }, keys, values);
        assertClose(a.memory, ref, { rtol: 1e-4, atol: 1e-5, name: 'store' });
        assertClose(b.memory, ref, { rtol: 1e-4, atol: 1e-5, name: 'storeSequential' });
        tf.dispose([m0, keys, values, a.memory, b.memory]);
      });
    }

    it('Hebbian parallel form equals the sequential loop for N in {1, 5, 13}', () => {
      const mem = new MatrixMemory({ keyDim: 3, valueDim: 4, objective: 'dot', eta: 0.3, decay: 0.2 });
      for (const n of [1, 5, 13]) {
        tf.tidy(() => {
          const s = { memory: randT(10 + n, [2, 4, 3]) as tf.Tensor3D };
          const k = randT(20 + n, [2, n, 3]);
          const v = randT(30 + n, [2, n, 4]);
          assertClose(mem.store(s, k, v).memory, mem.storeSequential(s, k, v).memory, { rtol: 1e-4, atol: 1e-5, name: `N=${n}` });
        });
      }
    });

    it('storing 6 pairs at once equals 3 + 3 with carried state, and N = 0 is the identity', () => {
      for (const objective of ['dot', 'l2', 'cosine'] as const) {
        tf.tidy(() => {
          const mem = new MatrixMemory({ keyDim: 3, valueDim: 2, objective, eta: 0.4, decay: 0.05 });
          const s0 = { memory: randT(40, [2, 2, 3]) as tf.Tensor3D };
          const k = randT(41, [2, 6, 3]);
          const v = randT(42, [2, 6, 2]);
          const whole = mem.store(s0, k, v);
          const half = mem.store(s0, k.slice([0, 0, 0], [2, 3, 3]), v.slice([0, 0, 0], [2, 3, 2]));
          const split = mem.store(half, k.slice([0, 3, 0], [2, 3, 3]), v.slice([0, 3, 0], [2, 3, 2]));
          assertClose(split.memory, whole.memory, { rtol: 1e-4, atol: 1e-5, name: objective });
          const none = mem.store(s0, tf.zeros([2, 0, 3]), tf.zeros([2, 0, 2]));
          expect(none.memory).to.not.equal(s0.memory);
          assertClose(none.memory, s0.memory);
        });
      }
    });

    it('batch rows are independent: a B=3 store equals three B=1 stores', () => {
      const mem = new MatrixMemory({ keyDim: 3, valueDim: 2, objective: 'l2', eta: 0.5 });
      tf.tidy(() => {
        const s0 = { memory: randT(50, [3, 2, 3]) as tf.Tensor3D };
        const k = randT(51, [3, 4, 3]);
        const v = randT(52, [3, 4, 2]);
        const all = mem.store(s0, k, v);
        const rows = [0, 1, 2].map((b) =>
          mem.store(sliceStateBatch(s0, b, 1), k.slice([b, 0, 0], [1, 4, 3]), v.slice([b, 0, 0], [1, 4, 2])),
        );
        assertClose(all.memory, concatStateBatch(rows).memory);
        // Changing row 1's inputs leaves rows 0 and 2 untouched.
        const k2 = tf.concat([k.slice([0, 0, 0], [1, 4, 3]), k.slice([1, 0, 0], [1, 4, 3]).mul(-2), k.slice([2, 0, 0], [1, 4, 3])], 0);
        const other = mem.store(s0, k2, v);
        assertClose(other.memory.slice([0, 0, 0], [1, 2, 3]), all.memory.slice([0, 0, 0], [1, 2, 3]));
        assertClose(other.memory.slice([2, 0, 0], [1, 2, 3]), all.memory.slice([2, 0, 0], [1, 2, 3]));
        expect(other.memory.slice([1, 0, 0], [1, 2, 3]).sub(all.memory.slice([1, 0, 0], [1, 2, 3])).abs().max().arraySync()).to.be.greaterThan(1e-3);
      });
    });

    it('store is differentiable w.r.t. keys and values (delta rule, finite differences)', () => {
      const mem = new MatrixMemory({ keyDim: 2, valueDim: 2, objective: 'l2', eta: 0.5 });
      const m0 = randT(60, [1, 2, 2]) as tf.Tensor3D;
      const q = randT(61, [1, 2, 2]);
      const k = randT(62, [1, 2, 2]);
      const v = randT(63, [1, 2, 2]);
      gradCheck((kk, vv) => mem.retrieve(mem.store({ memory: m0 }, kk, vv), q).square().sum() as tf.Scalar, [k, v], { name: 'delta store' });
      tf.dispose([m0, q, k, v]);
    });
  });

  describe('cosine rule: Oja-style normalised write', () => {
    it('the write is orthogonal to the current read: <M k, dM k> = 0, so |M k| only grows to second order', () => {
      const mem = new MatrixMemory({ keyDim: 4, valueDim: 3, objective: 'cosine', eta: 0.3 });
      tf.tidy(() => {
        const s = { memory: randT(70, [2, 3, 4]) as tf.Tensor3D };
        const k = randT(71, [2, 1, 4]);
        const v = randT(72, [2, 1, 3]);
        const p = mem.retrieve(s, k); // [2, 1, 3]
        const dp = mem.retrieve(mem.store(s, k, v), k).sub(p);
        const inner = p.mul(dp).sum(-1); // [2, 1]
        const scale = p.norm('euclidean', -1).mul(dp.norm('euclidean', -1));
        expect((dp.norm().arraySync() as number)).to.be.greaterThan(1e-2); // the write is not trivially zero
        assertClose(inner.div(scale), [[0], [0]], { atol: 1e-4 });
      });
    });

    it('the write ignores the value norm (normalised), unlike Hebbian and delta', () => {
      tf.tidy(() => {
        const s = { memory: randT(73, [1, 3, 4]) as tf.Tensor3D };
        const k = randT(74, [1, 1, 4]);
        const v = randT(75, [1, 1, 3]);
        for (const objective of ['cosine', 'dot', 'l2'] as const) {
          const mem = new MatrixMemory({ keyDim: 4, valueDim: 3, objective, eta: 0.3 });
          const a = mem.store(s, k, v).memory;
          const b = mem.store(s, k, v.mul(5)).memory;
          const diff = a.sub(b).abs().max().arraySync() as number;
          if (objective === 'cosine') expect(diff, 'cosine').to.be.lessThan(1e-5);
          else expect(diff, objective).to.be.greaterThan(0.1);
        }
      });
    });

    it('repeated writes of one pair: the read turns to v^ and its norm plateaus (Hebbian grows linearly)', () => {
      const cosMem = new MatrixMemory({ keyDim: 3, valueDim: 3, objective: 'cosine', eta: 0.5 });
      const hebMem = new MatrixMemory({ keyDim: 3, valueDim: 3, objective: 'dot', eta: 0.5 });
      tf.tidy(() => {
        const m0 = tf.tensor3d([[[0.5, -0.2, 0.1], [0.3, 0.4, -0.6], [-0.2, 0.1, 0.3]]]);
        const k1 = tf.tensor3d([[[0.6, 0.8, 0]]]);
        const v1 = tf.tensor3d([[[1, -2, 0.5]]]);
        const reps = (n: number): tf.Tensor3D => tf.tile(k1, [1, n, 1]) as tf.Tensor3D;
        const repv = (n: number): tf.Tensor3D => tf.tile(v1, [1, n, 1]) as tf.Tensor3D;
        const stats = (mem: MatrixMemory, n: number): [number, number] => {
          const p = mem.retrieve(n === 0 ? { memory: m0 } : mem.store({ memory: m0 }, reps(n), repv(n)), k1);
          const pn = p.norm().arraySync() as number;
          return [pn, (p.mul(v1).sum().arraySync() as number) / (pn * (v1.norm().arraySync() as number))];
        };
        const [n0, c0] = stats(cosMem, 0);
        const [n100, c100] = stats(cosMem, 100);
        const [n200, c200] = stats(cosMem, 200);
        expect(c0).to.be.lessThan(0); // starts pointing away from v
        expect(c100).to.be.greaterThan(0.99999);
        expect(c200).to.be.greaterThan(0.99999);
        expect(n200 / n100).to.be.closeTo(1, 1e-3); // plateau
        expect(n200).to.be.lessThan(5 * n0);
        const [h100] = stats(hebMem, 100);
        const [h200] = stats(hebMem, 200);
        expect(h200 / h100).to.be.greaterThan(1.9); // unbounded growth
      });
    });
  });

  describe('errors and leaks', () => {
    it('bad config names the field', () => {
      expect(() => new MatrixMemory({ keyDim: 0, valueDim: 2 })).to.throw(/MatrixMemory\.keyDim: must be a positive integer, got 0/);
      expect(() => new MatrixMemory({ keyDim: 2, valueDim: 1.5 })).to.throw(/MatrixMemory\.valueDim/);
      expect(() => new MatrixMemory({ keyDim: 2, valueDim: 2, eta: -1 })).to.throw(/MatrixMemory\.eta: must be a finite number >= 0/);
      expect(() => new MatrixMemory({ keyDim: 2, valueDim: 2, decay: 1 })).to.throw(/MatrixMemory\.decay: must be a number in \[0, 1\)/);
      expect(() => new MatrixMemory({ keyDim: 2, valueDim: 2, objective: 'huber' as never })).to.throw(/MatrixMemory\.objective: must be one of 'dot', 'l2', 'cosine'/);
    });

    it('accepts any InnerLoss object as a custom objective', () => {
      const custom = { ...l2Loss, name: 'my-l2' };
      const mem = new MatrixMemory({ keyDim: 2, valueDim: 2, objective: custom, eta: 1 });
      expect(mem.rule).to.equal('custom');
      const s = mem.store(mem.initialState(1), seq([[1, 0]]), seq([[2, 3]]));
      assertClose(s.memory, [[[2, 0], [3, 0]]]);
    });

    it('bad shapes name the argument', () => {
      const mem = new MatrixMemory({ keyDim: 3, valueDim: 2 });
      const s = mem.initialState(2);
      expect(() => mem.store(s, tf.zeros([2, 4, 2]), tf.zeros([2, 4, 2]))).to.throw(/MatrixMemory\.store: keys: must be \[B=2, N, keyDim=3\], got shape \[2,4,2\]/);
      expect(() => mem.store(s, tf.zeros([2, 4, 3]), tf.zeros([2, 3, 2]))).to.throw(/MatrixMemory\.store: values: must be \[B=2, N=4, valueDim=2\]/);
      expect(() => mem.retrieve(s, tf.zeros([1, 4, 3]))).to.throw(/MatrixMemory\.retrieve: queries/);
      expect(() => mem.retrieve({ memory: tf.zeros([2, 3, 3]) as tf.Tensor3D }, tf.zeros([2, 4, 3]))).to.throw(/MatrixMemory\.retrieve: state\.memory: shape \[2,3,3\]/);
      disposeState(s);
    });

    it('no tensors leak over many store/retrieve steps with carried state', async () => {
      for (const objective of ['dot', 'l2', 'cosine'] as const) {
        const mem = new MatrixMemory({ keyDim: 3, valueDim: 2, objective, eta: 0.2, decay: 0.1 });
        let state = { memory: tf.ones([2, 2, 3]) as tf.Tensor3D };
        const k = tf.ones([2, 3, 3]);
        const v = tf.ones([2, 3, 2]);
        await expectNoLeakedTensors(
          () => {
            const next = mem.store(state, k, v);
            disposeState(state);
            state = next;
            mem.retrieve(state, k).dispose();
          },
          { name: objective, iterations: 10 },
        );
        disposeState(state);
        tf.dispose([k, v]);
      }
    });
  });
});
