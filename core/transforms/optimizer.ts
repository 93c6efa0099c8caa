/**
 * NlTransformOptimizer: a tf.Optimizer that runs a GradientTransform, so any transform (and any
 * plugin transform registered by name) works in `model.compile({optimizer})` + `model.fit`, in
 * `optimizer.minimize`, and in tfjs-layers model save/load with the optimizer included.
 *
 * - Built from a serialisable spec `{transform: name, config: {...}}` resolved by buildTransform
 *   (built-ins + registerTransformFactory).
 * - State lives in non-trainable tf.Variables, created lazily the first time applyGradients sees a
 *   variable (originalName = state key '<variable name>::<slot>'), updated with assign().
 * - The step counter is tfjs's own `iterations` (a host number, so transforms branch on it without a
 *   device read-back); transforms get step = iterations + 1. It is saved as the first weight ('iter'),
 *   as every tfjs optimizer does.
 * - getWeights order: ['iter', global state, then each variable's state in the order variables
 *   were first seen]; names are the state keys. setWeights restores by name, or, when none of the
 *   saved variable names is being updated (tfjs-layers renames the variables of a model loaded into
 *   a process that already holds one: 'dense_Dense1/kernel' -> 'dense_Dense1/kernel_1'), by
 *   position, as tfjs's own optimizers do: the i-th saved variable with state goes to the i-th
 *   variable for which the transform creates state.
 * - getConfig() is the spec, with strings containing '_' escaped (see the codec below).
 */
import * as tf from '@tensorflow/tfjs';
import { buildTransform, type TransformSpec } from './registry';
import {
  type GradientTransform,
  type JsonObject,
  type JsonValue,
  type NamedTensors,
  parseStateKey,
  STATE_KEY_SEPARATOR,
} from './transform';
import { assertJson, checkOptions, copyJson, fail } from './validate';
import { registerSerializable } from '../serialization';
import { refuseUnknownKeys } from '../validate';

const WHERE = 'NlTransformOptimizer';

/** tfjs's {name, tensor} pair (not re-exported by @tensorflow/tfjs). */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

// ---------------------------------------------------------------------------------------------
// Config codec. tfjs-layers stores getConfig() as-is when saving a model, and camel-cases every
// key and string value containing '_' when loading it ('dense_Dense1' -> 'denseDense1'). Strings
// and keys containing '_' (or starting with '%') are therefore written as '%' + the string with
// '%' -> '%25' and '_' -> '%5F', which that conversion leaves alone; fromConfig decodes them.

function encodeString(s: string): string {
  if (!s.includes('_') && !s.startsWith('%')) return s;
  return '%' + s.replace(/[%_]/g, (c) => (c === '%' ? '%25' : '%5F'));
}

function decodeString(s: string): string {
  if (!s.startsWith('%')) return s;
  return s.slice(1).replace(/%(25|5F)/g, (m) => (m === '%25' ? '%' : '_'));
}

