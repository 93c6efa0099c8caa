/**
 * Memory state of NlTitansMemory, per sequence b and head h (batch axis first, so every sequence owns
 * its memory):
 *   'linear': W, S [B, H, d, d]             'mlp': W1, S1 [B, H, d, dh] and W2, S2 [B, H, dh, d]
 *   (fast weights M and surprise momenta S, Titans Eqs. 10, 13)
 *   W1Start, W2Start (or WStart): the fast weights at the start of the current chunk, where its inner
 *   gradients are taken (Titans Eqs. 16-18), and clock [B, p]: p = tokens of the current chunk already
 *   seen, 0 <= p < chunkSize (only the width is used: the position is known without a device sync).
 *   Chunks are counted along the stream, so one call == split calls == token-by-token streaming.
 *   with conv on: convQ, convK, convV [B, 3, H d], the last 3 pre-conv projections (window 4).
 * States are caller-owned tensors: initialState/forward/step return new ones and never dispose inputs.
 */
import type * as tf from '@tensorflow/tfjs';
import { assertStateShapes, disposeState } from '../../core/memory-state';
import { MEMORY_KEYS, memoryMatrixShapes, type MemoryKind } from './ops/memory';

export type TitansMemoryState = Readonly<Record<string, tf.Tensor>>;

/** Window of the causal depthwise conv (the state keeps window - 1 past inputs). */
export const CONV_WINDOW = 4;
export const CONV_KEYS = ['convQ', 'convK', 'convV'] as const;
/** State key of the chunk-start snapshot of fast-weight key `k` (e.g. W1 -> W1Start). */
export const chunkStartKey = (k: string): string => `${k}Start`;
/** State key of the in-chunk position (its width). */
export const CLOCK_KEY = 'clock';

export interface TitansStateDims {
  batch: number;
  numHeads: number;
  headDim: number;
  hidden: number;
  memory: MemoryKind;
  conv: boolean;
}

/** Expected key -> shape of a state. */
export function titansStateShapes(s: TitansStateDims): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  const shapes = memoryMatrixShapes(s.memory, s.headDim, s.hidden);
  MEMORY_KEYS[s.memory].weights.forEach((k, i) => (out[k] = [s.batch, s.numHeads, ...shapes[i]]));
  MEMORY_KEYS[s.memory].momenta.forEach((k, i) => (out[k] = [s.batch, s.numHeads, ...shapes[i]]));
  MEMORY_KEYS[s.memory].weights.forEach((k, i) => (out[chunkStartKey(k)] = [s.batch, s.numHeads, ...shapes[i]]));
  out[CLOCK_KEY] = [s.batch, -1];
  if (s.conv) for (const k of CONV_KEYS) out[k] = [s.batch, CONV_WINDOW - 1, s.numHeads * s.headDim];
  return out;
}

/** Throws an error naming the entry unless `state` has exactly the expected keys and shapes. */
export function checkTitansState(state: TitansMemoryState, dims: TitansStateDims, where = 'NlTitansMemory.state'): void {
  if (typeof state !== 'object' || state === null) throw new Error(`${where}: must be a record of tensors`);
  assertStateShapes(state, titansStateShapes(dims), where);
}

export function disposeTitansState(state: TitansMemoryState | null | undefined): void {
  disposeState(state);
}
