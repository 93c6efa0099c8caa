/**
 * Explicit memory state: fast weights and their companions (momentum, step counters) as a record of
 * tensors, each with the batch axis first ([B, ...]) so every sequence owns its memory.
 * State is passed in and returned, never mutated inside a layer's call(); whoever holds carried
 * state owns it and disposes it.
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from './ops/stop-gradient';

export type MemoryState = Readonly<Record<string, tf.Tensor>>;

/** tf.keep every tensor (so it survives the enclosing tf.tidy); returns the same record. */
export function keepState<S extends MemoryState>(state: S): S {
  for (const t of Object.values(state)) tf.keep(t);
  return state;
}

/** Disposes every tensor of a state (null/undefined is a no-op). */
export function disposeState(state: MemoryState | null | undefined): void {
  if (state) tf.dispose(Object.values(state));
}

/** Same values, no gradient path to what produced them (truncates backprop between segments). */
export function detachState<S extends MemoryState>(state: S): S {
  const out: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(state)) out[k] = stopGradient(v);
  return out as unknown as S;
}

/** Deep copy (new tensors), e.g. to keep a snapshot while the original is disposed. */
export function cloneState<S extends MemoryState>(state: S): S {
  const out: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(state)) out[k] = v.clone();
  return out as unknown as S;
}

/** Selects batch rows [start, start+size) of every tensor (for B-vs-separate-run checks). */
export function sliceStateBatch<S extends MemoryState>(state: S, start: number, size: number): S {
  const out: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(state)) {
    const begin = v.shape.map((_, i) => (i === 0 ? start : 0));
    const sz = v.shape.map((d, i) => (i === 0 ? size : d));
    out[k] = tf.slice(v, begin, sz);
  }
  return out as unknown as S;
}

/** Concatenates states along the batch axis. */
export function concatStateBatch<S extends MemoryState>(states: S[]): S {
  if (states.length === 0) throw new Error('concatStateBatch: no states');
  const out: Record<string, tf.Tensor> = {};
  for (const k of Object.keys(states[0])) out[k] = tf.concat(states.map((s) => s[k]), 0);
  return out as unknown as S;
}

/**
 * Checks that `state` has exactly the expected keys and shapes ([B, ...] each); throws an error naming
 * the field otherwise. `expected` maps key -> shape (use -1 for "any").
 */
export function assertStateShapes(state: MemoryState, expected: Record<string, number[]>, where = 'state'): void {
  for (const k of Object.keys(expected)) {
    const t = state[k];
    if (!t) throw new Error(`${where}.${k}: missing (expected shape [${expected[k]}])`);
    const want = expected[k];
    const ok = t.shape.length === want.length && t.shape.every((d, i) => want[i] < 0 || want[i] === d);
    if (!ok) throw new Error(`${where}.${k}: shape [${t.shape}] does not match expected [${want}]`);
  }
  for (const k of Object.keys(state)) {
    if (!(k in expected)) throw new Error(`${where}.${k}: unexpected entry (allowed: ${Object.keys(expected).join(', ')})`);
  }
}

/** Throws if any entry holds NaN or Inf; names the entry. Syncs: use at logging boundaries only. */
export function assertStateFinite(state: MemoryState, where = 'state'): void {
  for (const [k, v] of Object.entries(state)) {
    const bad = tf.tidy(() => tf.logicalNot(tf.isFinite(v)).any().dataSync()[0]);
    if (bad) throw new Error(`${where}.${k}: contains NaN or Inf`);
  }
}
