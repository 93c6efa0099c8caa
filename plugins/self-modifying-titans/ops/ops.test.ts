import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { dotLoss, l2Loss } from '../../../core/inner-loss';
import { assertClose } from '../../../core/testing';
import { innerGradients, readMemory } from './memory';
import {
  batchedToWide,
  chunkedSegment,
  chunkedSharedEnd,
  chunkedSharedRetrieval,
  sharedCoefficients,
  naiveSegment,
  wideToBatched,
  type GroupWeights,
  type RecurrenceOptions,
  type SegmentWrites,
} from './recurrence';

const N = 3;
const DH = 4;
const DHID = 5;

function rnd(shape: number[], seed: number, scale = 0.5): tf.Tensor {
  return tf.randomNormal(shape, 0, scale, 'float32', seed);
}

function l2n(a: tf.Tensor): tf.Tensor {
  return a.div(a.norm('euclidean', -1, true));
}

function makeState(mom: boolean, seed = 1): GroupWeights {
  const s: GroupWeights = { w1: rnd([N, DH, DHID], seed) as tf.Tensor3D, w2: rnd([N, DHID, DH], seed + 1) as tf.Tensor3D };
  if (mom) {
    s.m1 = rnd([N, DH, DHID], seed + 2, 0.1) as tf.Tensor3D;
    s.m2 = rnd([N, DHID, DH], seed + 3, 0.1) as tf.Tensor3D;
  }
  return s;
}

function makeWrites(l: number, seed = 10, withQ = true): SegmentWrites {
  const w: SegmentWrites = {
    k: l2n(rnd([N, l, DH], seed)) as tf.Tensor3D,
    h: rnd([N, l, DHID], seed + 1) as tf.Tensor3D,
    y2: rnd([N, l, DHID], seed + 2, 0.2) as tf.Tensor3D,
    y1: rnd([N, l, DH], seed + 3, 0.2) as tf.Tensor3D,
    eta: tf.sigmoid(rnd([N, l], seed + 4, 1)).mul(0.5) as tf.Tensor2D,
    logAlpha: tf.log(tf.sigmoid(rnd([N, l], seed + 5, 1).add(3))) as tf.Tensor2D,
  };
  if (withQ) w.q = l2n(rnd([N, l, DH], seed + 6)) as tf.Tensor3D;
  return w;
}

