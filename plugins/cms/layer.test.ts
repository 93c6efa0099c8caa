import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../../core/testing';
import { NestedModel } from '../../core';
import { tokenSquaredError } from '../scheduler';
import { NestedTrainer, type PartialChunkPolicy } from '../scheduler';
import { NlContinuumMemorySystem, fastKey } from './layer';
import { flatBlock, fastBlock, makeCms, randBlock, randMat, rng, type CmsCase } from './testing/helpers';
import { referenceRun, type Mat, type RefBlock } from './testing/reference';

const D = 3;
const H = 4;
const TOL = { rtol: 2e-4, atol: 2e-5 };

function data(seed: number, b: number, t: number): { xs: Mat[]; ys: Mat[] } {
  const r = rng(seed);
  return { xs: Array.from({ length: b }, () => randMat(r, t, D, 1)), ys: Array.from({ length: b }, () => randMat(r, t, D, 1)) };
}

function trainerFor(cms: NlContinuumMemorySystem, opts: { policy?: PartialChunkPolicy; segmentLength?: number; onSegment?: (e: { end: number; fired: string[] }) => void } = {}): NestedTrainer {
  return new NestedTrainer(new NestedModel([cms]), {
    loss: tokenSquaredError,
    partialChunk: opts.policy ?? 'carry',
    segmentLength: opts.segmentLength,
    onSegment: opts.onSegment,
  });
}

/** memorize() the context in `pieces` (token counts), collecting outputs [B, T, D]. */
function memorizePieces(tr: NestedTrainer, xs: Mat[], ys: Mat[], pieces: number[]): number[][][] {
  const outs: number[][][] = xs.map(() => []);
  let at = 0;
  pieces.forEach((n, i) => {
    const x = tf.tensor3d(xs.map((s) => s.slice(at, at + n)));
    const y = tf.tensor3d(ys.map((s) => s.slice(at, at + n)));
    const r = tr.memorize(x, y, { newContext: i === 0, collect: true });
    (r.outputs!.arraySync() as number[][][]).forEach((o, b) => outs[b].push(...o));
    tf.dispose([x, y, r.outputs!, r.tokenLosses!]);
    at += n;
  });
  return outs;
}

const flushPoints = (pieces: number[]): number[] => pieces.map((_, i) => pieces.slice(0, i + 1).reduce((a, b) => a + b, 0));

