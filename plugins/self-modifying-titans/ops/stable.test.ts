import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { selfModifyingTitansForward, type SmtOptions, type SmtState } from './forward';
import { chunkedDelta, naiveDelta, stableSegment, type DeltaInputs } from './stable';
import { close, compareStates, gradsOf, stableTestOptions, testWeights, testX as x, TEST_D } from './test-helpers';

const l2 = (a: tf.Tensor): tf.Tensor => a.div(a.norm('euclidean', -1, true));

describe("self-modifying-titans, parameterization 'stable'", () => {
  describe('rank-1 recurrence: chunkedDelta == naiveDelta (end state, reads, gradients)', () => {
    for (const exact of [true, false]) {
      for (const l of [1, 5, 16]) {
        it(`exact=${exact}, L=${l}`, () => {
          tf.tidy(() => {
            const n = 3;
            const g = (s: number[], seed: number): tf.Tensor => tf.randomNormal(s, 0, 1, 'float32', seed);
            const inp = (): DeltaInputs => ({
              w0: g([n, 4, 5], 1) as tf.Tensor3D,
              x: l2(g([n, l, 5], 2)) as tf.Tensor3D,
              r: g([n, l, 4], 3) as tf.Tensor3D,
              b: tf.sigmoid(g([n, l], 4)).mul(1.5) as tf.Tensor2D,
              logAlpha: tf.log(tf.sigmoid(g([n, l], 5).add(2))) as tf.Tensor2D,
              q: g([n, l, 5], 6) as tf.Tensor3D,
              exact,
            });
            const a = naiveDelta(inp());
            const b = chunkedDelta(inp());
            close(b.w, a.w, 'w');
            close(b.read as tf.Tensor, a.read as tf.Tensor, 'read');
            const f = (fn: typeof naiveDelta) => (w0: tf.Tensor, xx: tf.Tensor, r: tf.Tensor, bb: tf.Tensor, la: tf.Tensor, q: tf.Tensor): tf.Tensor => {
              const o = fn({ w0: w0 as tf.Tensor3D, x: xx as tf.Tensor3D, r: r as tf.Tensor3D, b: bb as tf.Tensor2D, logAlpha: la as tf.Tensor2D, q: q as tf.Tensor3D, exact });
              return o.w.sum().add((o.read as tf.Tensor).mul(g([n, l, 4], 7)).sum());
            };
            const i0 = inp();
            const args = [i0.w0, i0.x, i0.r, i0.b, i0.logAlpha, i0.q as tf.Tensor];
            const ga = tf.grads(f(naiveDelta))(args);
            const gb = tf.grads(f(chunkedDelta))(args);
            ['w0', 'x', 'r', 'b', 'logAlpha', 'q'].forEach((nm, i) => close(gb[i], ga[i], `d/d${nm}`));
          });
        });
      }
    }
  });

  describe('one write into a fresh memory (beta = 1, no decay)', () => {
    // fresh memory: W1 = 0 (the stable initialisation), W2 random; key k, value v (unit vectors)
    const setup = () => {
      const n = 2;
      const dh = 3;
      const dz = 4;
      const w1 = tf.zeros([n, dh, dz]) as tf.Tensor3D;
      const w2 = tf.randomNormal([n, dz, dh], 0, 1, 'float32', 5) as tf.Tensor3D;
      const k = l2(tf.randomNormal([n, 1, dh], 0, 1, 'float32', 6)) as tf.Tensor3D;
      const v = l2(tf.randomNormal([n, 1, dh], 0, 1, 'float32', 7)) as tf.Tensor3D;
      return { n, w1, w2, k, v };
    };
    for (const impl of ['naive', 'chunked'] as const) {
      it(`returns the written value at that key exactly (${impl})`, () => {
        tf.tidy(() => {
          const { n, w1, w2, k, v } = setup();
          const o = stableTestOptions({ impl, gradClip: null });
          const ones = tf.ones([n, 1]) as tf.Tensor2D;
          const s = stableSegment(o, w1, w2, w1, w2, k, v, ones, ones, tf.zeros([n, 1]) as tf.Tensor2D, k);
          // the read after the write (o_t at q = k) and a fresh read of the new state both return v
          close(s.o as tf.Tensor, v, 'read at k after the write');
          const z = tf.matMul(k, s.w2, false, true);
          const p = z.mul(tf.sigmoid(z));
          const read = k.add(tf.matMul(l2(p) as tf.Tensor3D, s.w1, false, true));
          close(read, v, 'M(k) with the new state');
          // before the write the memory returned k (identity), far from v
          expect(k.sub(v).abs().max().dataSync()[0]).to.be.greaterThan(0.1);
        });
      });
    }
    it('a repeated key inside one chunk does not overshoot: the last value wins exactly', () => {
      tf.tidy(() => {
        const { n, w1, w2, k } = setup();
        const v1 = l2(tf.randomNormal([n, 1, 3], 0, 1, 'float32', 8));
        const v2 = l2(tf.randomNormal([n, 1, 3], 0, 1, 'float32', 9));
        const o = stableTestOptions({ gradClip: null });
        const kk = tf.concat([k, k], 1) as tf.Tensor3D;
        const ones = tf.ones([n, 2]) as tf.Tensor2D;
        // slow matrices frozen (b2 = 0) so the key's hidden feature is the same for both writes
        const s = stableSegment(o, w1, w2, w1, w2, kk, tf.concat([v1, v2], 1) as tf.Tensor3D, ones, tf.zeros([n, 2]) as tf.Tensor2D, tf.zeros([n, 2]) as tf.Tensor2D, kk);
        close((s.o as tf.Tensor).slice([0, 1, 0], [n, 1, 3]), v2, 'read after the second write');
        close((s.o as tf.Tensor).slice([0, 0, 0], [n, 1, 3]), v1, 'read after the first write');
      });
    });
  });

  describe('chunked == naive (outputs, every state entry)', () => {
    for (const t of [1, 7, 63, 64, 130]) {
      for (const c of [8, 16, 32]) {
        it(`T=${t}, chunkSize=${c}, memChunkSize=${c === 8 ? 16 : 8}`, () => {
          tf.tidy(() => {
            const o = stableTestOptions({ chunkSize: c, memChunkSize: c === 8 ? 16 : 8 });
            const w = testWeights(o);
            const xx = x(2, t);
            const a = selfModifyingTitansForward({ ...o, impl: 'naive' }, w, xx, null);
            const b = selfModifyingTitansForward(o, w, xx, null);
            const tol = t > 64 ? 1e-3 : 1e-4;
            close(b.y, a.y, 'y', tol);
            compareStates(b.state, a.state, 'state', tol);
          });
        });
      }
    }
  });

  describe('gradients: chunked == naive (w.r.t. x and every weight)', () => {
    const grid: Array<[number, number, Partial<SmtOptions>, string]> = [
      [1, 8, {}, ''],
      [7, 8, {}, ''],
      [63, 8, {}, ''],
      [64, 16, {}, ''],
      [130, 8, {}, ''],
      [21, 8, { dgd: false }, ', dgd off'],
      [21, 8, { staticK: true, staticV: true, act: 'tanh' }, ', static k/v, tanh'],
      [21, 8, { adaptiveQ: true, weightDecay: false }, ', adaptive q, no decay'],
      [21, 4, { gradientMode: 'stop' }, ", gradientMode 'stop'"],
    ];
    for (const [t, c, over, label] of grid) {
      it(`T=${t}, chunkSize=${c}, memChunkSize=${2 * c}${label}`, () => {
        tf.tidy(() => {
          const o = stableTestOptions({ chunkSize: c, memChunkSize: 2 * c, ...over });
          const w = testWeights(o);
          const xx = x(2, t);
          const r = tf.randomNormal([2, t, TEST_D], 0, 1, 'float32', 9);
          const ga = gradsOf({ ...o, impl: 'naive' }, w, xx, r);
          const gb = gradsOf(o, w, xx, r);
          ['x', ...Object.keys(w)].forEach((n, i) => close(gb[i], ga[i], `d/d${n}`, t > 64 ? 1e-3 : 1e-4));
          // 'stop': the phase-1 memories, rates and k/v projections act only through writes, so only 'full' gets gradients everywhere
          if (o.gradientMode === 'full') for (const [i, n] of ['x', ...Object.keys(w)].entries()) {
            expect(gb[i].abs().max().dataSync()[0], `d/d${n} nonzero`).to.be.greaterThan(0);
          }
        });
      });
    }
  });

  describe('merged phases (chunkSize == memChunkSize) == two phases', () => {
    for (const [t, over] of [[21, {}], [37, { adaptiveQ: true, dgd: false }]] as Array<[number, Partial<SmtOptions>]>) {
      it(`outputs, state, gradients, T=${t} ${JSON.stringify(over)}`, () => {
        tf.tidy(() => {
          const o = stableTestOptions({ chunkSize: 8, memChunkSize: 8, ...over });
          const w = testWeights(o);
          const xx = x(2, t);
          const r = tf.randomNormal([2, t, TEST_D], 0, 1, 'float32', 9);
          const a = selfModifyingTitansForward({ ...o, mergePhases: false }, w, xx, null);
          const b = selfModifyingTitansForward(o, w, xx, null);
          close(b.y, a.y, 'y');
          compareStates(b.state, a.state, 'state');
          const ga = gradsOf({ ...o, mergePhases: false }, w, xx, r);
          const gb = gradsOf(o, w, xx, r);
          ['x', ...Object.keys(w)].forEach((n, i) => close(gb[i], ga[i], `d/d${n}`));
        });
      });
    }
  });

  describe('streaming', () => {
    for (const [c, mc] of [[4, 3], [4, 4]]) it(`one call == split calls (mid-chunk splits) == token by token (chunk ${c}, memChunk ${mc}${c === mc ? ': merged phases' : ''})`, () => {
      tf.tidy(() => {
        const o = stableTestOptions({ chunkSize: c, memChunkSize: mc });
        const w = testWeights(o);
        const xx = x(2, 13);
        const one = selfModifyingTitansForward(o, w, xx, null);
        const a = selfModifyingTitansForward(o, w, xx.slice([0, 0, 0], [2, 5, TEST_D]), null);
        const b = selfModifyingTitansForward(o, w, xx.slice([0, 5, 0], [2, 8, TEST_D]), a.state);
        close(tf.concat([a.y, b.y], 1), one.y, 'split y');
        compareStates(b.state, one.state, 'split state');
        let st: SmtState | null = null;
        const ys: tf.Tensor[] = [];
        for (let i = 0; i < 13; i++) {
          const r = selfModifyingTitansForward({ ...o, impl: 'naive' }, w, xx.slice([0, i, 0], [2, 1, TEST_D]), st);
          ys.push(r.y);
          st = r.state;
        }
        close(tf.concat(ys, 1), one.y, 'token-by-token y');
        compareStates(st as SmtState, one.state, 'token-by-token state');
      });
    });

    it('checkpoint on == off (outputs, state, gradients)', () => {
      tf.tidy(() => {
        const o = stableTestOptions({ chunkSize: 8, memChunkSize: 4 });
        const w = testWeights(o);
        const xx = x(2, 21);
        const r = tf.randomNormal([2, 21, TEST_D], 0, 1, 'float32', 9);
        const a = selfModifyingTitansForward({ ...o, checkpoint: false }, w, xx, null);
        const b = selfModifyingTitansForward(o, w, xx, null);
        close(b.y, a.y, 'y');
        compareStates(b.state, a.state, 'state');
        const ga = gradsOf({ ...o, checkpoint: false }, w, xx, r);
        const gb = gradsOf(o, w, xx, r);
        ['x', ...Object.keys(w)].forEach((n, i) => close(gb[i], ga[i], `d/d${n}`));
      });
    });
  });

  describe('boundedness', () => {
    it('memory norms stay bounded on a long repeated stream (every W1 row is a non-expansion plus a bounded write)', () => {
      tf.tidy(() => {
        const o = stableTestOptions({ chunkSize: 16, memChunkSize: 16, etaMax: 1.9, weightDecay: false });
        const w = testWeights(o);
        const period = x(1, 2, 11);
        const norms = (s: SmtState): number => s.memW1.norm().dataSync()[0];
        let st: SmtState | null = null;
        const seen: number[] = [];
        for (let i = 0; i < 8; i++) {
          const r = selfModifyingTitansForward(o, w, tf.tile(period, [1, 32, 1]), st);
          st = r.state;
          seen.push(norms(st));
          expect(Number.isFinite(r.y.abs().max().dataSync()[0])).to.equal(true);
        }
        // |W1 h| <= 2 per written direction: the norm after 512 tokens is not larger than 2x the norm after 64
        expect(seen[7]).to.be.at.most(2 * seen[0] + 1e-6);
      });
    });
  });

  describe('gradient modes', () => {
    it("'stop': y_t does not depend on earlier tokens through writes; 'full': it does", () => {
      tf.tidy(() => {
        const t = 6;
        for (const mode of ['stop', 'full'] as const) {
          const o = stableTestOptions({ gradientMode: mode, chunkSize: 2, memChunkSize: 2 });
          const w = testWeights(o);
          const xx = x(1, t);
          const g = tf.grad((a: tf.Tensor) => selfModifyingTitansForward(o, w, a, null).y.slice([0, t - 1, 0], [1, 1, TEST_D]).sum())(xx);
          const earlier = g.slice([0, 0, 0], [1, t - 1, TEST_D]).abs().max().dataSync()[0];
          if (mode === 'stop') expect(earlier).to.equal(0);
          else expect(earlier).to.be.greaterThan(1e-5);
        }
      });
    });
  });
});
