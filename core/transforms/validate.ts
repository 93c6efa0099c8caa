/**
 * Config validation shared by the transform factories. Every error names the field by its full
 * path (e.g. 'NlTransformOptimizer.config.transforms[1].config.learningRate') so a bad config is
 * found at once. Validation happens once, when a transform is built, never inside update().
 */
import type { JsonObject, JsonValue } from './transform';
import { expected, failAt, is, isPlainObject, joinPath, refuseUnknownKeys, type NumberSpec } from '../validate';

/** `path: msg` as a ConfigError (core/validate.ts). */
export function fail(path: string, msg: string): never {
  return failAt(path, msg);
}

/** The config must be a plain object whose keys are all in `allowed` (catches typos like 'lr'). */
export function checkOptions(config: unknown, allowed: readonly string[], path: string): Record<string, unknown> {
  if (!isPlainObject(config)) expected(path, 'an object', config);
  refuseUnknownKeys(config, allowed, path, 'option');
  return config;
}

export interface NumberRule {
  /** Used when the field is undefined; without it the field is required. */
  default?: number;
  /** Inclusive lower bound. */
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  /** Inclusive upper bound. */
  max?: number;
  integer?: boolean;
}

/** A finite number obeying `rule` (the kit's is.number, in the transforms' wording 'an integer and >= 1'). */
export function numberField(config: Record<string, unknown>, key: string, path: string, rule: NumberRule = {}): number {
  const raw = config[key];
  const where = joinPath(path, key);
  if (raw === undefined) {
    if (rule.default !== undefined) return rule.default;
    fail(where, 'is required');
  }
  const want: string[] = [rule.integer ? 'an integer' : 'a finite number'];
  if (rule.min !== undefined) want.push(`>= ${rule.min}`);
  if (rule.above !== undefined) want.push(`> ${rule.above}`);
  if (rule.max !== undefined) want.push(`<= ${rule.max}`);
  const spec: NumberSpec = { integer: rule.integer, min: rule.min, above: rule.above, max: rule.max, expect: want.join(' and ') };
  return is.number(spec)(raw, where);
}

export function booleanField(config: Record<string, unknown>, key: string, path: string, dflt: boolean): boolean {
  const raw = config[key];
  return raw === undefined ? dflt : is.bool('true or false')(raw, joinPath(path, key));
}

export function oneOfField<T extends string>(
  config: Record<string, unknown>,
  key: string,
  path: string,
  allowed: readonly T[],
  dflt: T,
): T {
  const raw = config[key];
  return raw === undefined ? dflt : is.oneOf(allowed)(raw, joinPath(path, key));
}

/** Throws unless `value` is plain JSON (no functions, tensors, NaN, undefined inside arrays...). */
export function assertJson(value: unknown, path: string): asserts value is JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) fail(path, `must be a finite number to be JSON, got ${value}`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => assertJson(v, `${path}[${i}]`));
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v !== undefined) assertJson(v, `${path}.${k}`);
    }
    return;
  }
  fail(path, `must be JSON (null, boolean, number, string, array or plain object), got ${typeof value}`);
}

/** A deep copy of a JSON object with undefined fields dropped. */
export function copyJson(value: JsonObject): JsonObject {
  return JSON.parse(JSON.stringify(value)) as JsonObject;
}
