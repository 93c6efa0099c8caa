/**
 * Configuration of the Continuum Memory System (paper Section 7, Eqs. 70-74): levels as data,
 * defaults, and validation whose errors name the field (e.g. "NlContinuumMemorySystem.levels[1].period").
 */
import { buildTransform, type JsonObject, type TransformSpec } from '../../core';

/** How the level blocks are combined (Eqs. 72-74). */
export type CmsVariant = 'sequential' | 'nested' | 'independent';
export const CMS_VARIANTS: readonly CmsVariant[] = ['sequential', 'nested', 'independent'];

/** Activation inside each MLP block. */
export type CmsActivation = 'gelu' | 'relu' | 'silu' | 'tanh' | 'sigmoid' | 'linear';
export const CMS_ACTIVATIONS: readonly CmsActivation[] = ['gelu', 'relu', 'silu', 'tanh', 'sigmoid', 'linear'];

export interface CmsLevelConfig {
  /** Chunk size C(l) in tokens of the context (Eq. 71); 0 = never updated in context (frozen MLP). */
  period: number;
  /** eta(l) of Eq. 71 (>= 0). 0 recovers the frozen block. Default 0.01. */
  learningRate?: number;
  /** Hidden width of the block; default `expansion` x D. */
  hiddenDim?: number;
  /**
   * Optional inner optimizer {transform, config} from the gradient-transform registry (e.g. momentum).
   * The level's update is eta(l) x transform(sum of chunk gradients); the default transform is plain
   * descent, i.e. -eta(l) x sum (Eq. 71). Transforms see [B, ...] tensors (one per sequence): use
   * element-wise ones (sgd, momentum), not global-norm clipping, which would couple sequences.
   */
  transform?: TransformSpec;
}

export interface CmsOptions {
  /** The levels, applied in this order (level 0 first). At least one. */
  levels?: CmsLevelConfig[];
  /** Default 'sequential'. */
  variant?: CmsVariant;
  /** Default 'gelu'. */
  activation?: CmsActivation;
  /** Hidden width = expansion x D when a level gives no hiddenDim. Default 4. */
  expansion?: number;
  /** Residual connection around each block (sequential/nested) or around the sum (independent). Default true. */
  residual?: boolean;
  /** Biases in the blocks. Default true. */
  useBias?: boolean;
}

export interface ResolvedCmsLevel {
  period: number;
  learningRate: number;
  hiddenDim: number | null;
  transform: TransformSpec | null;
}

export interface ResolvedCmsOptions {
  levels: ResolvedCmsLevel[];
  variant: CmsVariant;
  activation: CmsActivation;
  expansion: number;
  residual: boolean;
  useBias: boolean;
}

const ROOT = 'NlContinuumMemorySystem';
const OPTION_KEYS = ['levels', 'variant', 'activation', 'expansion', 'residual', 'useBias'];
const LEVEL_KEYS = ['period', 'learningRate', 'hiddenDim', 'transform'];

function fail(path: string, msg: string): never {
  throw new Error(`${path}: ${msg}`);
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], path: string, dflt: T): T {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    fail(path, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

/**
 * Validates and fills defaults. Only the CMS options are looked at (tfjs layer args such as `name` are
 * ignored here). Errors name the field path.
 */
export function resolveCmsOptions(raw: CmsOptions & Record<string, unknown>, path = ROOT): ResolvedCmsOptions {
  if (typeof raw !== 'object' || raw === null) fail(path, 'options must be an object');
  const levelsRaw = raw.levels ?? [{ period: 0 }];
  if (!Array.isArray(levelsRaw) || levelsRaw.length === 0) fail(`${path}.levels`, 'must be a non-empty array of {period, learningRate?, hiddenDim?, transform?}');
  const levels = levelsRaw.map((l, i): ResolvedCmsLevel => {
    const p = `${path}.levels[${i}]`;
    if (typeof l !== 'object' || l === null || Array.isArray(l)) fail(p, `must be an object, got ${JSON.stringify(l)}`);
    for (const k of Object.keys(l)) if (!LEVEL_KEYS.includes(k)) fail(`${p}.${k}`, `unknown option (allowed: ${LEVEL_KEYS.join(', ')})`);
    if (!Number.isInteger(l.period) || l.period < 0) fail(`${p}.period`, `must be an integer >= 0 (tokens; 0 = never), got ${JSON.stringify(l.period)}`);
    const lr = l.learningRate ?? 0.01;
    if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) fail(`${p}.learningRate`, `must be a finite number >= 0, got ${JSON.stringify(l.learningRate)}`);
    const h = l.hiddenDim ?? null;
    if (h !== null && (!Number.isInteger(h) || h < 1)) fail(`${p}.hiddenDim`, `must be an integer >= 1, got ${JSON.stringify(l.hiddenDim)}`);
    let transform: TransformSpec | null = null;
    if (l.transform !== undefined && l.transform !== null) {
      buildTransform(l.transform, `${p}.transform`); // validates the spec (name and config) now
      transform = JSON.parse(JSON.stringify(l.transform)) as TransformSpec;
    }
    return { period: l.period, learningRate: lr, hiddenDim: h, transform };
  });
  const expansion = raw.expansion ?? 4;
  if (typeof expansion !== 'number' || !(expansion > 0) || !Number.isFinite(expansion)) fail(`${path}.expansion`, `must be a finite number > 0, got ${JSON.stringify(raw.expansion)}`);
  const bool = (k: 'residual' | 'useBias'): boolean => {
    const v = raw[k];
    if (v === undefined) return true;
    if (typeof v !== 'boolean') fail(`${path}.${k}`, `must be a boolean, got ${JSON.stringify(v)}`);
    return v;
  };
  return {
    levels,
    variant: oneOf(raw.variant, CMS_VARIANTS, `${path}.variant`, 'sequential'),
    activation: oneOf(raw.activation, CMS_ACTIVATIONS, `${path}.activation`, 'gelu'),
    expansion,
    residual: bool('residual'),
    useBias: bool('useBias'),
  };
}

/** JSON form of resolved options (for getConfig). */
export function cmsOptionsToJson(o: ResolvedCmsOptions): JsonObject {
  return {
    levels: o.levels.map((l) => {
      const j: JsonObject = { period: l.period, learningRate: l.learningRate };
      if (l.hiddenDim !== null) j.hiddenDim = l.hiddenDim;
      if (l.transform) j.transform = l.transform as unknown as JsonObject;
      return j;
    }),
    variant: o.variant,
    activation: o.activation,
    expansion: o.expansion,
    residual: o.residual,
    useBias: o.useBias,
  };
}

export { OPTION_KEYS as CMS_OPTION_KEYS };