function mapStrings(v: JsonValue, f: (s: string) => string): JsonValue {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((e) => mapStrings(e, f));
  if (v !== null && typeof v === 'object') {
    const out: JsonObject = {};
    for (const [k, e] of Object.entries(v)) out[f(k)] = mapStrings(e, f);
    return out;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------

interface StateSlot {
  /** State key '<param>::<slot>' (the tfjs "originalName"). */
  key: string;
  variable: tf.Variable;
}

export class NlTransformOptimizer extends tf.Optimizer {
  static className = 'NlTransformOptimizer';

  private spec!: { transform: string; config: JsonObject };
  private transform!: GradientTransform;
  /** State variables by key, in creation order (the getWeights order). */
  private slots!: Map<string, StateSlot>;
  /** Variables whose state has been created. */
  private initialised!: Set<string>;
  /** Variable names in the order they were first seen (positional restore). */
  private paramOrder!: string[];
  /** State restored by setWeights and not yet matched to a variable (kept tensors). */
  private pending!: Map<string, tf.Tensor>;

  /** `spec`: `{transform: registered name, config: JSON}`. */
  constructor(spec: TransformSpec) {
    super();
    const o = checkOptions(spec, ['transform', 'config'], WHERE);
    assertJson(o.config ?? {}, `${WHERE}.config`);
    this.spec = { transform: o.transform as string, config: copyJson((o.config ?? {}) as JsonObject) };
    this.transform = buildTransform(this.spec, WHERE);
    this.slots = new Map();
    this.initialised = new Set();
    this.paramOrder = [];
    this.pending = new Map();
  }

  /** The transform this optimizer runs (read-only use: calling its update does not touch this optimizer). */
  get gradientTransform(): GradientTransform {
    return this.transform;
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const pairs: Array<[string, tf.Tensor | null | undefined]> = Array.isArray(variableGradients)
      ? variableGradients.map((v) => [v.name, v.tensor])
      : Object.entries(variableGradients);
    const live = pairs.filter((p): p is [string, tf.Tensor] => p[1] != null); // tfjs skips null gradients
    const names = live.map(([n]) => n);
    if (new Set(names).size !== names.length) fail(`${WHERE}.applyGradients`, 'the same variable appears twice');
    const registered = tf.engine().registeredVariables;
    const vars: Record<string, tf.Variable> = {};
    for (const n of names) {
      const v = registered[n];
      if (v == null) fail(`${WHERE}.applyGradients`, `no registered variable named '${n}'`);
      if (n.includes(STATE_KEY_SEPARATOR)) fail(`${WHERE}.applyGradients`, `variable name '${n}' must not contain '${STATE_KEY_SEPARATOR}'`);
      vars[n] = v;
    }
    if (names.length > 0) {
      this.ensureState(names, vars);
      const step = this.iterations + 1;
      tf.tidy(() => {
        const grads: NamedTensors = {};
        for (const [n, g] of live) grads[n] = g; // [...P] each
        const state: NamedTensors = {};
        const updating = new Set(names);
        for (const s of this.slots.values()) {
          const { param } = parseStateKey(s.key);
          if (param === '' || updating.has(param)) state[s.key] = s.variable;
        }
        const r = this.transform.update(grads, state, vars, step);
        this.checkResult(r.updates, r.state, grads, state);
        for (const n of names) vars[n].assign(tf.add(vars[n], r.updates[n])); // updates are added
        for (const [k, t] of Object.entries(r.state)) this.slots.get(k)!.variable.assign(t);
      });
    }
    this.incrementIterations();
  }

  /**
   * Creates state for variables seen for the first time, taking restored (setWeights) values where
   * they exist. Everything is checked before anything is created, so a failure changes nothing.
   */
  private ensureState(names: readonly string[], vars: Record<string, tf.Variable>): void {
    const fresh = names.filter((n) => !this.initialised.has(n));
    if (fresh.length === 0) return;
    tf.tidy(() => {
      const params: NamedTensors = {};
      for (const n of fresh) params[n] = vars[n];
      const init = this.transform.init(params);
      const pending = this.pending.size > 0 ? this.matchPending(fresh, init) : this.pending;
      for (const [key, t] of Object.entries(init)) {
        const { param } = parseStateKey(key);
        if (param !== '' && !fresh.includes(param)) {
          fail(WHERE, `transform '${this.transform.name}' init returned state '${key}' for a parameter it was not given`);
        }
        const have = this.slots.get(key)?.variable ?? pending.get(key);
        if (have) checkShape(have, t, key);
      }
      for (const key of pending.keys()) {
        const { param } = parseStateKey(key);
        if ((param === '' || fresh.includes(param)) && !(key in init)) {
          fail(`${WHERE}.setWeights`, `restored state '${key}' is not state of transform '${this.transform.name}'`);
        }
      }
      for (const [key, t] of Object.entries(init)) {
        if (this.slots.has(key)) continue; // global state created earlier
        const restored = pending.get(key);
        // Non-trainable: minimize() without a varList must not differentiate optimizer state.
        this.slots.set(key, { key, variable: tf.variable(restored ?? t, false) });
        if (restored) {
          restored.dispose(); // the variable holds its own reference to the data
          pending.delete(key);
        }
      }
      this.pending = pending;
    });
    for (const n of fresh) {
      this.initialised.add(n);
      this.paramOrder.push(n);
    }
  }

  /**
   * Pending (restored) state keyed by current variable names. By name when any saved name is
   * being updated; otherwise by position: the i-th saved variable with state becomes the i-th
   * fresh variable for which the transform creates state (variables without state, e.g. under
   * sgd, are skipped on both sides). Returns a new map; this.pending is not modified.
   */
  private matchPending(fresh: readonly string[], init: NamedTensors): Map<string, tf.Tensor> {
    const saved: string[] = [];
    for (const key of this.pending.keys()) {
      const { param } = parseStateKey(key);
      if (param !== '' && !saved.includes(param)) saved.push(param);
    }
    if (saved.length === 0 || saved.some((p) => fresh.includes(p))) return new Map(this.pending);
    const withState = new Set(Object.keys(init).map((k) => parseStateKey(k).param));
    const stateful = fresh.filter((n) => withState.has(n));
    if (saved.length !== stateful.length) {
      fail(
        `${WHERE}.setWeights`,
        `restored state is for variables [${saved.join(', ')}], which match neither by name nor by position ` +
          `the ${stateful.length} variables with state among those being updated [${fresh.join(', ')}]`,
      );
    }
    const renamed = new Map<string, tf.Tensor>();
    for (const [key, t] of this.pending) {
      const { param, slot } = parseStateKey(key);
      renamed.set(param === '' ? key : `${stateful[saved.indexOf(param)]}${STATE_KEY_SEPARATOR}${slot}`, t);
    }
    return renamed;
  }

  private checkResult(updates: NamedTensors, next: NamedTensors, grads: NamedTensors, state: NamedTensors): void {
    const who = `${WHERE}: transform '${this.transform.name}'`;
    for (const [n, g] of Object.entries(grads)) {
      const u = updates[n];
      if (u == null) fail(who, `returned no update for '${n}'`);
      if (!tf.util.arraysEqual(u.shape, g.shape)) fail(who, `update for '${n}' has shape [${u.shape}], expected [${g.shape}]`);
    }
    for (const [k, t] of Object.entries(next)) {
      const s = state[k];
      if (s == null) fail(who, `returned state '${k}' that it was not given`);
      if (!tf.util.arraysEqual(t.shape, s.shape)) fail(who, `state '${k}' changed shape from [${s.shape}] to [${t.shape}]`);
    }
  }

  /**
   * ['iter', global state, then each variable's state in the order variables were first seen].
   * The tensors are live: copy them to keep a snapshot; do not dispose them.
   */
  override async getWeights(): Promise<NamedTensor[]> {
    const byParam = new Map<string, NamedTensor[]>([['', []], ...this.paramOrder.map((p): [string, NamedTensor[]] => [p, []])]);
    for (const s of this.slots.values()) byParam.get(parseStateKey(s.key).param)!.push({ name: s.key, tensor: s.variable });
    const out: NamedTensor[] = [await this.saveIterations()];
    for (const list of byParam.values()) out.push(...list);
    for (const [key, t] of this.pending) out.push({ name: key, tensor: t });
    return out;
  }

  /**
   * Restores `[iter, ...state]` (copies the tensors, so the caller may dispose them). Existing state
   * is dropped; restored state is matched to variables on the next applyGradients (see header).
   */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    if (!Array.isArray(weightValues) || weightValues.length === 0) {
      fail(`${WHERE}.setWeights`, "expects [iterations, ...state] (at least the 'iter' entry)");
    }
    const rest = await this.extractIterations(weightValues);
    const seen = new Set<string>();
    for (const w of rest) {
      try {
        parseStateKey(w.name);
      } catch (e) {
        fail(`${WHERE}.setWeights`, (e as Error).message);
      }
      if (seen.has(w.name)) fail(`${WHERE}.setWeights`, `state '${w.name}' appears twice`);
      seen.add(w.name);
    }
    this.disposeState();
    for (const w of rest) this.pending.set(w.name, tf.keep(w.tensor.clone()));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return mapStrings(copyJson(this.spec as unknown as JsonObject), encodeString) as tf.serialization.ConfigDict;
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    // Only our two fields: tfjs-layers adds `customObjects` (class constructors) when deserialising; any
    // other key (a typo) is refused with its path, as the constructor does.
    refuseUnknownKeys(config, ['transform', 'config', 'customObjects'], WHERE);
    const own: JsonObject = { transform: config.transform as JsonValue };
    if (config.config !== undefined) own.config = config.config as JsonValue;
    return new cls(mapStrings(own, decodeString));
  }

  override dispose(): void {
    this.disposeState();
    super.dispose();
  }

  private disposeState(): void {
    for (const s of this.slots.values()) s.variable.dispose();
    for (const t of this.pending.values()) t.dispose();
    this.slots.clear();
    this.pending.clear();
    this.initialised.clear();
    this.paramOrder = [];
  }
}

function checkShape(have: tf.Tensor, want: tf.Tensor, key: string): void {
  if (!tf.util.arraysEqual(have.shape, want.shape)) {
    fail(`${WHERE}.setWeights`, `state '${key}' has shape [${have.shape}], but the transform expects [${want.shape}]`);
  }
}

/** `new NlTransformOptimizer({transform: name, config})`. */
export function transformOptimizer(name: string, config: JsonObject = {}): NlTransformOptimizer {
  return new NlTransformOptimizer({ transform: name, config });
}

// Importing the class registers it with tfjs serialisation (tfjs convention; idempotent).
registerSerializable(NlTransformOptimizer, 'core');
