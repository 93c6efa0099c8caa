import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { dotLoss, l2Loss } from '../../../core/inner-loss';
import { assertClose } from '../../../core/testing';
import { innerGradients, readMemory } from './memory';
import { chunkedSegment, naiveSegment, type GroupWeights, type RecurrenceOptions, type SegmentWrites } from './recurrence';

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
});
