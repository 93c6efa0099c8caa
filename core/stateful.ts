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

// ---------------------------------------------------------------------------------------------
// In-context learning hook (paper Eq. 71): layers whose state holds fast weights that learn from the
// task loss inside a context. The driver (e.g. NestedTrainer in plugin 'scheduler') differentiates
// the task loss w.r.t. the state entries listed by contextGradientTargets(), hands the gradients to
// accumulateContextGradients(), and calls applyContextUpdates() when a level's boundary is reached.
// Periods are in tokens of the context; the driver owns the clocks (host numbers, same for every
// sequence of the batch), the layer owns the arithmetic. Methods return a new state whose tensors
// are all new (unchanged entries cloned): the caller disposes the state it passed in.

/** One fast-weight level of an in-context learner, as data. */
export interface ContextLevelInfo {
  /** Id unique within the layer (the driver prefixes the layer name), e.g. 'level0'. */
  readonly id: string;
  /** Update period in tokens (0 = never: the level is an ordinary frozen block inside a context). */
  readonly period: number;
  /** Step size eta of the level (Eq. 71). */
  readonly learningRate: number;
  /** Registered gradient-transform name driving the level, if any. */
  readonly transform?: string;
  /** Names (tf.Variable names) of the trainable variables holding the level's meta-learned initial weights. */
  readonly variables: readonly string[];
}

/** A state entry that receives task-loss gradients, and the variable that meta-learns its initial value. */
export interface ContextGradientTarget {
  /** Key in the layer's state; the entry is [B, ...] (one fast copy per sequence). */
  readonly stateKey: string;
  /** First-order meta-gradient: this variable's outer gradient gets the batch sum of the entry's gradient. */
  readonly variable: tf.Variable;
}

export interface InContextLearner<S extends MemoryState = MemoryState> extends StatefulSequenceLayer<S> {
  /** The layer's levels (including frozen ones, period 0). */
  contextLevels(): readonly ContextLevelInfo[];
  /** State entries to differentiate the task loss against (empty when no level learns in context). */
  contextGradientTargets(): readonly ContextGradientTarget[];
  /** Adds one segment's task-loss gradients (sum over its tokens; key -> [B, ...]) to the pending accumulators. */
  accumulateContextGradients(state: S, grads: Readonly<Record<string, tf.Tensor>>): S;
  /**
   * Applies the pending updates of the given levels (their boundary was reached, or the driver flushes a
   * partial chunk) and clears their accumulators. `step` is the level's 1-based update count.
   */
  applyContextUpdates(state: S, levels: ReadonlyArray<{ id: string; step: number }>): S;
}

export function isInContextLearner(layer: unknown): layer is InContextLearner {
  const l = layer as Partial<InContextLearner> | null;
  return (
    isStatefulSequenceLayer(layer) &&
    typeof l!.contextLevels === 'function' &&
    typeof l!.contextGradientTargets === 'function' &&
    typeof l!.accumulateContextGradients === 'function' &&
    typeof l!.applyContextUpdates === 'function'
  );
}
