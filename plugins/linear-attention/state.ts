/**
 * Memory state of NlLinearAttention: one matrix memory per sequence and head, S: [B, H, dv, dk].
 * States are plain tensors owned by the caller: `initialState` and `forward`/`step` return new tensors
 * and never dispose the state passed in; dispose it with `disposeLinearAttentionState` (or core's
 * disposeState) when done. Inside a tf.tidy, wrap a state that must outlive it with core's keepState.
 */
import * as tf from '@tensorflow/tfjs';
import { assertStateShapes, disposeState } from '../../core/memory-state';

/** S[b, h] in R^{dv x dk} is head h's memory for sequence b (o = S q reads it). */
export type LinearAttentionState = { readonly S: tf.Tensor4D };

/** Zero memory for `batchSize` sequences: {S: zeros [B, H, dv, dk]}. */
export function zeroLinearAttentionState(batchSize: number, numHeads: number, valueDim: number, keyDim: number): LinearAttentionState {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`NlLinearAttention.initialState: batchSize must be a positive integer, got ${JSON.stringify(batchSize)}`);
  }
  return { S: tf.zeros([batchSize, numHeads, valueDim, keyDim]) as tf.Tensor4D };
}

/** Throws an error naming the field unless `state` is {S: [B, H, dv, dk]}. */
export function checkLinearAttentionState(
  state: LinearAttentionState,
  batchSize: number,
  numHeads: number,
  valueDim: number,
  keyDim: number,
  where = 'NlLinearAttention.state',
): void {
  if (typeof state !== 'object' || state === null) throw new Error(`${where}: must be an object {S: [B, H, dv, dk]}`);
  assertStateShapes(state, { S: [batchSize, numHeads, valueDim, keyDim] }, where);
}

/** Disposes a carried state (null/undefined is a no-op). */
export function disposeLinearAttentionState(state: LinearAttentionState | null | undefined): void {
  disposeState(state);
}
