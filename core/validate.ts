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

export function refuseUnknownKeys(obj: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) failAt(joinPath(path, k), `unknown key (allowed: ${allowed.join(', ') || 'none'})`);
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
