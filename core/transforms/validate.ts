/**
 * Config validation shared by the transform factories. Every error names the field by its full
 * path (e.g. 'NlTransformOptimizer.config.transforms[1].config.learningRate') so a bad config is
 * found at once. Validation happens once, when a transform is built, never inside update().
 */
import type { JsonObject, JsonValue } from './transform';

export function fail(path: string, msg: string): never {
  throw new Error(`${path}: ${msg}`);
}

/** The config must be a plain object whose keys are all in `allowed` (catches typos like 'lr'). */
export function checkOptions(config: unknown, allowed: readonly string[], path: string): Record<string, unknown> {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    fail(path, `must be an object, got ${JSON.stringify(config)}`);
  }
  for (const k of Object.keys(config)) {
    if (!allowed.includes(k)) fail(`${path}.${k}`, `unknown option (allowed: ${allowed.join(', ') || 'none'})`);
  }
  return config as Record<string, unknown>;
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

/** A finite number obeying `rule`; the error says what was expected and what was given. */
export function numberField(config: Record<string, unknown>, key: string, path: string, rule: NumberRule = {}): number {
  const raw = config[key];
  const where = `${path}.${key}`;
  if (raw === undefined) {
    if (rule.default !== undefined) return rule.default;
    fail(where, 'is required');
  }
  const want: string[] = [rule.integer ? 'an integer' : 'a finite number'];
  if (rule.min !== undefined) want.push(`>= ${rule.min}`);
  if (rule.above !== undefined) want.push(`> ${rule.above}`);
  if (rule.max !== undefined) want.push(`<= ${rule.max}`);
  const ok =
    typeof raw === 'number' &&
    Number.isFinite(raw) &&
    (!rule.integer || Number.isInteger(raw)) &&
    (rule.min === undefined || raw >= rule.min) &&
    (rule.above === undefined || raw > rule.above) &&
    (rule.max === undefined || raw <= rule.max);
  if (!ok) fail(where, `must be ${want.join(' and ')}, got ${JSON.stringify(raw)}`);
  return raw as number;
}

export function booleanField(config: Record<string, unknown>, key: string, path: string, dflt: boolean): boolean {
  const raw = config[key];
  if (raw === undefined) return dflt;
  if (typeof raw !== 'boolean') fail(`${path}.${key}`, `must be true or false, got ${JSON.stringify(raw)}`);
  return raw;
}

export function oneOfField<T extends string>(
  config: Record<string, unknown>,
  key: string,
  path: string,
  allowed: readonly T[],
  dflt: T,
): T {
  const raw = config[key];
  if (raw === undefined) return dflt;
  if (typeof raw !== 'string' || !(allowed as readonly string[]).includes(raw)) {
    fail(`${path}.${key}`, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
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
