/**
 * Config validation kit shared by the registry, the CLI and plugins: errors name the full field path
 * ("model.blocks[0].config.mixer.config.chunkSize: ..."). Library code (tfjs only, no Node).
 *
 *  - `ConfigError` / `failAt(path, msg)`: one-line errors that carry their path.
 *  - `refuseUnknownKeys(obj, allowed, path)`: typos are errors, with the allowed keys listed.
 *  - `checkLayerConfigKeys(layer, given, path)`: for any tfjs layer built from a JSON config, every key of
 *    the given config must be one the layer reports back in getConfig() (recursively: nested objects,
 *    arrays of objects, and sub-layers given as {className, config} that the layer exposes as a property
 *    of the same name, e.g. NlResidualBlock's mixer / ffn). This refuses unknown keys for every layer
 *    class, first- or third-party, without the class listing its keys twice.
 *  - `refuseUnreportedLayerArgs(layer, args, path)`: the same rule inside a layer's constructor (top-level
 *    keys), so a config reaching `new cls(config)` by any road (tfjs deserialisation, direct construction)
 *    is checked, not only configs passed through the registry.
 *  - The value-schema kit: `Check<T>` = (value, path) -> T or a ConfigError naming the path, made by
 *    `is.posInt`, `is.int(min)`, `is.number(rule)`, `is.bool()`, `is.oneOf(list)`; composed with
 *    `withDefault` / `nullable`, and applied to an object's fields with `fields(obj, schema, path)`
 *    (each key's error is `path.key: must be ..., got ...`). Every plugin config, the transform options
 *    (core/transforms/validate.ts) and the core level specs use it, so the wording is one vocabulary:
 *    'a positive integer', 'an integer >= 0', 'a finite number >= 0', 'a number in [0, 1)', 'a boolean',
 *    "one of 'a', 'b'".
 *  - `layerChunkSizes(layer)` / `layerLevelPeriods(layer)`: the chunk sizes (any numeric config key ending
 *    in 'chunkSize' / 'ChunkSize') and the in-context level periods (config.levels[i].period) a layer
 *    reports, for the cross-field checks of the chunked algorithms (checkChunkedBlock).
 */
import * as tf from '@tensorflow/tfjs';

/** A validation error with the field path it is about. */
export class ConfigError extends Error {
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'ConfigError';
    this.path = path;
  }
}

export function failAt(path: string, msg: string): never {
  throw new ConfigError(path, msg);
}

export const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Appends a key to a path: 'a' + 'b' = 'a.b', 'a' + 0 = 'a[0]'. */
export function joinPath(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

/** Refuses a key of `obj` not in `allowed`: `path.key: unknown key (allowed: ...)` (`noun` 'option' for option bags). */
export function refuseUnknownKeys(obj: Record<string, unknown>, allowed: readonly string[], path: string, noun: 'key' | 'option' = 'key'): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) failAt(joinPath(path, k), `unknown ${noun} (allowed: ${allowed.join(', ') || 'none'})`);
}

// ---- value-schema kit ------------------------------------------------------------------------------

/** Validates one value: returns it (typed, possibly defaulted) or throws a ConfigError naming `path`. */
export type Check<T> = (value: unknown, path: string) => T;

/** `path: must be <what>, got <value as JSON>`: the one wording of a refused value. */
export function expected(path: string, what: string, value: unknown): never {
  return failAt(path, `must be ${what}, got ${JSON.stringify(value)}`);
}

/** Bounds of a number check (NumberRule of core/transforms/validate.ts adds its default). */
export interface NumberSpec {
  /** Only integers. */
  integer?: boolean;
  /** Inclusive lower bound. */
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  /** Inclusive upper bound. */
  max?: number;
  /** Exclusive upper bound. */
  below?: number;
  /** What the error says is expected, when the default description does not fit a caller's wording. */
  expect?: string;
}

/**
 * The default description of a NumberSpec: 'a positive integer' (integer, min 1), 'an integer >= 0',
 * 'a finite number > 0', 'a number in [0, 1)' (both ends bounded), 'a finite number'.
 */
export function describeNumber(rule: NumberSpec): string {
  if (rule.expect !== undefined) return rule.expect;
  const lo = rule.min !== undefined ? `>= ${rule.min}` : rule.above !== undefined ? `> ${rule.above}` : '';
  const hasHi = rule.max !== undefined || rule.below !== undefined;
  if (lo && hasHi) {
    const open = rule.min !== undefined ? `[${rule.min}` : `(${rule.above}`;
    const close = rule.max !== undefined ? `${rule.max}]` : `${rule.below})`;
    return `${rule.integer ? 'an integer' : 'a number'} in ${open}, ${close}`;
  }
  if (rule.integer && rule.min === 1 && !hasHi) return 'a positive integer';
  const hi = rule.max !== undefined ? `<= ${rule.max}` : rule.below !== undefined ? `< ${rule.below}` : '';
  return [rule.integer ? 'an integer' : 'a finite number', lo, hi].filter(Boolean).join(' ');
}

