/**
 * Gradient-transform building blocks and combinators (optax-style):
 * - scale(f), scaleByLearningRate(lr), clipByGlobalNorm(maxNorm): stateless element-wise steps;
 * - chain(t1, t2, ...): feed each transform's updates to the next as its gradients;
 * - everyK(k, t): accumulate k gradient steps, then hand their SUM (default; Eq. 71's
 *   "sum over the chunk") or MEAN to `t` on every k-th step; emit zero updates in between.
 *   This is the CMS cadence (paper Section 7) for a level that updates every k optimizer steps;
 * - partition(labelFn, {label: t}): route each parameter, by name, to its own transform.
 * State of children is namespaced ('w::0/m' = slot 'm' of chain element 0) so keys never collide.
 */
import * as tf from '@tensorflow/tfjs';
import {
  type GradientTransform,
  type JsonObject,
  type NamedTensors,
  nestState,
  pickTensors,
  selectState,
  stateKey,
  tidyResult,
  tidyState,
  unnestState,
} from './transform';
import { checkOptions, fail, numberField, oneOfField } from './validate';

/** The `{transform, config}` spec of a child, as recorded in a combinator's config. */
function specOf(t: GradientTransform): JsonObject {
  return { transform: t.name, config: t.config };
}

function checkTransform(t: unknown, path: string): GradientTransform {
  const ok =
    typeof t === 'object' &&
    t !== null &&
    typeof (t as GradientTransform).init === 'function' &&
    typeof (t as GradientTransform).update === 'function' &&
    typeof (t as GradientTransform).name === 'string';
  if (!ok) fail(path, 'must be a GradientTransform (name, config, init, update)');
  return t as GradientTransform;
}

function checkStep(step: number, who: string): void {
  if (!Number.isInteger(step) || step < 1) throw new Error(`${who}: step must be an integer >= 1, got ${step}`);
}

// ---------------------------------------------------------------------------------------------
// Stateless scalings

/** updates = factor * grads. State: none. */
export function scale(factor: number, path = 'scale'): GradientTransform {
  const f = numberField({ factor }, 'factor', path);
  return {
    name: 'scale',
    config: { factor: f },
    init: () => ({}),
    update: (grads) =>
      tidyResult(() => {
        const updates: NamedTensors = {};
        for (const [k, g] of Object.entries(grads)) updates[k] = tf.mul(g, f); // [...P]
        return { updates, state: {} };
      }),
  };
}

/** updates = -learningRate * grads (the sign flip that turns a descent direction into an update). */
export function scaleByLearningRate(learningRate: number, path = 'scaleByLearningRate'): GradientTransform {
  const lr = numberField({ learningRate }, 'learningRate', path, { min: 0 });
  const inner = scale(-lr, path);
  return { ...inner, name: 'scaleByLearningRate', config: { learningRate: lr } };
}

/**
 * If the global L2 norm over ALL gradients passed to one update exceeds maxNorm, scales every
 * gradient by maxNorm / norm; otherwise passes them unchanged (as new tensors). Computed on the
 * device (no read-back): factor = maxNorm / max(norm, maxNorm). State: none.
 * Note: inside partition() the norm is over that partition's parameters only.
 */
