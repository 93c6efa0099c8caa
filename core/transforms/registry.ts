/**
 * Transforms by name, so configs (level specs, NlTransformOptimizer, presets) can name them:
 *   { transform: 'momentum', config: { learningRate: 0.01, beta: 0.9 } }
 * Built-ins live in TRANSFORMS; plugins add theirs through the manifest's `transforms`, which the
 * registry passes to registerTransformFactory(). buildTransform() resolves a spec, recursively
 * for the combinators ('chain', 'everyK', 'partition'), through both.
 *
 * Names must not contain '_': tfjs-layers camel-cases strings containing '_' when it loads a
 * saved optimizer config, which would rename the transform.
 */
import { chain, clipByGlobalNorm, EVERY_K_REDUCE, everyK, partition, scale, scaleByLearningRate } from './combinators';
import { momentum, type MomentumConfig } from './momentum';
import { scaleBySchedule } from './schedules';
import { sgd, type SgdConfig } from './sgd';
import type { GradientTransform, GradientTransformFactory, JsonObject } from './transform';
import { checkOptions, fail, numberField, oneOfField } from './validate';

/** A serialisable reference to a transform: its registered name and its JSON config. */
export interface TransformSpec {
  transform: string;
  config?: JsonObject;
}

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

const NAME_RE = /^[A-Za-z][A-Za-z0-9]*([-./][A-Za-z0-9]+)*$/;

function specArray(raw: unknown, path: string): unknown[] {
  if (!Array.isArray(raw) || raw.length === 0) fail(path, 'must be a non-empty array of {transform, config} specs');
  return raw;
}

/** Built-in factories. Config forms:
 * - sgd {learningRate}; momentum {learningRate, beta?, nesterov?}
 * - scale {factor}; scaleByLearningRate {learningRate}; clipByGlobalNorm {maxNorm}
 * - scaleBySchedule {schedule: {name, ...}} (schedules.ts: constant, linear, cosineDecay, warmupConstant, warmupCosineDecay)
 * - chain {transforms: Spec[]}; everyK {k, reduce?: 'sum'|'mean', transform: Spec}
 * - partition {rules: [{match: RegExp source, label}], default?: label, transforms: {label: Spec}}
 *   (first rule whose regex matches the parameter name wins, else `default`). */
export const TRANSFORMS: Readonly<Record<string, GradientTransformFactory>> = Object.freeze({
  sgd: (c, path = 'sgd') => sgd(c as unknown as SgdConfig, path),
  momentum: (c, path = 'momentum') => momentum(c as unknown as MomentumConfig, path),
  scale: (c, path = 'scale') => scale(numberField(checkOptions(c, ['factor'], path), 'factor', path), path),
  scaleByLearningRate: (c, path = 'scaleByLearningRate') =>
    scaleByLearningRate(numberField(checkOptions(c, ['learningRate'], path), 'learningRate', path, { min: 0 }), path),
  scaleBySchedule: (c, path = 'scaleBySchedule') => scaleBySchedule(checkOptions(c, ['schedule'], path).schedule as never, path),
  clipByGlobalNorm: (c, path = 'clipByGlobalNorm') =>
    clipByGlobalNorm(numberField(checkOptions(c, ['maxNorm'], path), 'maxNorm', path, { above: 0 }), path),
  chain: (c, path = 'chain') => {
    const o = checkOptions(c, ['transforms'], path);
    const specs = specArray(o.transforms, `${path}.transforms`);
    return chain(...specs.map((s, i) => buildTransform(s, `${path}.transforms[${i}]`)));
  },
  everyK: (c, path = 'everyK') => {
    const o = checkOptions(c, ['k', 'reduce', 'transform'], path);
    const k = numberField(o, 'k', path, { integer: true, min: 1 });
    const reduce = oneOfField(o, 'reduce', path, EVERY_K_REDUCE, 'sum');
    if (o.transform === undefined) fail(`${path}.transform`, 'is required (the {transform, config} spec to apply every k steps)');
    return everyK(k, buildTransform(o.transform, `${path}.transform`), { reduce }, path);
  },
  partition: (c, path = 'partition') => partitionFromConfig(c, path),
});