/** True when `v` is a finite number obeying `rule`. */
export function meetsNumberRule(v: unknown, rule: NumberSpec): v is number {
  return (
    typeof v === 'number' &&
    Number.isFinite(v) &&
    (!rule.integer || Number.isInteger(v)) &&
    (rule.min === undefined || v >= rule.min) &&
    (rule.above === undefined || v > rule.above) &&
    (rule.max === undefined || v <= rule.max) &&
    (rule.below === undefined || v < rule.below)
  );
}

/** Quotes a list of allowed strings: "'a', 'b'". */
export const quoteList = (allowed: readonly string[]): string => allowed.map((a) => `'${a}'`).join(', ');

/** The checks of the kit. */
export const is = {
  /** A finite number obeying `rule`. */
  number(rule: NumberSpec = {}): Check<number> {
    const what = describeNumber(rule);
    return (v, path) => (meetsNumberRule(v, rule) ? v : expected(path, what, v));
  },
  /** An integer >= `min` (default 1: 'a positive integer'). */
  int(min = 1, expect?: string): Check<number> {
    return is.number({ integer: true, min, expect });
  },
  /** An integer >= 1. */
  posInt: ((v, path) => (meetsNumberRule(v, { integer: true, min: 1 }) ? v : expected(path, 'a positive integer', v))) as Check<number>,
  /** true or false ('a boolean' unless `expect` words it otherwise). */
  bool(expect = 'a boolean'): Check<boolean> {
    return (v, path) => (typeof v === 'boolean' ? v : expected(path, expect, v));
  },
  /** One of the strings of `allowed`. */
  oneOf<T extends string>(allowed: readonly T[]): Check<T> {
    return (v, path) => (typeof v === 'string' && (allowed as readonly string[]).includes(v) ? (v as T) : expected(path, `one of ${quoteList(allowed)}`, v));
  },
};

/** `check`, except that a missing value gives `dflt`; missing = undefined or null ('nullish', as `??`), or
 * undefined only ('undefined': null is then checked, and refused by most checks). */
export function withDefault<T>(check: Check<T>, dflt: T, missing: 'nullish' | 'undefined' = 'nullish'): Check<T> {
  return (v, path) => (v === undefined || (missing === 'nullish' && v === null) ? dflt : check(v, path));
}

/** `check`, except that undefined or null gives null (e.g. a width resolved later from the input). */
export function nullable<T>(check: Check<T>): Check<T | null> {
  return (v, path) => (v === undefined || v === null ? null : check(v, path));
}

/** A schema: one check per field. */
export type Schema<T> = { [K in keyof T]: Check<T[K]> };

/**
 * Applies `schema` to the fields of `obj` it names (joinPath(path, key) in errors), in the schema's
 * order; keys of `obj` the schema does not name are not looked at (refuse them with refuseUnknownKeys
 * where the caller owns every key).
 */
export function fields<T>(obj: Record<string, unknown>, schema: Schema<T>, path: string): T {
  const out = {} as T;
  for (const k of Object.keys(schema) as Array<keyof T & string>) out[k] = schema[k](obj[k], joinPath(path, k));
  return out;
}

/** Keys every tfjs layer accepts (base Layer args) besides its own config. */
export const BASE_LAYER_KEYS: readonly string[] = ['name', 'trainable', 'dtype', 'inputShape', 'batchInputShape', 'batchSize', 'inputDType', 'weights', 'inputDim'];

/** Constructor args of a tfjs layer that are not its own config: the base Layer args, plus `customObjects`
 * (tfjs-layers adds it to a config when deserialising). */
export const LAYER_ARG_KEYS: readonly string[] = [...BASE_LAYER_KEYS, 'customObjects'];

/**
 * For a layer's constructor, after it has resolved its options: refuses a key of `args` that the layer does
 * not report in getConfig() and that is no tfjs Layer arg, naming `path.key` (a typo such as `chunkSzie` is
 * an error, not a silent default; `new cls(config)` in tfjs deserialisation runs this too). Keys given as
 * undefined are ignored. Nested options are the layer's own resolver's business (they name their paths).
 */
export function refuseUnreportedLayerArgs(layer: tf.layers.Layer, args: unknown, path: string): void {
  if (!isPlainObject(args)) return;
  const reported = Object.keys(layer.getConfig());
  const own = reported.filter((k) => !BASE_LAYER_KEYS.includes(k));
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined || LAYER_ARG_KEYS.includes(k) || reported.includes(k)) continue;
    failAt(joinPath(path, k), `unknown key (allowed: ${own.join(', ') || 'none'})`);
  }
}