export function clipByGlobalNorm(maxNorm: number, path = 'clipByGlobalNorm'): GradientTransform {
  const m = numberField({ maxNorm }, 'maxNorm', path, { above: 0 });
  return {
    name: 'clipByGlobalNorm',
    config: { maxNorm: m },
    init: () => ({}),
    update: (grads) =>
      tidyResult(() => {
        const gs = Object.values(grads);
        const updates: NamedTensors = {};
        if (gs.length === 0) return { updates, state: {} };
        const sq = tf.addN(gs.map((g) => tf.sum(tf.square(g)))); // [] sum of squares over every entry
        const norm = tf.sqrt(sq);
        const factor = tf.div(m, tf.maximum(norm, m)); // [] == 1 when norm <= maxNorm
        for (const [k, g] of Object.entries(grads)) updates[k] = tf.mul(g, factor);
        return { updates, state: {} };
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// chain

/** Applies transforms in order: the updates of t_i are the gradients of t_{i+1}. */
export function chain(...transforms: GradientTransform[]): GradientTransform {
  if (transforms.length === 0) fail('chain', 'needs at least one transform');
  transforms.forEach((t, i) => checkTransform(t, `chain[${i}]`));
  return {
    name: 'chain',
    config: { transforms: transforms.map(specOf) },
    init(params) {
      return tidyState(() => {
        const state: NamedTensors = {};
        transforms.forEach((t, i) => Object.assign(state, nestState(t.init(params), String(i))));
        return state;
      });
    },
    update(grads, state, params, step) {
      return tidyResult(() => {
        let g = grads;
        const next: NamedTensors = {};
        transforms.forEach((t, i) => {
          const r = t.update(g, unnestState(state, String(i)), params, step);
          Object.assign(next, nestState(r.state, String(i)));
          g = r.updates; // intermediates are disposed by the enclosing tidy
        });
        // The last transform's updates are new tensors already unless chain got an identity;
        // clone those that are inputs so the result never aliases `grads`.
        const updates: NamedTensors = {};
        for (const [k, u] of Object.entries(g)) updates[k] = u === grads[k] ? u.clone() : u;
        return { updates, state: next };
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// everyK

export type EveryKReduce = 'sum' | 'mean';
export const EVERY_K_REDUCE: readonly EveryKReduce[] = ['sum', 'mean'];

export interface EveryKOptions {
  /** How the k accumulated gradients are combined before `inner` sees them. Default 'sum' (Eq. 71). */
  reduce?: EveryKReduce;
}

/**
 * Accumulates gradients; on every k-th step (step % k == 0) passes their sum (or mean) to `inner`
 * and emits its updates, then clears the accumulator; emits zeros on the other steps.
 * `inner` sees its own step count (step / k), so it advances once per emitted update.
 * With inner = sgd(eta) and reduce 'sum' this is Eq. 71: the change at a boundary is eta times
 * the sum of the chunk's gradients, and the parameters are frozen in between.
 * State: '<param>::acc' [...P] plus the inner state under 'inner/'.
 */
export function everyK(k: number, inner: GradientTransform, options: EveryKOptions = {}, path = 'everyK'): GradientTransform {
  const kk = numberField({ k }, 'k', path, { integer: true, min: 1 });
  checkTransform(inner, `${path}.transform`);
  const reduce = oneOfField(checkOptions(options, ['reduce'], path), 'reduce', path, EVERY_K_REDUCE, 'sum');
  return {
    name: 'everyK',
    config: { k: kk, reduce, transform: specOf(inner) },
    init(params) {
      return tidyState(() => {
        const state: NamedTensors = nestState(inner.init(params), 'inner');
        for (const [n, p] of Object.entries(params)) state[stateKey(n, 'acc')] = tf.zerosLike(p); // [...P]
        return state;
      });
    },
    update(grads, state, params, step) {
      checkStep(step, 'everyK');
      return tidyResult(() => {
        const names = Object.keys(grads);
        const acc: NamedTensors = {};
        for (const n of names) {
          const key = stateKey(n, 'acc');
          const a = state[key];
          if (a == null) throw new Error(`everyK: state '${key}' is missing (was init called for '${n}'?)`);
          acc[n] = tf.add(a, grads[n]); // running sum of this chunk's gradients, [...P]
        }
        const innerState = unnestState(state, 'inner');
        const next: NamedTensors = {};
        const updates: NamedTensors = {};
        if (step % kk === 0) {
          const combined: NamedTensors = {};
          for (const n of names) combined[n] = reduce === 'mean' ? tf.div(acc[n], kk) : acc[n];
          const r = inner.update(combined, innerState, params, step / kk);
          Object.assign(next, nestState(r.state, 'inner'));
          for (const n of names) {
            updates[n] = r.updates[n];
            next[stateKey(n, 'acc')] = tf.zerosLike(acc[n]); // start the next chunk
          }
        } else {
          // Between boundaries: frozen parameters, inner memory untouched (copied: outputs are new).
          for (const [key, t] of Object.entries(nestState(innerState, 'inner'))) next[key] = t.clone();
          for (const n of names) {
            updates[n] = tf.zerosLike(grads[n]);
            next[stateKey(n, 'acc')] = acc[n];
          }
        }
        return { updates, state: next };
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// partition

/**
 * Routes each parameter by name: labelFn(name) picks the transform in `transforms` that updates
 * it. Each transform sees only its own parameters (e.g. a global-norm clip inside one label
 * clips over that label's parameters). State of label L is namespaced under 'L/'.
 */
export function partition(
  labelFn: (paramName: string) => string,
  transforms: Readonly<Record<string, GradientTransform>>,
  path = 'partition',
): GradientTransform {
  if (typeof labelFn !== 'function') fail(`${path}.labelFn`, 'must be a function (param name) -> label');
  const labels = Object.keys(transforms ?? {});
  if (labels.length === 0) fail(`${path}.transforms`, 'needs at least one label');
  for (const l of labels) {
    checkTransform(transforms[l], `${path}.transforms.${l}`);
    if (l.includes('/')) fail(`${path}.transforms.${l}`, "labels must not contain '/' (it separates state namespaces)");
  }
  const groupByLabel = (names: readonly string[]): Map<string, string[]> => {
    const groups = new Map<string, string[]>();
    for (const n of names) {
      const label = labelFn(n);
      if (!Object.prototype.hasOwnProperty.call(transforms, label)) {
        throw new Error(`${path}: parameter '${n}' got label ${JSON.stringify(label)}, which has no transform (labels: ${labels.join(', ')})`);
      }
      const g = groups.get(label);
      if (g) g.push(n);
      else groups.set(label, [n]);
    }
    return groups;
  };
  const config: JsonObject = { transforms: {} };
  for (const l of labels) (config.transforms as JsonObject)[l] = specOf(transforms[l]);
  return {
    name: 'partition',
    config,
    init(params) {
      return tidyState(() => {
        const state: NamedTensors = {};
        for (const [label, names] of groupByLabel(Object.keys(params))) {
          Object.assign(state, nestState(transforms[label].init(pickTensors(params, names, path)), label));
        }
        return state;
      });
    },
    update(grads, state, params, step) {
      return tidyResult(() => {
        const updates: NamedTensors = {};
        const next: NamedTensors = {};
        for (const [label, names] of groupByLabel(Object.keys(grads))) {
          const sub = selectState(unnestState(state, label), names);
          const r = transforms[label].update(pickTensors(grads, names, path), sub, pickTensors(params, names, path), step);
          // Guard against a child that passes a gradient through: outputs must not alias inputs.
          for (const n of names) updates[n] = r.updates[n] === grads[n] ? grads[n].clone() : r.updates[n];
          Object.assign(next, nestState(r.state, label));
        }
        // Labels with no parameter in this call keep their state (copied: outputs are new tensors).
        for (const [key, t] of Object.entries(state)) if (!(key in next)) next[key] = t.clone();
        return { updates, state: next };
      });
    },
  };
}
