/**
 * Memory states of the associative-memory plugin. Both are plain MemoryState records (core
 * memory-state.ts helpers apply: keepState, disposeState, detachState, sliceStateBatch, ...), with
 * the batch axis first so every sequence owns its memory.
 */
import * as tf from '@tensorflow/tfjs';
import { assertStateShapes, type MemoryState } from '../../core';

/** Parametric linear memory: retrieve(q) = M q. */
export interface MatrixMemoryState extends MemoryState {
  /** M, [B, dv, dk]. */
  readonly memory: tf.Tensor3D;
}

/** Non-parametric memory of S slots written as a ring buffer. */
export interface SlotMemoryState extends MemoryState {
  /** Stored keys, [B, S, dk] (rows of unfilled slots are zero and masked on read). */
  readonly keys: tf.Tensor3D;
  /** Stored values, [B, S, dv]. */
  readonly values: tf.Tensor3D;
  /** Pairs written so far per batch row, int32 [B]; next slot = count mod S, filled = min(count, S). */
  readonly count: tf.Tensor1D;
}

/** All-zero matrix memory [B, dv, dk]. */
export function zeroMatrixMemoryState(batchSize: number, valueDim: number, keyDim: number): MatrixMemoryState {
  return { memory: tf.zeros([batchSize, valueDim, keyDim]) as tf.Tensor3D };
}

/** Empty slot memory: zero keys/values, count 0 for every row. */
export function emptySlotMemoryState(batchSize: number, slots: number, keyDim: number, valueDim: number): SlotMemoryState {
  return tf.tidy(() => ({
    keys: tf.zeros([batchSize, slots, keyDim]) as tf.Tensor3D,
    values: tf.zeros([batchSize, slots, valueDim]) as tf.Tensor3D,
    count: tf.zeros([batchSize], 'int32') as tf.Tensor1D,
  }));
}

/** Throws (naming the entry) unless state is a matrix memory [B, dv, dk] (B = -1: any). */
export function assertMatrixMemoryState(state: MatrixMemoryState, batch: number, valueDim: number, keyDim: number, where = 'state'): void {
  if (typeof state !== 'object' || state === null) throw new Error(`${where}: must be a { memory } record`);
  assertStateShapes(state, { memory: [batch, valueDim, keyDim] }, where);
}

/** Throws (naming the entry) unless state is a slot memory of the given sizes (B = -1: any). */
export function assertSlotMemoryState(state: SlotMemoryState, batch: number, slots: number, keyDim: number, valueDim: number, where = 'state'): void {
  if (typeof state !== 'object' || state === null) throw new Error(`${where}: must be a { keys, values, count } record`);
  assertStateShapes(state, { keys: [batch, slots, keyDim], values: [batch, slots, valueDim], count: [batch] }, where);
  const b = state.keys.shape[0];
  if (state.values.shape[0] !== b || state.count.shape[0] !== b) {
    throw new Error(`${where}: keys, values and count disagree on the batch size (${b}, ${state.values.shape[0]}, ${state.count.shape[0]})`);
  }
  if (state.count.dtype !== 'int32') throw new Error(`${where}.count: must be int32, got ${state.count.dtype}`);
}