describe('plugin cms: NlContinuumMemorySystem', () => {
  it('call() is the frozen MLP chain (sequential, residual, relu) of the reference', () => {
    const r = rng(1);
    const c: CmsCase = { levels: [{ period: 2, learningRate: 0.1 }, { period: 0, learningRate: 0 }], variant: 'sequential', activation: 'relu', residual: true, hidden: H };
    const init = [randBlock(r, D, H), randBlock(r, D, H)];
    const cms = makeCms(c, init, D);
    const { xs, ys } = data(2, 1, 5);
    const frozen = referenceRun({ ...c, levels: c.levels.map(() => ({ period: 0, learningRate: 0 })) }, init, xs[0], ys[0]);
    const y = cms.apply(tf.tensor3d(xs)) as tf.Tensor;
    assertClose(y, [frozen.outputs], { ...TOL, name: 'call' });
    tf.dispose(y);
  });

  it('closed form: 1-level linear CMS with SGD after N tokens equals the hand-computed sum of gradients', () => {
    // D = H = 1, no bias, no residual: y = w2 w1 x; l_t = 1/2 (y_t - u_t)^2.
    // dl/dw1 = (y - u) w2 x, dl/dw2 = (y - u) w1 x. Period 2, eta 0.1, N = 5 tokens (carry: token 5 pending).
    const c: CmsCase = { levels: [{ period: 2, learningRate: 0.1 }], variant: 'sequential', activation: 'linear', residual: false, hidden: 1, useBias: false };
    const init: RefBlock[] = [{ w1: [[0.5]], b1: [0], w2: [[2]], b2: [0] }];
    const cms = makeCms(c, init, 1);
    const xs = [1, -2, 0.5, 3, 1];
    const us = [2, 1, 0, -1, 0.5];
    let w1 = 0.5;
    let w2 = 2;
    const ysHand: number[] = [];
    let g1 = 0;
    let g2 = 0;
    xs.forEach((x, t) => {
      const y = w2 * w1 * x;
      ysHand.push(y);
      g1 += (y - us[t]) * w2 * x;
      g2 += (y - us[t]) * w1 * x;
      if ((t + 1) % 2 === 0) {
        w1 -= 0.1 * g1;
        w2 -= 0.1 * g2;
        g1 = g2 = 0;
      }
    });
    // chunk 1 by hand: y = 1, -2; g1 = (1-2)*2*1 + (-2-1)*2*(-2) = 10; g2 = (-1)(.5)(1) + (-3)(.5)(-2) = 2.5
    const tr = trainerFor(cms);
    const outs = memorizePieces(tr, [xs.map((v) => [v])], [us.map((v) => [v])], [5]);
    assertClose(outs[0].map((o) => o[0]), ysHand, { ...TOL, name: 'outputs' });
    const st = tr.memoryState(0)!;
    assertClose(st[fastKey(0, 'w1')], [[[w1]]], { ...TOL, name: 'w1' });
    assertClose(st[fastKey(0, 'w2')], [[[w2]]], { ...TOL, name: 'w2' });
    // first chunk by hand: w1 = 0.5 - 0.1*10 = -0.5, w2 = 2 - 0.1*2.5 = 1.75 -> token 3 output 1.75*-0.5*0.5
    assertClose(outs[0][2][0], 1.75 * -0.5 * 0.5, { ...TOL, name: 'token 3 sees the first update' });
    // pending chunk (token 5) is in the accumulator: g1 = (y5 - u5) w2 x5
    const y5 = ysHand[4];
    assertClose(st['acc/' + fastKey(0, 'w1')], [[[(y5 - 0.5) * w2 * 1]]], { ...TOL, name: 'pending accumulator' });
    expect(tr.levelClocks()[0]).to.include({ tokensSeen: 5, updatesFired: 2, tokensPending: 1 });
    tr.dispose();
  });

  it('eta = 0 equals the frozen MLP; outputs differ from a no-update run exactly from the first boundary on', () => {
    const r = rng(3);
    const init = [randBlock(r, D, H), randBlock(r, D, H)];
    const base: CmsCase = { levels: [{ period: 3, learningRate: 0 }, { period: 4, learningRate: 0 }], variant: 'sequential', activation: 'tanh', residual: true, hidden: H };
    const { xs, ys } = data(4, 2, 9);
    const frozenCms = makeCms(base, init, D);
    const frozenCall = frozenCms.apply(tf.tensor3d(xs)) as tf.Tensor;
    const tr0 = trainerFor(frozenCms);
    const out0 = memorizePieces(tr0, xs, ys, [9]);
    assertClose(out0, frozenCall, { ...TOL, name: 'eta=0 memorize vs call' });
    assertClose(tr0.memoryState(0)![fastKey(1, 'w2')], tf.stack([tf.tensor2d(init[1].w2), tf.tensor2d(init[1].w2)]), { name: 'eta=0 weights unchanged' });
    const learnCms = makeCms({ ...base, levels: [{ period: 3, learningRate: 0.2 }, { period: 4, learningRate: 0.2 }] }, init, D);
    const tr1 = trainerFor(learnCms);
    const out1 = memorizePieces(tr1, xs, ys, [9]);
    for (let b = 0; b < 2; b++) {
      for (let t = 0; t < 9; t++) {
        const diff = Math.max(...out1[b][t].map((v, d) => Math.abs(v - out0[b][t][d])));
        if (t < 3) expect(diff, `seq ${b} token ${t + 1} before the first boundary`).to.equal(0);
        else expect(diff, `seq ${b} token ${t + 1} after the first boundary`).to.be.greaterThan(1e-6);
      }
    }
    tf.dispose(frozenCall);
    tr0.dispose();
    tr1.dispose();
  });

  describe('cadence: level l changes exactly at multiples of C(l) and nowhere else', () => {
    const c: CmsCase = {
      levels: [{ period: 2, learningRate: 0.1 }, { period: 3, learningRate: 0.05 }, { period: 0, learningRate: 0.3 }, { period: 5, learningRate: 0.1 }],
      variant: 'sequential',
      activation: 'relu',
      residual: true,
      hidden: H,
    };
    const contexts: Array<{ pieces: number[] }> = [{ pieces: [7] }, { pieces: [4, 7] }, { pieces: [13] }];
    for (const policy of ['carry', 'flush'] as const) {
      it(`policy '${policy}', 3 contexts of odd lengths (7, 11 in pieces 4+7, 13), B = 2`, () => {
        const r = rng(5);
        const init = c.levels.map(() => randBlock(r, D, H));
        const cms = makeCms(c, init, D);
        const learning = [0, 1, 3];
        const snaps: RefBlock[][][] = []; // [n-1][b][l]
        let trainer: NestedTrainer | null = null;
        const firedLog: Array<{ end: number; fired: string[] }> = [];
        trainer = trainerFor(cms, {
          policy,
          segmentLength: 1,
          onSegment: (e) => {
            firedLog.push(e);
            const st = trainer!.memoryState(0)!;
            snaps.push([0, 1].map((b) => c.levels.map((_, l) => (learning.includes(l) ? fastBlock(st, l, b) : init[l]))));
          },
        });
        contexts.forEach(({ pieces }, ci) => {
          const total = pieces.reduce((a, b) => a + b, 0);
          const { xs, ys } = data(10 + ci, 2, total);
          snaps.length = 0;
          firedLog.length = 0;
          const outs = memorizePieces(trainer!, xs, ys, pieces);
          const flushAt = policy === 'flush' ? flushPoints(pieces) : [];
          for (let b = 0; b < 2; b++) {
            const ref = referenceRun(c, init, xs[b], ys[b], flushAt);
            assertClose(outs[b], ref.outputs, { ...TOL, name: `ctx ${ci} seq ${b} outputs` });
            for (let n = 1; n <= total; n++) {
              for (const l of learning) {
                const prev = n === 1 ? flatBlock(init[l]).map(Math.fround) : flatBlock(snaps[n - 2][b][l]);
                const now = flatBlock(snaps[n - 1][b][l]);
                const changed = now.some((v, i) => v !== prev[i]);
                const p = c.levels[l].period;
                // a flush at n applies a non-empty pending chunk (the last update was before n)
                const expected = n % p === 0 || flushAt.includes(n);
                expect(changed, `ctx ${ci} seq ${b} level ${l} (C=${p}) at token ${n}`).to.equal(expected);
                assertClose(now, flatBlock(ref.snapshots[n - 1][l]), { ...TOL, name: `ctx ${ci} seq ${b} level ${l} weights at token ${n}` });
              }
            }
          }
          // telemetry
          const clocks = trainer!.levelClocks();
          for (const l of learning) {
            const p = c.levels[l].period;
            const boundaries = Math.floor(total / p);
            const flushes = flushAt.filter((n) => n % p !== 0).length;
            const clock = clocks.find((k) => k.id.endsWith(`/level${l}`))!;
            expect(clock.tokensSeen).to.equal(total);
            expect(clock.updatesFired, `level ${l} updates`).to.equal(boundaries + flushes);
            expect(clock.tokensPending, `level ${l} pending`).to.equal(policy === 'flush' ? 0 : total % p);
            const events = firedLog.flatMap((e) => e.fired).filter((id) => id.endsWith(`/level${l}`)).length;
            expect(events, `level ${l} fired events`).to.equal(boundaries + flushes);
          }
          const frozen = clocks.find((k) => k.id.endsWith('/level2'))!;
          expect(frozen.updatesFired).to.equal(0);
        });
        // the frozen level's variables never change in context
        assertClose(cms.variable(2, 'w1').read(), [init[2].w1], { name: 'frozen level' });
        trainer.dispose();
      });
    }

    it('default segmentation (segments at the fastest period, boundaries of every level) equals 1-token segments', () => {
      const r = rng(6);
      const init = c.levels.map(() => randBlock(r, D, H));
      const { xs, ys } = data(20, 2, 13);
      const a = trainerFor(makeCms(c, init, D), { segmentLength: 1 });
      const bTr = trainerFor(makeCms(c, init, D));
      const oa = memorizePieces(a, xs, ys, [13]);
      const ob = memorizePieces(bTr, xs, ys, [5, 8]); // carry: pieces do not change anything
      assertClose(ob, oa, { ...TOL, name: 'outputs' });
      for (const l of [0, 1, 3]) assertClose(bTr.memoryState(0)![fastKey(l, 'w1')], a.memoryState(0)![fastKey(l, 'w1')], { ...TOL, name: `level ${l}` });
      a.dispose();
      bTr.dispose();
    });
  });

  it("'nested': hand-computed case (child reset to the slow level's updated initial state) matches the reference", () => {
    // level 0 (C=4) holds level 1's initial state; level 1 (C=2) learns and is reset at every multiple of 4.
    const r = rng(7);
    const c: CmsCase = { levels: [{ period: 4, learningRate: 0.2 }, { period: 2, learningRate: 0.1 }], variant: 'nested', activation: 'linear', residual: true, hidden: 2 };
    const init = [randBlock(r, D, 2), randBlock(r, D, 2)];
    const { xs, ys } = data(21, 2, 10);
    const tr = trainerFor(makeCms(c, init, D), { segmentLength: 1 });
    const outs = memorizePieces(tr, xs, ys, [10]);
    for (let b = 0; b < 2; b++) {
      const ref = referenceRun(c, init, xs[b], ys[b]);
      assertClose(outs[b], ref.outputs, { ...TOL, name: `seq ${b} outputs` });
      assertClose(flatBlock(fastBlock(tr.memoryState(0)!, 1, b)), flatBlock(ref.snapshots[9][1]), { ...TOL, name: `seq ${b} level 1` });
      // hand check at token 4: level 1 = its initial state - 0.2 * (sum of level 1's gradients over tokens 1..4)
      const sum4 = referenceRun({ ...c, levels: [{ period: 0, learningRate: 0 }, { period: 2, learningRate: 0.1 }], variant: 'sequential' }, init, xs[b].slice(0, 4), ys[b].slice(0, 4));
      const expect4 = flatBlock(init[1]).map((v, i) => v - 0.2 * flatBlock(sum4.seen[1])[i]);
      assertClose(flatBlock(ref.snapshots[3][1]), expect4, { rtol: 1e-9, atol: 1e-12, name: 'reference child reset at token 4' });
    }
    tr.dispose();
  });

  it("'independent': learned weighted sum of parallel blocks matches the reference (B = 2)", () => {
    const r = rng(8);
    const c: CmsCase = { levels: [{ period: 2, learningRate: 0.1 }, { period: 3, learningRate: 0.1 }], variant: 'independent', activation: 'tanh', residual: true, hidden: H, mix: [0.7, -0.4] };
    const init = [randBlock(r, D, H), randBlock(r, D, H)];
    const { xs, ys } = data(22, 2, 7);
    const tr = trainerFor(makeCms(c, init, D));
    const outs = memorizePieces(tr, xs, ys, [7]);
    for (let b = 0; b < 2; b++) {
      const ref = referenceRun(c, init, xs[b], ys[b]);
      assertClose(outs[b], ref.outputs, { ...TOL, name: `seq ${b} outputs` });
      for (const l of [0, 1]) assertClose(flatBlock(fastBlock(tr.memoryState(0)!, l, b)), flatBlock(ref.snapshots[6][l]), { ...TOL, name: `seq ${b} level ${l}` });
    }
    tr.dispose();
  });

  it('per-level inner transform: momentum {learningRate 1, beta 0.5} scaled by eta matches the reference', () => {
    const r = rng(9);
    const c: CmsCase = {
      levels: [{ period: 2, learningRate: 0.1, momentum: 0.5 }],
      variant: 'sequential',
      activation: 'relu',
      residual: true,
      hidden: H,
      transforms: [{ transform: 'momentum', config: { learningRate: 1, beta: 0.5 } }],
    };
    const init = [randBlock(r, D, H)];
    const { xs, ys } = data(23, 1, 7);
    const tr = trainerFor(makeCms(c, init, D));
    const outs = memorizePieces(tr, xs, ys, [7]);
    const ref = referenceRun(c, init, xs[0], ys[0]);
    const plain = referenceRun({ ...c, levels: [{ period: 2, learningRate: 0.1 }] }, init, xs[0], ys[0]);
    assertClose(outs[0], ref.outputs, { ...TOL, name: 'outputs' });
    expect(Math.abs(ref.outputs[6][0] - plain.outputs[6][0])).to.be.greaterThan(1e-4); // momentum matters here
    tr.dispose();
  });

  it('batch independence: B = 3 in one run equals three B = 1 runs', () => {
    const r = rng(10);
    const c: CmsCase = { levels: [{ period: 2, learningRate: 0.2 }, { period: 3, learningRate: 0.1 }], variant: 'sequential', activation: 'tanh', residual: true, hidden: H };
    const init = [randBlock(r, D, H), randBlock(r, D, H)];
    const { xs, ys } = data(24, 3, 8);
    const all = trainerFor(makeCms(c, init, D));
    const outAll = memorizePieces(all, xs, ys, [8]);
    for (let b = 0; b < 3; b++) {
      const one = trainerFor(makeCms(c, init, D));
      const o = memorizePieces(one, [xs[b]], [ys[b]], [8]);
      assertClose(outAll[b], o[0], { ...TOL, name: `seq ${b}` });
      assertClose(flatBlock(fastBlock(all.memoryState(0)!, 1, b)), flatBlock(fastBlock(one.memoryState(0)!, 1, 0)), { ...TOL, name: `seq ${b} level 1` });
      one.dispose();
    }
    all.dispose();
  });

  it('no leaked tensors over many segments (memorize, carry and flush)', async () => {
    const r = rng(11);
    const c: CmsCase = { levels: [{ period: 2, learningRate: 0.1 }, { period: 3, learningRate: 0.1, momentum: 0.9 }], variant: 'nested', activation: 'relu', residual: true, hidden: H, transforms: [undefined, { transform: 'momentum', config: { learningRate: 1, beta: 0.9 } }] };
    const init = [randBlock(r, D, H), randBlock(r, D, H)];
    const x = tf.randomNormal([2, 11, D], 0, 1, 'float32', 1);
    const y = tf.randomNormal([2, 11, D], 0, 1, 'float32', 2);
    for (const policy of ['carry', 'flush'] as const) {
      const tr = trainerFor(makeCms(c, init, D), { policy });
      await expectNoLeakedTensors(() => tr.memorize(x, y), { name: policy, iterations: 4 });
      tr.dispose();
    }
    tf.dispose([x, y]);
  });

  it('bad level config: errors name the field', () => {
    expect(() => new NlContinuumMemorySystem({ levels: [{ period: 2 }, { period: -1 }] })).to.throw('NlContinuumMemorySystem.levels[1].period');
    expect(() => new NlContinuumMemorySystem({ levels: [{ period: 1.5 }] })).to.throw('levels[0].period');
    expect(() => new NlContinuumMemorySystem({ levels: [{ period: 2 }], variant: 'stacked' as never })).to.throw("NlContinuumMemorySystem.variant: must be one of 'sequential'");
    expect(() => new NlContinuumMemorySystem({ levels: [{ period: 2, learningRate: -0.1 }] })).to.throw('levels[0].learningRate');
    expect(() => new NlContinuumMemorySystem({ levels: [{ period: 2, transform: { transform: 'nope' } }] })).to.throw('levels[0].transform.transform');
    expect(() => new NlContinuumMemorySystem({ levels: [] })).to.throw('NlContinuumMemorySystem.levels');
    expect(() => new NlContinuumMemorySystem({ levels: [{ period: 2, perod: 3 } as never] })).to.throw('levels[0].perod: unknown option');
  });

  it('getConfig round-trips through the constructor', () => {
    const a = new NlContinuumMemorySystem({ levels: [{ period: 4, learningRate: 0.5, transform: { transform: 'momentum', config: { learningRate: 1 } } }, { period: 0 }], variant: 'nested', activation: 'silu' });
    const cfg = a.getConfig();
    const b = new NlContinuumMemorySystem(cfg as never);
    expect(b.getConfig()).to.deep.equal(cfg);
    expect(JSON.parse(JSON.stringify(cfg))).to.deep.equal(cfg);
  });
});