function partitionFromConfig(c: Record<string, unknown>, path: string): GradientTransform {
  const o = checkOptions(c, ['rules', 'default', 'transforms'], path);
  const tRaw = o.transforms;
  if (typeof tRaw !== 'object' || tRaw === null || Array.isArray(tRaw)) {
    fail(`${path}.transforms`, 'must be an object {label: {transform, config}}');
  }
  const transforms: Record<string, GradientTransform> = {};
  for (const [label, spec] of Object.entries(tRaw as Record<string, unknown>)) {
    transforms[label] = buildTransform(spec, `${path}.transforms.${label}`);
  }
  const rulesRaw = o.rules ?? [];
  if (!Array.isArray(rulesRaw)) fail(`${path}.rules`, 'must be an array of {match, label}');
  const rules = rulesRaw.map((r, i) => {
    const rp = `${path}.rules[${i}]`;
    const ro = checkOptions(r, ['match', 'label'], rp);
    if (typeof ro.match !== 'string') fail(`${rp}.match`, `must be a RegExp source string, got ${JSON.stringify(ro.match)}`);
    let re: RegExp;
    try {
      re = new RegExp(ro.match);
    } catch (e) {
      fail(`${rp}.match`, `invalid RegExp: ${(e as Error).message}`);
    }
    if (typeof ro.label !== 'string' || !hasOwn(transforms, ro.label)) {
      fail(`${rp}.label`, `must be one of the labels of ${path}.transforms (${Object.keys(transforms).join(', ')}), got ${JSON.stringify(ro.label)}`);
    }
    return { re, label: ro.label, match: ro.match };
  });
  const dflt = o.default;
  if (dflt !== undefined && (typeof dflt !== 'string' || !hasOwn(transforms, dflt))) {
    fail(`${path}.default`, `must be one of the labels of ${path}.transforms (${Object.keys(transforms).join(', ')}), got ${JSON.stringify(dflt)}`);
  }
  const labelFn = (name: string): string => {
    for (const r of rules) if (r.re.test(name)) return r.label;
    if (dflt !== undefined) return dflt as string;
    throw new Error(`${path}: parameter '${name}' matches no rule (${rules.map((r) => r.match).join(', ') || 'none'}) and there is no default label`);
  };
  const t = partition(labelFn, transforms, path);
  const config: JsonObject = { rules: rules.map((r) => ({ match: r.match, label: r.label })), transforms: t.config.transforms };
  if (dflt !== undefined) config.default = dflt as string;
  return { ...t, config };
}

const registered = new Map<string, { factory: GradientTransformFactory; owner?: string }>();

/**
 * Adds a named factory (called by the plugin registry for each manifest's `transforms`; `owner`,
 * e.g. the plugin name, appears in conflict errors). Refuses built-in names, names already
 * registered with another factory, and names with '_'. Registering the same factory under the same
 * name again is a no-op (runtimes may be created more than once in a process).
 */
export function registerTransformFactory(name: string, factory: GradientTransformFactory, owner?: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new Error(
      `registerTransformFactory: name ${JSON.stringify(name)} must be letters/digits, optionally joined by '-', '.' or '/' ` +
        "(no '_': tfjs-layers camel-cases it when loading a saved config)",
    );
  }
  if (typeof factory !== 'function') throw new Error(`registerTransformFactory('${name}'): factory must be a function`);
  if (hasOwn(TRANSFORMS, name)) {
    throw new Error(`registerTransformFactory: '${name}' is a built-in transform and cannot be replaced`);
  }
  const prev = registered.get(name);
  if (prev && prev.factory !== factory) {
    const by = (o?: string): string => (o ? ` by '${o}'` : '');
    throw new Error(`registerTransformFactory: '${name}'${by(owner)} is already registered${by(prev.owner)}`);
  }
  if (!prev) registered.set(name, { factory, owner });
}

/** Removes a registered (non built-in) factory; returns whether it was there. */
export function unregisterTransformFactory(name: string): boolean {
  return registered.delete(name);
}

/** Built-in and registered names. */
export function transformNames(): string[] {
  return [...Object.keys(TRANSFORMS), ...registered.keys()];
}

/** The factory for `name`, or undefined. */
export function getTransformFactory(name: string): GradientTransformFactory | undefined {
  return hasOwn(TRANSFORMS, name) ? TRANSFORMS[name] : registered.get(name)?.factory;
}

/**
 * Builds the transform a spec names. Errors name the field: `${path}.transform` for an unknown
 * name, `${path}.config.<field>` for a bad option.
 */
export function buildTransform(spec: unknown, path = 'transform'): GradientTransform {
  const o = checkOptions(spec, ['transform', 'config'], path);
  const name = o.transform;
  if (typeof name !== 'string') fail(`${path}.transform`, `must be a transform name (string), got ${JSON.stringify(name)}`);
  const factory = getTransformFactory(name);
  if (!factory) fail(`${path}.transform`, `unknown transform '${name}' (known: ${transformNames().join(', ')})`);
  const config = o.config ?? {};
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    fail(`${path}.config`, `must be an object, got ${JSON.stringify(config)}`);
  }
  const t = factory(config as Record<string, unknown>, `${path}.config`);
  if (!t || typeof t.init !== 'function' || typeof t.update !== 'function') {
    fail(`${path}.transform`, `factory '${name}' did not return a GradientTransform`);
  }
  return t;
}

/** buildTransform({transform: name, config}, path): the transform a name and config describe. */
export function createTransform(name: string, config: Record<string, unknown> = {}, path = 'transform'): GradientTransform {
  return buildTransform({ transform: name, config }, path);
}
