/**
 * The gradient-transform contract (optax-style). An optimizer is a pure pair `init` / `update` over
 * records of named tensors. In the paper's terms (Section 4; notes section 2) an optimizer is an
 * associative memory over gradients: its state (momentum, accumulators, preconditioners) is that
 * memory, and `update` is one write to it followed by one read (the parameter update).
 *
 * Conventions every transform follows:
 * - `params`, `grads` and `updates` share the same keys (parameter names) and each entry has the
 *   parameter's shape (`[...P]`).
 * - `updates` are ADDED to the parameters: plain SGD returns `-lr * grad`.
 * - State is a flat record. Every key is `<param>::<slot>` (the slot is per-parameter state such as
 *   'm') or `::<slot>` (global state, shared by all parameters). Combinators namespace their
 *   children's slots ('w::0/m' is slot 'm' of the first transform of a chain), so keys stay unique
 *   and an owner (e.g. NlTransformOptimizer) can pick out the state of any subset of parameters.
 * - Pure: `update` returns new tensors only; it never mutates or disposes its inputs, and the state
 *   it returns has exactly the keys of the state it was given (`init(params)` for those params).
 * - `step` is the 1-based index of this update (1 on the first call). It is a host number so
 *   transforms can branch on it (everyK) without reading a tensor back from the device.
 */
import * as tf from '@tensorflow/tfjs';

/** Tensors by name: parameters, gradients, updates, or flat transform state. */
export type NamedTensors = Record<string, tf.Tensor>;

/** Values allowed in a transform config (configs are plain JSON so they serialise). */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export interface TransformResult {
  /** Same keys as `grads`; each added to its parameter by the caller. [...P] each. */
  updates: NamedTensors;
  /** Same keys as the `state` argument. */
  state: NamedTensors;
}

export interface GradientTransform {
  /** Registered name of the transform ('sgd', 'momentum', 'chain', ...). */
  readonly name: string;
  /** The transform's settings as JSON. For transforms built from registered names,
   * `{transform: name, config}` rebuilds an equivalent transform (see buildTransform). */
  readonly config: JsonObject;
  /** Initial state for `params` (new tensors; keys `<param>::<slot>` or `::<slot>`). */
  init(params: NamedTensors): NamedTensors;
  /** One step: gradients -> updates, state -> next state. `step` >= 1. */
  update(grads: NamedTensors, state: NamedTensors, params: NamedTensors, step: number): TransformResult;
}

/**
 * Builds a transform from a JSON config. `path` names the config in error messages
 * (e.g. 'NlTransformOptimizer.config'); factories validate every field and throw
 * `${path}.<field>: ...` on bad input.
 */
export type GradientTransformFactory = (config: Record<string, unknown>, path?: string) => GradientTransform;

// ---------------------------------------------------------------------------------------------
// State keys

/** Separates the parameter name from the slot in a state key. */
export const STATE_KEY_SEPARATOR = '::';

/** `<param>::<slot>`; an empty `param` makes a global key `::<slot>`. */
export function stateKey(param: string, slot: string): string {
  if (param.includes(STATE_KEY_SEPARATOR)) {
    throw new Error(`parameter name '${param}' must not contain '${STATE_KEY_SEPARATOR}' (it separates state keys)`);
  }
  if (slot.length === 0) throw new Error(`state slot for parameter '${param}' must be non-empty`);
  return `${param}${STATE_KEY_SEPARATOR}${slot}`;
}

/** Splits a state key at its first '::'. Throws if the key has none. */
export function parseStateKey(key: string): { param: string; slot: string } {
  const at = key.indexOf(STATE_KEY_SEPARATOR);
  if (at < 0 || at + STATE_KEY_SEPARATOR.length === key.length) {
    throw new Error(`state key '${key}' is not of the form '<param>::<slot>' (or '::<slot>' for global state)`);
  }
  return { param: key.slice(0, at), slot: key.slice(at + STATE_KEY_SEPARATOR.length) };
}

/** Moves every slot under namespace `ns`: 'w::m' -> 'w::ns/m'. Same tensors, new record. */
export function nestState(state: NamedTensors, ns: string): NamedTensors {
  const out: NamedTensors = {};
  for (const [k, v] of Object.entries(state)) {
    const { param, slot } = parseStateKey(k);
    out[stateKey(param, `${ns}/${slot}`)] = v;
  }
  return out;
}

/** The entries of namespace `ns` with the namespace removed: 'w::ns/m' -> 'w::m'. Same tensors. */
export function unnestState(state: NamedTensors, ns: string): NamedTensors {
  const out: NamedTensors = {};
  const prefix = `${ns}/`;
  for (const [k, v] of Object.entries(state)) {
    const { param, slot } = parseStateKey(k);
    if (slot.startsWith(prefix)) out[stateKey(param, slot.slice(prefix.length))] = v;
  }
  return out;
}

/** The entries belonging to `params` plus all global ('::slot') entries. Same tensors. */
export function selectState(state: NamedTensors, params: Iterable<string>): NamedTensors {
  const wanted = new Set(params);
  const out: NamedTensors = {};
  for (const [k, v] of Object.entries(state)) {
    const { param } = parseStateKey(k);
    if (param === '' || wanted.has(param)) out[k] = v;
  }
  return out;
}

/** Picks `names` out of a record (same tensors); throws naming `what` if one is missing. */
export function pickTensors(record: NamedTensors, names: readonly string[], what: string): NamedTensors {
  const out: NamedTensors = {};
  for (const n of names) {
    const t = record[n];
    if (t == null) throw new Error(`${what}: missing entry '${n}'`);
    out[n] = t;
  }
  return out;
}

/**
 * tf.tidy for a transform body: keeps the returned updates and state, disposes intermediates.
 * Every returned tensor must be new (created inside `fn`), never an input passed through.
 */
export function tidyResult(fn: () => TransformResult): TransformResult {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as TransformResult;
}

/** tf.tidy for an `init` body. */
export function tidyState(fn: () => NamedTensors): NamedTensors {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as NamedTensors;
}
