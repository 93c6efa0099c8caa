/**
 * The contract between sequence layers that carry memory and whoever drives them (streaming
 * generation, the nested trainer). A stateful layer maps [B, T, D] -> [B, T, D'] starting from an
 * explicit state and returns the state after the last token; call() is the same from initialState.
 * The caller owns both the state it passes and the state it gets back (dispose them).
 */
import type * as tf from '@tensorflow/tfjs';
import type { MemoryState } from './memory-state';

export interface StatefulSequenceLayer<S extends MemoryState = MemoryState> {
  /** Zero/initial (meta-learned) state for `batchSize` independent sequences. */
  initialState(batchSize: number): S;
  /** Runs the layer over x [B, T, D] from `state` (initialState when null). */
  forward(x: tf.Tensor, state?: S | null): { y: tf.Tensor; state: S };
}

export function isStatefulSequenceLayer(layer: unknown): layer is StatefulSequenceLayer {
  const l = layer as Partial<StatefulSequenceLayer> | null;
  return !!l && typeof l.initialState === 'function' && typeof l.forward === 'function';
}