describe('self-modifying-titans ops', () => {
  describe('analytic inner gradients', () => {
    for (const loss of [l2Loss, dotLoss]) {
      for (const act of ['silu', 'tanh'] as const) {
        it(`match autodiff (${loss.name}, ${act})`, () => {
          tf.tidy(() => {
            const w1 = rnd([N, DH, DHID], 1) as tf.Tensor3D;
            const w2 = rnd([N, DHID, DH], 2) as tf.Tensor3D;
            const k = rnd([N, 6, DH], 3) as tf.Tensor3D;
            const vhat = rnd([N, 6, DH], 4) as tf.Tensor3D;
            const g = innerGradients(act, loss, w1, w2, k, vhat, null);
            // autodiff of the summed per-token loss; per-token rank-1 grads summed over tokens
            const [gw1, gw2] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
              loss.value(readMemory(act, a as tf.Tensor3D, b as tf.Tensor3D, k).out, vhat).sum(),
            )([w1, w2]);
            assertClose(tf.matMul(g.e, g.h, true, false), gw1, { rtol: 1e-4, atol: 1e-5, name: 'dW1' });
            assertClose(tf.matMul(g.u, k, true, false), gw2, { rtol: 1e-4, atol: 1e-5, name: 'dW2' });
          });
        });
      }
    }
    it('clips each token gradient norm to `clip`', () => {
      tf.tidy(() => {
        const w1 = rnd([N, DH, DHID], 1, 2) as tf.Tensor3D;
        const w2 = rnd([N, DHID, DH], 2, 2) as tf.Tensor3D;
        const k = rnd([N, 6, DH], 3, 2) as tf.Tensor3D;
        const vhat = rnd([N, 6, DH], 4, 2) as tf.Tensor3D;
        const raw = innerGradients('silu', l2Loss, w1, w2, k, vhat, null);
        const c = innerGradients('silu', l2Loss, w1, w2, k, vhat, 0.5);
        const sq = (a: tf.Tensor): tf.Tensor => a.square().sum(-1);
        const normOf = (g: typeof raw): Float32Array =>
          tf.sqrt(sq(g.e).mul(sq(g.h)).add(sq(g.u).mul(sq(k)))).dataSync() as Float32Array;
        const rn = normOf(raw);
        const cn = normOf(c);
        expect(Math.max(...rn)).to.be.greaterThan(0.5); // the case exercises clipping
        for (let i = 0; i < rn.length; i++) expect(cn[i]).to.be.closeTo(Math.min(rn[i], 0.5), 1e-4);
      });
    });
  });

  describe('segment recurrence: chunked == naive', () => {
    const cases: Array<[string, RecurrenceOptions]> = [
      ['dgd + momentum', { act: 'silu', momentum: 0.9, dgd: true }],
      ['dgd, no momentum', { act: 'silu', momentum: null, dgd: true }],
      ['plain GD + momentum', { act: 'tanh', momentum: 0.5, dgd: false }],
      ['plain GD, no momentum', { act: 'silu', momentum: null, dgd: false }],
    ];
    for (const [name, opts] of cases) {
      for (const l of [1, 7, 16]) {
        it(`${name}, L=${l}`, () => {
          tf.tidy(() => {
            const s0 = makeState(opts.momentum !== null);
            const wr = makeWrites(l);
            const a = naiveSegment(s0, wr, opts);
            const b = chunkedSegment(s0, wr, opts);
            const tol = { rtol: 1e-4, atol: 1e-5 };
            assertClose(b.o as tf.Tensor, a.o as tf.Tensor, { ...tol, name: 'o' });
            assertClose(b.state.w1, a.state.w1, { ...tol, name: 'w1' });
            assertClose(b.state.w2, a.state.w2, { ...tol, name: 'w2' });
            if (opts.momentum !== null) {
              assertClose(b.state.m1 as tf.Tensor, a.state.m1 as tf.Tensor, { ...tol, name: 'm1' });
              assertClose(b.state.m2 as tf.Tensor, a.state.m2 as tf.Tensor, { ...tol, name: 'm2' });
            }
          });
        });
      }
    }
  });
  describe('shared-key segment end state (chunkedSharedEnd) == naive on the tiled writes', () => {
    const NM = 3; // memories per n; N = 3 n's -> N1 = 9 rows, memory-minor
    const cases: Array<[string, RecurrenceOptions]> = [
      ['dgd + momentum', { act: 'silu', momentum: 0.9, dgd: true }],
      ['dgd, no momentum', { act: 'silu', momentum: null, dgd: true }],
      ['plain GD + momentum', { act: 'tanh', momentum: 0.5, dgd: false }],
      ['plain GD, no momentum', { act: 'silu', momentum: null, dgd: false }],
    ];
    // [N, ...] -> [N NM, ...]: every memory of n gets n's row (memory-minor)
    const tile = (a: tf.Tensor): tf.Tensor => {
      const [n, ...rest] = a.shape;
      return a.expandDims(1).tile([1, NM, ...rest.map(() => 1)]).reshape([n * NM, ...rest]);
    };
    const stateN1 = (mom: boolean): GroupWeights => {
      const r = (shape: number[], seed: number, sc: number): tf.Tensor3D => rnd([N * NM, ...shape], seed, sc) as tf.Tensor3D;
      const s: GroupWeights = { w1: r([DH, DHID], 21, 0.5), w2: r([DHID, DH], 22, 0.5) };
      if (mom) {
        s.m1 = r([DH, DHID], 23, 0.1);
        s.m2 = r([DHID, DH], 24, 0.1);
      }
      return s;
    };
    for (const [name, opts] of cases) {
      for (const l of [1, 7, 16]) {
        it(`${name}, L=${l}`, () => {
          tf.tidy(() => {
            const s0 = stateN1(opts.momentum !== null);
            const shared = makeWrites(l, 30, false); // k, eta, logAlpha per n; h, y1, y2 re-drawn per memory below
            const perMem = {
              h: rnd([N * NM, l, DHID], 41) as tf.Tensor3D,
              y2: rnd([N * NM, l, DHID], 42, 0.2) as tf.Tensor3D,
              y1: rnd([N * NM, l, DH], 43, 0.2) as tf.Tensor3D,
            };
            const ref = naiveSegment(
              s0,
              { k: tile(shared.k) as tf.Tensor3D, eta: tile(shared.eta) as tf.Tensor2D, logAlpha: tile(shared.logAlpha) as tf.Tensor2D, ...perMem },
              opts,
            ).state;
            const got = chunkedSharedEnd(s0, { k: shared.k, eta: shared.eta, logAlpha: shared.logAlpha, ...perMem }, NM, opts);
            const tol = { rtol: 1e-4, atol: 1e-5 };
            assertClose(got.w1, ref.w1, { ...tol, name: 'w1' });
            assertClose(got.w2, ref.w2, { ...tol, name: 'w2' });
            if (opts.momentum !== null) {
              assertClose(got.m1 as tf.Tensor, ref.m1 as tf.Tensor, { ...tol, name: 'm1' });
              assertClose(got.m2 as tf.Tensor, ref.m2 as tf.Tensor, { ...tol, name: 'm2' });
            }
            // the end state moved away from the start (the comparison is not vacuous)
            expect(tf.sub(ref.w2, s0.w2).abs().max().dataSync()[0]).to.be.greaterThan(1e-3);
          });
        });
      }
    }
    it('gradients w.r.t. every input == naive (dgd + momentum, L=7)', () => {
      tf.tidy(() => {
        const opts: RecurrenceOptions = { act: 'silu', momentum: 0.7, dgd: true };
        const s0 = stateN1(true);
        const sh = makeWrites(7, 50, false);
        const hh = rnd([N * NM, 7, DHID], 51) as tf.Tensor3D;
        const yy2 = rnd([N * NM, 7, DHID], 52, 0.2) as tf.Tensor3D;
        const yy1 = rnd([N * NM, 7, DH], 53, 0.2) as tf.Tensor3D;
        const xs = [s0.w1, s0.w2, s0.m1 as tf.Tensor, s0.m2 as tf.Tensor, sh.k, sh.eta, sh.logAlpha, hh, yy2, yy1];
        const probe = xs.slice(0, 4).map((a, i) => rnd(a.shape, 60 + i, 1));
        const loss = (st: GroupWeights): tf.Scalar =>
          tf.addN([st.w1, st.w2, st.m1 as tf.Tensor, st.m2 as tf.Tensor].map((a, i) => a.mul(probe[i]).sum())) as tf.Scalar;
        const unpack = (a: tf.Tensor[]): [GroupWeights, tf.Tensor3D, tf.Tensor2D, tf.Tensor2D, tf.Tensor3D, tf.Tensor3D, tf.Tensor3D] => [
          { w1: a[0] as tf.Tensor3D, w2: a[1] as tf.Tensor3D, m1: a[2] as tf.Tensor3D, m2: a[3] as tf.Tensor3D },
          a[4] as tf.Tensor3D, a[5] as tf.Tensor2D, a[6] as tf.Tensor2D, a[7] as tf.Tensor3D, a[8] as tf.Tensor3D, a[9] as tf.Tensor3D,
        ];
        const gRef = tf.grads((...a: tf.Tensor[]) => {
          const [st, k, eta, la, h, y2, y1] = unpack(a);
          return loss(naiveSegment(st, { k: tile(k) as tf.Tensor3D, eta: tile(eta) as tf.Tensor2D, logAlpha: tile(la) as tf.Tensor2D, h, y2, y1 }, opts).state);
        })(xs);
        const gGot = tf.grads((...a: tf.Tensor[]) => {
          const [st, k, eta, la, h, y2, y1] = unpack(a);
          return loss(chunkedSharedEnd(st, { k, eta, logAlpha: la, h, y2, y1 }, NM, opts));
        })(xs);
        const names = ['w1', 'w2', 'm1', 'm2', 'k', 'eta', 'logAlpha', 'h', 'y2', 'y1'];
        gRef.forEach((g, i) => assertClose(gGot[i], g, { rtol: 1e-3, atol: 1e-4, name: `d${names[i]}` }));
      });
    });
    it('wideToBatched and batchedToWide are inverse layouts', () => {
      tf.tidy(() => {
        const a = rnd([N * NM, 5, 2], 70); // [N1, R, X]
        const w = batchedToWide(a, NM); // [N, R, NM X]
        expect(w.shape).to.deep.equal([N, 5, NM * 2]);
        // entry [n, r, j X + x] of the wide stack is memory j of n
        const av = a.arraySync() as number[][][];
        const wv = w.arraySync() as number[][][];
        expect(wv[1][3][2 * 2 + 1]).to.equal(av[1 * NM + 2][3][1]);
        assertClose(wideToBatched(w, NM), a, { rtol: 0, atol: 0, name: 'round trip' });
      });
    });
  });
  describe('retrieval with shared coefficients (chunkedSharedRetrieval) == naive', () => {
    const cases: Array<[string, RecurrenceOptions]> = [
      ['dgd + momentum', { act: 'silu', momentum: 0.9, dgd: true }],
      ['dgd, no momentum', { act: 'tanh', momentum: null, dgd: true }],
      ['plain GD + momentum', { act: 'silu', momentum: 0.5, dgd: false }],
      ['plain GD, no momentum', { act: 'silu', momentum: null, dgd: false }],
    ];
    for (const [name, opts] of cases) {
      for (const l of [1, 7, 16]) {
        it(`${name}, L=${l}`, () => {
          tf.tidy(() => {
            const s0 = makeState(opts.momentum !== null, 80);
            const wr = makeWrites(l, 90);
            const ref = naiveSegment(s0, wr, opts).o as tf.Tensor;
            const coef = sharedCoefficients(wr.k, wr.eta, wr.logAlpha, opts, true);
            assertClose(chunkedSharedRetrieval(s0, wr, coef, opts), ref, { rtol: 1e-4, atol: 1e-5, name: 'o' });
            // the same coefficients give the end state too
            const st = chunkedSharedEnd(s0, wr, 1, opts, coef);
            assertClose(st.w2, naiveSegment(s0, wr, opts).state.w2, { rtol: 1e-4, atol: 1e-5, name: 'w2' });
          });
        });
      }
    }
  });
});
