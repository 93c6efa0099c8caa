/**
 * SlotMemory: a non-parametric associative memory of S slots per sequence.
 *
 * Write: pairs go into a ring buffer. The i-th pair ever written to a row lands in slot i mod S, so
 * once the row is full each new pair overwrites the oldest one. `count` [B] counts pairs written.
 *
 * Read: a kernel regression over the filled slots (Nadaraya-Watson), i.e. softmax attention:
 *   w_s(q) = exp(<q, K_s> / tau) / sum_{s' filled} exp(<q, K_s'> / tau),   out(q) = sum_s w_s(q) V_s.
 * out(q) is the exact minimiser over m of the weighted L2 regression objective
 * sum_s w_s(q) |m - V_s|^2: the non-parametric counterpart of the matrix memory's L2 objective
 * (Eq. 6 with an L2 objective; the paper reads softmax attention this way). Unfilled slots get weight exactly 0; a row
 * with no filled slot reads the zero vector.
 *
 * Pure: state in, new state out; the caller owns both.
 */
import * as tf from '@tensorflow/tfjs';
import { resolveSlotMemoryConfig, type SlotMemoryConfig } from './config';
import { assertSlotMemoryState, emptySlotMemoryState, type SlotMemoryState } from './state';
import { checkShape } from './util';

// Score given to unfilled slots before the softmax: exp(MASKED - max) underflows to exactly 0.
const MASKED_SCORE = -1e30;

export class SlotMemory {
  readonly slots: number;
  readonly keyDim: number;
  readonly valueDim: number;
  readonly temperature: number;

  constructor(config: SlotMemoryConfig) {
    const c = resolveSlotMemoryConfig(config);
    this.slots = c.slots;
    this.keyDim = c.keyDim;
    this.valueDim = c.valueDim;
    this.temperature = c.temperature;
  }

  /** Empty memory for `batchSize` sequences. */
  initialState(batchSize: number): SlotMemoryState {
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`SlotMemory.initialState: batchSize must be a positive integer, got ${JSON.stringify(batchSize)}`);
    return emptySlotMemoryState(batchSize, this.slots, this.keyDim, this.valueDim);
  }

  /**
   * Writes N pairs per row in order: keys [B, N, dk], values [B, N, dv]. Vectorised and exact: of
   * the N pairs only the last min(N, S) survive (pair i is overwritten by pair i + S of the same
   * call), and those land in distinct slots, so one scatter-by-matmul writes them all.
   */
  store(state: SlotMemoryState, keys: tf.Tensor, values: tf.Tensor): SlotMemoryState {
    this.checkState(state, 'store');
    const b = state.keys.shape[0];
    checkShape(keys, [b, -1, this.keyDim], 'SlotMemory.store: keys', `[B=${b}, N, keyDim=${this.keyDim}]`);
    const n = (keys.shape as number[])[1];
    checkShape(values, [b, n, this.valueDim], 'SlotMemory.store: values', `[B=${b}, N=${n}, valueDim=${this.valueDim}]`);
    return tf.tidy(() => {
      const count = state.count.add(tf.scalar(n, 'int32')) as tf.Tensor1D; // [B]
      if (n === 0) return { keys: state.keys.clone(), values: state.values.clone(), count };
      const m = Math.min(n, this.slots);
      const kLast = keys.slice([0, n - m, 0], [b, m, this.keyDim]); // [B, m, dk]
      const vLast = values.slice([0, n - m, 0], [b, m, this.valueDim]); // [B, m, dv]
      // Slot of surviving pair j: (count + (n - m) + j) mod S.
      const offsets = tf.range(n - m, n, 1, 'int32').reshape([1, m]); // [1, m]
      const pos = tf.mod(state.count.reshape([b, 1]).add(offsets), tf.scalar(this.slots, 'int32')); // [B, m]
      const write = tf.oneHot(pos as tf.Tensor2D, this.slots).toFloat(); // [B, m, S], one 1 per pair
      const written = write.sum(1).expandDims(2); // [B, S, 1], 0/1 (surviving pairs hit distinct slots)
      const keep = tf.scalar(1).sub(written);
      const newKeys = state.keys.mul(keep).add(tf.matMul(write, kLast, true, false)); // [B, S, dk]
      const newValues = state.values.mul(keep).add(tf.matMul(write, vLast, true, false)); // [B, S, dv]
      return { keys: newKeys as tf.Tensor3D, values: newValues as tf.Tensor3D, count };
    });
  }

  /** Filled-slot mask [B, S] (1 = filled): slot s is filled iff s < min(count, S). */
  filledMask(state: SlotMemoryState): tf.Tensor2D {
    this.checkState(state, 'filledMask');
    return tf.tidy(() => this.mask(state).toFloat() as tf.Tensor2D);
  }

  /** Softmax-attention read over filled slots: queries [B, N, dk] -> [B, N, dv]. Does not write. */
  retrieve(state: SlotMemoryState, queries: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      const w = this.readWeights(state, queries, 'retrieve'); // [B, N, S]
      return tf.matMul(w, state.values) as tf.Tensor3D; // [B, N, S] x [B, S, dv]
    });
  }

  /** The read weights w_s(q) [B, N, S]: softmax over filled slots, exactly 0 on unfilled ones. */
  attentionWeights(state: SlotMemoryState, queries: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => this.readWeights(state, queries, 'attentionWeights'));
  }

  private readWeights(state: SlotMemoryState, queries: tf.Tensor, fn: string): tf.Tensor3D {
    this.checkState(state, fn);
    const b = state.keys.shape[0];
    checkShape(queries, [b, -1, this.keyDim], `SlotMemory.${fn}: queries`, `[B=${b}, N, keyDim=${this.keyDim}]`);
    const n = (queries.shape as number[])[1];
    const scores = tf.matMul(queries, state.keys, false, true).div(this.temperature); // [B, N, S]
    const filled = tf.broadcastTo(this.mask(state).expandDims(1), [b, n, this.slots]); // [B, N, S] bool
    const masked = tf.where(filled, scores, tf.fill([b, n, this.slots], MASKED_SCORE));
    // A row with no filled slot gets a uniform softmax; zeroing by the mask makes it read 0.
    return tf.softmax(masked).mul(filled.toFloat()) as tf.Tensor3D;
  }

  private mask(state: SlotMemoryState): tf.Tensor2D {
    const filledCount = tf.minimum(state.count, tf.scalar(this.slots, 'int32')).reshape([-1, 1]); // [B, 1]
    return tf.range(0, this.slots, 1, 'int32').reshape([1, this.slots]).less(filledCount) as tf.Tensor2D; // [B, S]
  }

  private checkState(state: SlotMemoryState, fn: string): void {
    assertSlotMemoryState(state, -1, this.slots, this.keyDim, this.valueDim, `SlotMemory.${fn}: state`);
  }
}
