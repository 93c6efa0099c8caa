import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { concatStateBatch, disposeState, sliceStateBatch } from '../../core';
import { assertClose, expectNoLeakedTensors, forEachBackend, gradCheck } from '../../core/testing';
import { SlotMemory } from './slot-memory';
import type { SlotMemoryState } from './state';

const seq = (rows: number[][]): tf.Tensor3D => tf.tensor3d([rows]);
/** Distinguishable pairs for ring-buffer checks: key i = [i, 0], value i = [10 i, -i]. */
const pairKeys = (from: number, n: number): number[][] => Array.from({ length: n }, (_, i) => [from + i, 0]);
const pairValues = (from: number, n: number): number[][] => Array.from({ length: n }, (_, i) => [10 * (from + i), -(from + i)]);

forEachBackend('SlotMemory', () => {
  describe('read: softmax attention over filled slots', () => {
    it('hand-computed: scores [ln 3, 0] give weights [3/4, 1/4] and read [1.5, 1] (tau = 1 and tau = 2)', () => {
      tf.tidy(() => {
        for (const tau of [1, 2]) {
          const mem = new SlotMemory({ slots: 2, keyDim: 2, valueDim: 2, temperature: tau });
          const s = mem.store(mem.initialState(1), seq([[1, 0], [0, 1]]), seq([[2, 0], [0, 4]]));
          const q = seq([[tau * Math.log(3), 0]]); // <q, k1> / tau = ln 3, <q, k2> / tau = 0
          assertClose(mem.attentionWeights(s, q), [[[0.75, 0.25]]], { name: `weights tau=${tau}` });
          // 0.75 * [2, 0] + 0.25 * [0, 4]
          assertClose(mem.retrieve(s, q), [[[1.5, 1]]], { name: `read tau=${tau}` });
        }
      });
    });

    it('sharp temperature recalls each stored value exactly', () => {
      tf.tidy(() => {
        const mem = new SlotMemory({ slots: 4, keyDim: 4, valueDim: 3, temperature: 0.01 });
        const K = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]];
        const V = [[3, -1, 2], [0, 5, -4], [7, 1, 1]];
        const s = mem.store(mem.initialState(1), seq(K), seq(V));
        assertClose(mem.retrieve(s, seq(K)), [V], { atol: 1e-5 });
        // A soft temperature blends: the same read at tau = 1 is far from exact.
        const soft = new SlotMemory({ slots: 4, keyDim: 4, valueDim: 3, temperature: 1 });
        const err = soft.retrieve(s, seq(K)).sub(seq(V)).abs().max().arraySync() as number;
        expect(err).to.be.greaterThan(1);
      });
    });

    it('unfilled slots get weight exactly 0 even when their score is the highest; empty memory reads 0', () => {
      tf.tidy(() => {
        const mem = new SlotMemory({ slots: 4, keyDim: 2, valueDim: 2 });
        const s0 = mem.initialState(1);
        assertClose(mem.retrieve(s0, seq([[1, 0], [0, 3]])), [[[0, 0], [0, 0]]], { name: 'empty' });
        assertClose(mem.filledMask(s0), [[0, 0, 0, 0]]);
        // One pair with key [-1, 0]: for q = [1, 0] its score is -1, below the 0 of the empty (zero-key) slots.
        const s1 = mem.store(s0, seq([[-1, 0]]), seq([[5, 7]]));
        assertClose(mem.filledMask(s1), [[1, 0, 0, 0]]);
        assertClose(mem.attentionWeights(s1, seq([[1, 0]])), [[[1, 0, 0, 0]]]);
        assertClose(mem.retrieve(s1, seq([[1, 0]])), [[[5, 7]]]);
      });
    });

    it('the read is the minimiser of the weighted L2 regression sum_s w_s |m - V_s|^2', () => {
      tf.tidy(() => {
        const mem = new SlotMemory({ slots: 3, keyDim: 2, valueDim: 2, temperature: 0.7 });
        const s = mem.store(mem.initialState(1), seq([[1, 2], [-1, 0.5], [0.3, -1]]), seq([[1, 0], [2, -3], [0.5, 4]]));
        const q = seq([[0.4, -0.2]]);
        const w = mem.attentionWeights(s, q).reshape([3, 1]); // [S, 1]
        const V = s.values.reshape([3, 2]);
        const J = (m: tf.Tensor): tf.Scalar => w.mul(V.sub(m).square()).sum() as tf.Scalar;
        const m = mem.retrieve(s, q).reshape([1, 2]);
        assertClose(tf.grad(J)(m), [[0, 0]], { atol: 1e-5, name: 'dJ/dm at the read' });
        for (const d of [[0.1, 0], [0, -0.1], [0.05, 0.05]]) {
          expect(J(m.add(tf.tensor2d([d]))).arraySync()).to.be.greaterThan(J(m).arraySync() as number);
        }
      });
    });
  });

  describe('write: ring buffer', () => {
    it('5 pairs into 3 slots: slot 0 = pair 3, slot 1 = pair 4, slot 2 = pair 2, count = 5', () => {
      tf.tidy(() => {
        const mem = new SlotMemory({ slots: 3, keyDim: 2, valueDim: 2 });
        const s = mem.store(mem.initialState(1), seq(pairKeys(0, 5)), seq(pairValues(0, 5)));
        assertClose(s.keys, [[[3, 0], [4, 0], [2, 0]]]);
        assertClose(s.values, [[[30, -3], [40, -4], [20, -2]]]);
        expect(s.count.dtype).to.equal('int32');
        expect(s.count.arraySync()).to.deep.equal([5]);
        assertClose(mem.filledMask(s), [[1, 1, 1]]);
      });
    });

    it('one call equals pair-by-pair calls and split calls, including N > S from a non-zero count', () => {
      tf.tidy(() => {
        const mem = new SlotMemory({ slots: 3, keyDim: 2, valueDim: 2 });
        // Start at count 1, then write 7 pairs (more than S) in one call.
        const start = mem.store(mem.initialState(1), seq(pairKeys(100, 1)), seq(pairValues(100, 1)));
        const whole = mem.store(start, seq(pairKeys(0, 7)), seq(pairValues(0, 7)));
        let one: SlotMemoryState = start;
        for (let i = 0; i < 7; i++) one = mem.store(one, seq(pairKeys(i, 1)), seq(pairValues(i, 1)));
        const split = mem.store(mem.store(start, seq(pairKeys(0, 2)), seq(pairValues(0, 2))), seq(pairKeys(2, 5)), seq(pairValues(2, 5)));
        // Pair i (count 1 + i) goes to slot (1 + i) mod 3: slot 0 <- pair 5, slot 1 <- pair 6, slot 2 <- pair 4.
        assertClose(whole.keys, [[[5, 0], [6, 0], [4, 0]]]);
        for (const [name, st] of [['one-by-one', one], ['split', split]] as const) {
          assertClose(st.keys, whole.keys, { name: `${name} keys` });
          assertClose(st.values, whole.values, { name: `${name} values` });
          expect(st.count.arraySync(), name).to.deep.equal([8]);
        }
      });
    });

    it('batch rows are independent, even with different fill counts', () => {
      tf.tidy(() => {
        const mem = new SlotMemory({ slots: 3, keyDim: 2, valueDim: 2, temperature: 0.5 });
        const a = mem.store(mem.initialState(1), seq(pairKeys(1, 1)), seq(pairValues(1, 1))); // 1 filled
        const b = mem.store(mem.initialState(1), seq(pairKeys(1, 4)), seq(pairValues(1, 4))); // wrapped
        const both = concatStateBatch([a, b]);
        const k = tf.tensor3d([[[0.3, 0.1], [-0.2, 0.5]], [[0.1, 0.2], [0.4, -0.3]]]);
        const v = tf.tensor3d([[[1, 2], [3, 4]], [[5, 6], [7, 8]]]);
        const after = mem.store(both, k, v);
        expect(after.count.arraySync()).to.deep.equal([3, 6]);
        const q = tf.tensor3d([[[0.5, 0.2]], [[-0.1, 0.3]]]);
        const read = mem.retrieve(after, q);
        for (const r of [0, 1]) {
          const alone = mem.store(sliceStateBatch(both, r, 1), k.slice([r, 0, 0], [1, 2, 2]), v.slice([r, 0, 0], [1, 2, 2]));
          assertClose(read.slice([r, 0, 0], [1, 1, 2]), mem.retrieve(alone, q.slice([r, 0, 0], [1, 1, 2])), { name: `row ${r}` });
          assertClose(after.keys.slice([r, 0, 0], [1, 3, 2]), alone.keys, { name: `row ${r} keys` });
        }
      });
    });

    it('reads and writes are differentiable w.r.t. written keys/values and queries', () => {
      const mem = new SlotMemory({ slots: 2, keyDim: 2, valueDim: 2, temperature: 0.8 });
      const s0 = mem.store(mem.initialState(1), seq([[0.2, -0.4]]), seq([[1, 1]]));
      const k = tf.tensor3d([[[0.5, 0.1], [-0.3, 0.7]]]); // count 1 -> slots 1 and 0 (the second write overwrites the stored pair)
      const v = tf.tensor3d([[[0.4, -1], [2, 0.3]]]);
      const q = tf.tensor3d([[[0.6, -0.2]]]);
      gradCheck((kk, vv, qq) => mem.retrieve(mem.store(s0, kk, vv), qq).mul(tf.tensor([[[1, -2]]])).sum() as tf.Scalar, [k, v, q], { name: 'slot' });
      disposeState(s0);
      tf.dispose([k, v, q]);
    });
  });

  describe('errors and leaks', () => {
    it('bad config and shapes name the field', () => {
      expect(() => new SlotMemory({ slots: 0, keyDim: 2, valueDim: 2 })).to.throw(/SlotMemory\.slots: must be a positive integer/);
      expect(() => new SlotMemory({ slots: 2, keyDim: 2, valueDim: 2, temperature: 0 })).to.throw(/SlotMemory\.temperature: must be a finite number > 0, got 0/);
      const mem = new SlotMemory({ slots: 2, keyDim: 2, valueDim: 3 });
      const s = mem.initialState(1);
      expect(() => mem.store(s, tf.zeros([1, 2, 3]), tf.zeros([1, 2, 3]))).to.throw(/SlotMemory\.store: keys: must be \[B=1, N, keyDim=2\]/);
      expect(() => mem.store(s, tf.zeros([1, 2, 2]), tf.zeros([1, 2, 2]))).to.throw(/SlotMemory\.store: values/);
      expect(() => mem.retrieve({ ...s, count: tf.zeros([1]) as tf.Tensor1D }, tf.zeros([1, 1, 2]))).to.throw(/state\.count: must be int32/);
      expect(() => mem.retrieve({ keys: s.keys, values: s.values } as SlotMemoryState, tf.zeros([1, 1, 2]))).to.throw(/state\.count: missing/);
      disposeState(s);
    });

    it('no tensors leak over many store/retrieve steps with carried state', async () => {
      const mem = new SlotMemory({ slots: 3, keyDim: 2, valueDim: 2 });
      let state = mem.initialState(2);
      const k = tf.ones([2, 2, 2]);
      const v = tf.ones([2, 2, 2]);
      await expectNoLeakedTensors(() => {
        const next = mem.store(state, k, v);
        disposeState(state);
        state = next;
        mem.retrieve(state, k).dispose();
        mem.filledMask(state).dispose();
      }, { iterations: 10 });
      disposeState(state);
      tf.dispose([k, v]);
    });
  });
});