const isLayerSpec = (v: unknown): v is { className: string; config?: unknown } => isPlainObject(v) && typeof v.className === 'string' && Object.keys(v).every((k) => k === 'className' || k === 'config');

function checkKeysAgainst(given: unknown, reported: unknown, path: string): void {
  if (isPlainObject(given) && isPlainObject(reported)) {
    for (const [k, v] of Object.entries(given)) {
      if (!(k in reported)) failAt(joinPath(path, k), `unknown key (allowed: ${Object.keys(reported).filter((x) => !BASE_LAYER_KEYS.includes(x)).join(', ')})`);
      checkKeysAgainst(v, reported[k], joinPath(path, k));
    }
  } else if (Array.isArray(given) && Array.isArray(reported) && given.length === reported.length) {
    given.forEach((g, i) => checkKeysAgainst(g, reported[i], joinPath(path, i)));
  }
}

/**
 * Refuses keys of `given` (the JSON config a layer was constructed from) that the layer does not report
 * in getConfig(); recurses into sub-layers given as {className, config} and exposed as layer[key].
 */
export function checkLayerConfigKeys(layer: tf.layers.Layer, given: unknown, path: string): void {
  if (given === undefined || given === null) return;
  if (!isPlainObject(given)) failAt(path, `must be an object, got ${JSON.stringify(given)}`);
  const reported = layer.getConfig() as Record<string, unknown>;
  for (const [k, v] of Object.entries(given)) {
    const p = joinPath(path, k);
    if (BASE_LAYER_KEYS.includes(k)) continue;
    if (!(k in reported)) failAt(p, `unknown key for ${layer.getClassName()} (allowed: ${Object.keys(reported).filter((x) => !BASE_LAYER_KEYS.includes(x)).join(', ')})`);
    const sub = (layer as unknown as Record<string, unknown>)[k];
    if (v === null && sub instanceof tf.layers.Layer) failAt(p, 'must be {className, config} (omit the key for the default), got null');
    if (isPlainObject(v) && 'className' in v && sub instanceof tf.layers.Layer) {
      if (!isLayerSpec(v)) refuseUnknownKeys(v, ['className', 'config'], p);
      checkLayerConfigKeys(sub, (v as { config?: unknown }).config, joinPath(p, 'config'));
    } else checkKeysAgainst(v, reported[k], p);
  }
}

/** Chunk sizes a layer reports (numeric getConfig keys ending in 'chunkSize'), by key. */
export function layerChunkSizes(layer: tf.layers.Layer): Array<{ key: string; size: number }> {
  const c = layer.getConfig() as Record<string, unknown>;
  return Object.entries(c)
    .filter(([k, v]) => /chunkSize$/i.test(k) && typeof v === 'number' && Number.isInteger(v) && v > 0)
    .map(([key, size]) => ({ key, size: size as number }));
}

/** In-context level periods a layer reports (getConfig().levels[i].period > 0). */
export function layerLevelPeriods(layer: tf.layers.Layer): Array<{ index: number; period: number }> {
  const lv = (layer.getConfig() as Record<string, unknown>).levels;
  if (!Array.isArray(lv)) return [];
  return lv.flatMap((l, index) => (isPlainObject(l) && typeof l.period === 'number' && l.period > 0 ? [{ index, period: l.period }] : []));
}

/**
 * Cross-field checks of one block (a mixer and an ffn, or any parts) against the training sequence
 * length: every chunk size divides seqLength (the chunked algebra needs whole chunks: a piece of 17
 * tokens with chunk 16 is refused, as is a chunk larger than the piece), and every in-context level
 * period is a multiple of every chunk size of the other parts of the block (a level update inside a chunk
 * would be invisible to the chunk-parallel form).
 */
export function checkChunkedBlock(parts: ReadonlyArray<{ layer: tf.layers.Layer; path: string }>, seqLength: number, seqPath = 'training.seqLength'): void {
  const chunks = parts.flatMap((p) => layerChunkSizes(p.layer).map((c) => ({ ...c, path: joinPath(p.path, c.key), part: p })));
  for (const c of chunks) {
    if (c.size > seqLength) failAt(c.path, `${c.size} is larger than ${seqPath} (${seqLength}); use a chunk size that divides ${seqPath}`);
    if (seqLength % c.size !== 0) failAt(c.path, `${c.size} does not divide ${seqPath} (${seqLength}): the chunked form needs whole chunks`);
  }
  for (const p of parts) {
    for (const lv of layerLevelPeriods(p.layer)) {
      for (const c of chunks) {
        if (c.part === p) continue;
        if (lv.period % c.size !== 0) failAt(`${p.path}.levels[${lv.index}].period`, `${lv.period} is not a multiple of ${c.path} (${c.size}): level updates must fall on chunk boundaries`);
      }
    }
  }
}
