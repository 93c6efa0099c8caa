/**
 * Configuration of the Continuum Memory System (paper Section 7, Eqs. 70-74): levels as data,
 * defaults, and validation whose errors name the field (e.g. "NlContinuumMemorySystem.levels[1].period").
 */
import { buildTransform, type JsonObject, type TransformSpec } from '../../core';
import { expected, failAt, fields, is, joinPath, nullable, refuseUnknownKeys, withDefault } from '../../core/validate';

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

/** Checks of one level's fields (core/validate.ts kit); `transform` is checked by buildTransform. */
const LEVEL_SCHEMA = {
  period: is.int(0, 'an integer >= 0 (tokens; 0 = never)'),
  learningRate: withDefault(is.number({ min: 0 }), 0.01),
  hiddenDim: nullable(is.int(1, 'an integer >= 1')),
};

/** Checks of the block-wide options; `levels` is checked per level. */
const OPTION_SCHEMA = {
  variant: withDefault(is.oneOf(CMS_VARIANTS), 'sequential' as CmsVariant, 'undefined'),
  activation: withDefault(is.oneOf(CMS_ACTIVATIONS), 'gelu' as CmsActivation, 'undefined'),
  residual: withDefault(is.bool(), true, 'undefined'),
  useBias: withDefault(is.bool(), true, 'undefined'),
};

function resolveLevel(l: unknown, p: string): ResolvedCmsLevel {
  if (typeof l !== 'object' || l === null || Array.isArray(l)) expected(p, 'an object', l);
  const raw = l as Record<string, unknown>;
  refuseUnknownKeys(raw, LEVEL_KEYS, p, 'option');
  const { period, learningRate, hiddenDim } = fields(raw, LEVEL_SCHEMA, p);
  let transform: TransformSpec | null = null;
  if (raw.transform !== undefined && raw.transform !== null) {
    buildTransform(raw.transform as TransformSpec, `${p}.transform`); // validates the spec (name and config) now
    transform = JSON.parse(JSON.stringify(raw.transform)) as TransformSpec;
  }
  return { period, learningRate, hiddenDim, transform };
}

/**
 * Validates and fills defaults. Only the CMS options are looked at (tfjs layer args such as `name` are
 * ignored here). Errors name the field path.
 */
export function resolveCmsOptions(raw: CmsOptions & Record<string, unknown>, path = ROOT): ResolvedCmsOptions {
  if (typeof raw !== 'object' || raw === null) failAt(path, 'options must be an object');
  const levelsRaw = raw.levels ?? [{ period: 0 }];
  if (!Array.isArray(levelsRaw) || levelsRaw.length === 0) failAt(`${path}.levels`, 'must be a non-empty array of {period, learningRate?, hiddenDim?, transform?}');
  const levels = levelsRaw.map((l, i) => resolveLevel(l, joinPath(`${path}.levels`, i)));
  const expansion = withDefault(is.number({ above: 0 }), 4)(raw.expansion, `${path}.expansion`);
  const o = fields(raw, OPTION_SCHEMA, path);
  return { levels, variant: o.variant, activation: o.activation, expansion, residual: o.residual, useBias: o.useBias };
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
