import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { dotLoss, l2Loss } from '../../../core/inner-loss';
import { innerGradients } from './memory';
import { chunkedSegment, naiveSegment } from './recurrence';
import { disposeState } from '../../../core/memory-state';
import { assertClose } from '../../../core/testing';
import { selfModifyingTitansForward, segmentLengths, type SmtOptions, type SmtState, type SmtWeights } from './forward';
import { close, compareStates, gradsOf, TEST_D, testOptions, testWeights, testX as x } from './test-helpers';


describe('self-modifying-titans forward', () => {
  it('segmentLengths follows the stream clock', () => {
    expect(segmentLengths(10, 4, 0)).to.deep.equal([4, 4, 2]);
    expect(segmentLengths(10, 4, 3)).to.deep.equal([1, 4, 4, 1]);
    expect(segmentLengths(2, 4, 1)).to.deep.equal([2]);
  });

  describe('chunked == naive (outputs and final state)', () => {
    for (const t of [1, 7, 63, 64, 130]) {
      for (const c of [8, 16, 32]) {
        it(`T=${t}, chunkSize=${c}, memChunkSize=${c === 8 ? 16 : 8}`, () => {
          tf.tidy(() => {
            const over: Partial<SmtOptions> = { chunkSize: c, memChunkSize: c === 8 ? 16 : 8 };
            const o = testOptions(over);
            const w = testWeights(o);
            const xx = x(2, t);
            const a = selfModifyingTitansForward({ ...o, impl: 'naive' }, w, xx, null);
            const b = selfModifyingTitansForward(o, w, xx, null);
            close(b.y, a.y, 'y');
            compareStates(b.state, a.state, 'state');
          });
        });
      }
    }
  });

  describe('gradients: chunked == naive (w.r.t. x and every weight)', () => {
    // reduced grid (wasm time): every T with C = 8 / memC = 16, plus C = 16 and 32 at T = 63
    const grid: Array<[number, number]> = [[1, 8], [7, 8], [63, 8], [64, 8], [130, 8], [63, 16], [63, 32]];
    for (const [t, c] of grid) {
      it(`T=${t}, chunkSize=${c}`, () => {
        tf.tidy(() => {
          const o = testOptions({ chunkSize: c, memChunkSize: 2 * c });
          const w = testWeights(o);
          const names = Object.keys(w) as Array<keyof SmtWeights>;
          const xx = x(2, t);
          const r = tf.randomNormal([2, t, TEST_D], 0, 1, 'float32', 9);
          const gradsOf = (impl: 'naive' | 'chunked'): tf.Tensor[] =>
            tf.grads((...args: tf.Tensor[]) => {
              const ww = { ...w } as Record<string, tf.Tensor>;
              names.forEach((n, i) => (ww[n] = args[i + 1]));
              return selfModifyingTitansForward({ ...o, impl }, ww as unknown as SmtWeights, args[0], null).y.mul(r).sum();
            })([xx, ...names.map((n) => w[n] as tf.Tensor)]);
          const ga = gradsOf('naive');
          const gb = gradsOf('chunked');
          ['x', ...names].forEach((n, i) => close(gb[i], ga[i], `d/d${n}`));
        });
      });
    }
  });

  describe('merged phases (chunkSize == memChunkSize: M_mem joins the phase-1 group): chunked == naive', () => {
    for (const t of [1, 7, 63, 130]) {
      for (const c of [8, 16]) {
        it(`outputs and state, T=${t}, chunkSize = memChunkSize = ${c}`, () => {
          tf.tidy(() => {
            const o = testOptions({ chunkSize: c, memChunkSize: c });
            const w = testWeights(o);
            const xx = x(2, t);
            const a = selfModifyingTitansForward({ ...o, impl: 'naive' }, w, xx, null);
            const b = selfModifyingTitansForward(o, w, xx, null);
            close(b.y, a.y, 'y');
            compareStates(b.state, a.state, 'state');
          });
        });
      }
    }
    const variants: Array<[string, Partial<SmtOptions>]> = [
      ['default', {}],
      ['no dgd', { dgd: false }],
      ['no momentum', { momentum: null }],
      ['no weight decay, dot loss', { weightDecay: false, innerLoss: dotLoss }],
      ['static k and v, tanh', { staticK: true, staticV: true, act: 'tanh' }],
      ['adaptive q, normalize none', { adaptiveQ: true, normalize: 'none', etaMax: 0.05 }],
      ["gradientMode 'stop'", { gradientMode: 'stop' }],
    ];
    for (const [name, over] of variants) {
      it(`gradients w.r.t. x and every weight, T=21, C=8: ${name}`, () => {
        tf.tidy(() => {
          const o = testOptions({ chunkSize: 8, memChunkSize: 8, ...over });
          const w = testWeights(o);
          const xx = x(2, 21);
          const r = tf.randomNormal([2, 21, TEST_D], 0, 1, 'float32', 9);
          const ya = selfModifyingTitansForward({ ...o, impl: 'naive' }, w, xx, null);
          const yb = selfModifyingTitansForward(o, w, xx, null);
          close(yb.y, ya.y, 'y');
          compareStates(yb.state, ya.state, 'state');
          const ga = gradsOf({ ...o, impl: 'naive' }, w, xx, r);
          const gb = gradsOf(o, w, xx, r);
          ['x', ...Object.keys(w)].forEach((n, i) => close(gb[i], ga[i], `d/d${n}`));
          expect(gb[0].abs().max().dataSync()[0]).to.be.greaterThan(0);
        });
      });
    }
    it('gradients, T=130, chunkSize = memChunkSize = 16', () => {
      tf.tidy(() => {
        const o = testOptions({ chunkSize: 16, memChunkSize: 16 });
        const w = testWeights(o);
        const xx = x(2, 130);
        const r = tf.randomNormal([2, 130, TEST_D], 0, 1, 'float32', 9);
        const ga = gradsOf({ ...o, impl: 'naive' }, w, xx, r);
        const gb = gradsOf(o, w, xx, r);
        ['x', ...Object.keys(w)].forEach((n, i) => close(gb[i], ga[i], `d/d${n}`));
      });
    });
  });

  describe('activation checkpointing (core/ops/checkpoint.ts)', () => {
    // every other test runs the default checkpointed path; this one compares it with the plain tape
    for (const mode of ['full', 'stop'] as const) {
      it(`checkpoint on == off: outputs, state, gradients w.r.t. x and every weight (${mode})`, () => {
        tf.tidy(() => {
          const o = testOptions({ chunkSize: 8, memChunkSize: 4, gradientMode: mode });
          const w = testWeights(o);
          const names = Object.keys(w) as Array<keyof SmtWeights>;
          const xx = x(2, 21);
          const r = tf.randomNormal([2, 21, TEST_D], 0, 1, 'float32', 9);
          const run = (checkpoint: boolean): { y: tf.Tensor; state: SmtState; grads: tf.Tensor[] } => {
            const out = selfModifyingTitansForward({ ...o, checkpoint }, w, xx, null);
            const grads = tf.grads((...args: tf.Tensor[]) => {
              const ww = { ...w } as Record<string, tf.Tensor>;
              names.forEach((n, i) => (ww[n] = args[i + 1]));
              return selfModifyingTitansForward({ ...o, checkpoint }, ww as unknown as SmtWeights, args[0], null).y.mul(r).sum();
            })([xx, ...names.map((n) => w[n] as tf.Tensor)]);
            return { ...out, grads };
          };
          const a = run(false);
          const b = run(true);
          assertClose(b.y, a.y, { rtol: 1e-6, atol: 1e-7, name: 'y' });
          for (const k of Object.keys(a.state)) assertClose(b.state[k], a.state[k], { rtol: 1e-6, atol: 1e-7, name: k });
          ['x', ...names].forEach((n, i) => assertClose(b.grads[i], a.grads[i], { rtol: 1e-5, atol: 1e-6, name: `d/d${n}` }));
          // 'full' must really differentiate through the writes (guards against all-zero gradients)
          expect(b.grads[0].abs().max().dataSync()[0]).to.be.greaterThan(0);
        });
      });
    }
  });

  describe('streaming', () => {
    it('one call == split calls (mid-chunk splits) == token-by-token', () => {
      tf.tidy(() => {
        const o = testOptions({ chunkSize: 4, memChunkSize: 3 });
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

    it('B sequences == B separate runs', () => {
      tf.tidy(() => {
        const o = testOptions({ chunkSize: 4, memChunkSize: 8 });
        const w = testWeights(o);
        const xx = x(3, 11);
        const all = selfModifyingTitansForward(o, w, xx, null);
        for (let i = 0; i < 3; i++) {
          const one = selfModifyingTitansForward(o, w, xx.slice([i, 0, 0], [1, 11, TEST_D]), null);
          close(all.y.slice([i, 0, 0], [1, 11, TEST_D]), one.y, `y[${i}]`);
          close(all.state.memW2.slice([i, 0, 0, 0], [1, -1, -1, -1]), one.state.memW2, `memW2[${i}]`);
        }
      });
    });
  });

  describe('ablation switches', () => {
    it('momentum off == momentum with decay 0 (outputs and weights)', () => {
      tf.tidy(() => {
        const o = testOptions({ momentum: null });
        const w = testWeights(o);
        const xx = x(2, 19);
        const off = selfModifyingTitansForward(o, w, xx, null);
        const zero = selfModifyingTitansForward({ ...o, momentum: 0 }, w, xx, null);
        const on = selfModifyingTitansForward({ ...o, momentum: 0.5 }, w, xx, null);
        close(off.y, zero.y, 'y');
        for (const k of ['W1', 'W2', 'memW1', 'memW2']) close(off.state[k], zero.state[k], k);
        expect(off.state.M1).to.equal(undefined);
        expect(on.y.sub(off.y).abs().max().dataSync()[0]).to.be.greaterThan(1e-4);
      });
    });

    it('weight decay off == alpha fixed at 1 (alphaMin = 1), without the alpha memory', () => {
      tf.tidy(() => {
        const on = testOptions({ alphaMin: 1 });
        const w = testWeights(on); // memories k, v, eta, alpha
        const off = { ...on, weightDecay: false };
        const wOff: SmtWeights = { ...w, w1Init: w.w1Init.slice([0], [3]), w2Init: w.w2Init.slice([0], [3]) };
        delete wOff.alphaBias;
        const xx = x(2, 10);
        const a = selfModifyingTitansForward(on, w, xx, null);
        const b = selfModifyingTitansForward(off, wOff, xx, null);
        close(b.y, a.y, 'y');
        close(b.state.W2, a.state.W2.slice([0, 0], [2, 3]), 'W2 of k, v, eta');
        const decayed = selfModifyingTitansForward({ ...on, alphaMin: 0.5 }, w, xx, null);
        expect(decayed.y.sub(a.y).abs().max().dataSync()[0]).to.be.greaterThan(1e-4);
      });
    });

    it('dgd, dot objective, static k / v, adaptive q each change the output', () => {
      tf.tidy(() => {
        const base = testOptions();
        const xx = x(2, 10);
        const y0 = selfModifyingTitansForward(base, testWeights(base), xx, null).y;
        const variants: Array<[string, Partial<SmtOptions>]> = [
          ['dgd off', { dgd: false }],
          ['dot', { innerLoss: dotLoss }],
          ['static k', { staticK: true }],
          ['static v', { staticV: true }],
          ['adaptive q', { adaptiveQ: true }],
          ['normalize none', { normalize: 'none' }],
        ];
        for (const [name, over] of variants) {
          const o = { ...base, ...over };
          const y = selfModifyingTitansForward(o, testWeights(o), xx, null).y;
          expect(y.sub(y0).abs().max().dataSync()[0], name).to.be.greaterThan(1e-4);
        }
      });
    });

    it('static k: the memory list drops M_k and k comes from x W_k (gradient reaches kKernel)', () => {
      tf.tidy(() => {
        const o = testOptions({ staticK: true });
        const w = testWeights(o);
        expect(w.w1Init.shape[0]).to.equal(3);
        const g = tf.grad((kk: tf.Tensor) => selfModifyingTitansForward(o, { ...w, kKernel: kk }, x(1, 6), null).y.sum())(w.kKernel as tf.Tensor);
        expect(g.abs().max().dataSync()[0]).to.be.greaterThan(1e-6);
      });
    });
  });

  describe('gradient modes', () => {
    it("'stop': y_t does not depend on earlier tokens through writes; 'full': it does", () => {
      tf.tidy(() => {
        const t = 6;
        for (const mode of ['stop', 'full'] as const) {
          const o = testOptions({ gradientMode: mode, chunkSize: 2, memChunkSize: 2 });
          const w = testWeights(o);
          const xx = x(1, t);
          const g = tf.grad((a: tf.Tensor) => selfModifyingTitansForward(o, w, a, null).y.slice([0, t - 1, 0], [1, 1, TEST_D]).sum())(xx);
          const earlier = g.slice([0, 0, 0], [1, t - 1, TEST_D]).abs().max().dataSync()[0];
          const last = g.slice([0, t - 1, 0], [1, 1, TEST_D]).abs().max().dataSync()[0];
          expect(last, `${mode} last`).to.be.greaterThan(1e-4);
          if (mode === 'stop') expect(earlier).to.equal(0);
          else expect(earlier).to.be.greaterThan(1e-5);
          // forward values do not depend on the mode
          close(selfModifyingTitansForward(o, w, xx, null).y, selfModifyingTitansForward({ ...o, gradientMode: 'full' }, w, xx, null).y, 'y');
        }
      });
    });
  });

  describe('hand-computed 2-token update (scalar memory, dh = dhid = 1)', () => {
    // Independent scalar evaluation of Eqs. 85/88 + momentum, gradients at the chunk-start state.
    const silu = (z: number): number => z / (1 + Math.exp(-z));
    const dsilu = (z: number): number => {
      const s = 1 / (1 + Math.exp(-z));
      return s * (1 + z * (1 - s));
    };
    for (const [mu, dgd] of [[0.5, true], [null, true], [0.5, false]] as const) {
      it(`momentum=${mu}, dgd=${dgd}`, () => {
        const w1 = 0.7, w2 = -1.3, m1 = 0.1, m2 = -0.2;
        const k = [0.9, -0.6], v = [0.4, 1.1], eta = [0.3, 0.2], alpha = [0.9, 0.8], q = [0.5, -1.0];
        // inner gradients at (w1, w2), l2 loss: e = M(k) - M(v)
        const e: number[] = [], u: number[] = [], hh: number[] = [];
        for (let t = 0; t < 2; t++) {
          const z = w2 * k[t];
          hh.push(silu(z));
          e.push(k[t] + w1 * silu(z) - (v[t] + w1 * silu(w2 * v[t])));
          u.push(w1 * e[t] * dsilu(z));
        }
        let W1 = w1, W2 = w2, M1 = mu === null ? 0 : m1, M2 = mu === null ? 0 : m2;
        const o: number[] = [];
        for (let t = 0; t < 2; t++) {
          const nW2 = W2 * alpha[t] - (dgd ? eta[t] * W2 * k[t] * k[t] : 0);
          const g2 = -eta[t] * u[t] * k[t];
          const g1 = -eta[t] * e[t] * hh[t];
          if (mu !== null) {
            M2 = mu * M2 + g2;
            M1 = mu * M1 + g1;
            W2 = nW2 + M2;
            W1 = alpha[t] * W1 + M1;
          } else {
            W2 = nW2 + g2;
            W1 = alpha[t] * W1 + g1;
          }
          o.push(q[t] + W1 * silu(W2 * q[t]));
        }
        tf.tidy(() => {
          const t3 = (a: number[]): tf.Tensor3D => tf.tensor3d(a, [1, 2, 1]);
          const sw1 = tf.tensor3d([[[w1]]]), sw2 = tf.tensor3d([[[w2]]]);
          const g = innerGradients('silu', l2Loss, sw1, sw2, t3(k), tf.tensor3d([[[0]], [[0]]]).reshape([1, 2, 1]).add(
            t3(v).add(sw1.mul(tf.sigmoid(sw2.mul(t3(v))).mul(sw2.mul(t3(v))))),
          ) as tf.Tensor3D, null);
          const et = tf.tensor2d([eta]);
          const wr = {
            k: t3(k), h: g.h, eta: et, logAlpha: tf.log(tf.tensor2d([alpha])) as tf.Tensor2D, q: t3(q),
            y2: g.u.mul(et.expandDims(2)).neg() as tf.Tensor3D, y1: g.e.mul(et.expandDims(2)).neg() as tf.Tensor3D,
          };
          const s0 = mu === null ? { w1: sw1, w2: sw2 } : { w1: sw1, w2: sw2, m1: tf.tensor3d([[[m1]]]), m2: tf.tensor3d([[[m2]]]) };
          for (const f of [naiveSegment, chunkedSegment]) {
            const r = f(s0, wr, { act: 'silu', momentum: mu, dgd });
            assertClose(r.o as tf.Tensor, o, { rtol: 1e-5, atol: 1e-6, name: `${f.name} o` });
            assertClose(r.state.w1, [W1], { rtol: 1e-5, atol: 1e-6, name: `${f.name} W1` });
            assertClose(r.state.w2, [W2], { rtol: 1e-5, atol: 1e-6, name: `${f.name} W2` });
          }
        });
      });
    }
  });
});
