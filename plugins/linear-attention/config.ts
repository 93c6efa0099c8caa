/**
 * Configuration of NlLinearAttention: the args (one doc comment per field), their defaults, and
 * validation whose errors name the field ("NlLinearAttention.numHeads: ...").
 */
import * as tf from '@tensorflow/tfjs';
import { LINEAR_ATTENTION_RULES, type LinearAttentionRule } from './ops/types';
import { TRIL_INVERSE_METHODS, type TrilInverseMethod } from '../../core/ops/tril-inverse';
import { failAt, fields, is, nullable, withDefault } from '../../core/validate';

export type { LinearAttentionRule } from './ops/types';
export type { TrilInverseMethod } from '../../core/ops/tril-inverse';

/** Normalisation of q and k per head before the memory sees them. */
export type QkNorm = 'l2' | 'none';
export const QK_NORMS: readonly QkNorm[] = ['l2', 'none'];
/** Scale on q: 'rsqrt-dk' multiplies q by 1/sqrt(keyDim) (after qkNorm), 'none' leaves it. */
export type QueryScale = 'rsqrt-dk' | 'none';
export const QUERY_SCALES: readonly QueryScale[] = ['rsqrt-dk', 'none'];
/** 'chunked': chunk-parallel matmuls (ops/chunked.ts); 'naive': token-by-token loop (ops/naive.ts). */
export type LinearAttentionImpl = 'chunked' | 'naive';
export const LINEAR_ATTENTION_IMPLS: readonly LinearAttentionImpl[] = ['chunked', 'naive'];

/** Built-in initializer names accepted as strings (tf.initializers factories that need no args). */
export type InitializerName =
  | 'glorotUniform'
  | 'glorotNormal'
  | 'heUniform'
  | 'heNormal'
  | 'leCunUniform'
  | 'leCunNormal'
  | 'zeros'
  | 'ones';
const INITIALIZER_NAMES: readonly InitializerName[] = [
  'glorotUniform',
  'glorotNormal',
  'heUniform',
  'heNormal',
  'leCunUniform',
  'leCunNormal',
  'zeros',
  'ones',
];
/** A serialised initializer as tfjs writes it: {className, config}. */
export interface SerializedInitializer {
  className: string;
  config: tf.serialization.ConfigDict;
}
export type InitializerSpec = InitializerName | SerializedInitializer | Initializer;

/** tfjs-layers' Initializer (its class is not exported by @tensorflow/tfjs, so the type is derived). */
export type Initializer = ReturnType<typeof tf.initializers.zeros>;

function isInitializer(x: unknown): x is Initializer {
  const o = x as Initializer;
  return typeof o === 'object' && o !== null && typeof o.apply === 'function' && typeof o.getClassName === 'function' && typeof o.getConfig === 'function';
}

type BaseLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface LinearAttentionArgs extends BaseLayerArgs {
  /** Model width D of the input and output [B, T, D]. Optional: inferred from the input's last axis at
   * build time; when given, the input must match it. */
  dModel?: number | null;
  /** Number of heads H; each head has its own memory S in R^{valueDim x keyDim}. Default 1. */
  numHeads?: number;
  /** Key/query width per head dk. Default dModel / numHeads (then numHeads must divide dModel). */
  keyDim?: number | null;
  /** Value width per head dv. Default dModel / numHeads (then numHeads must divide dModel). */
  valueDim?: number | null;
  /** Memory write rule: 'additive' (Eq. 18), 'delta' (DeltaNet) or 'gated-delta' (DGD, Eq. 57/93).
   * Default 'additive'. */
  rule?: LinearAttentionRule;
  /** Per-head normalisation of q and k. Default 'l2' for the delta rules (needed for the write to be a
   * contraction), 'none' for 'additive'. */
  qkNorm?: QkNorm;
  /** Scale on q. Default 'rsqrt-dk' (q / sqrt(keyDim)). */
  queryScale?: QueryScale;
  /** Tokens per chunk C of the chunked implementation. Default 64. */
  chunkSize?: number;
  /** Implementation: 'chunked' (default) or 'naive' (reference; slow, for tests and benchmarks). */
  impl?: LinearAttentionImpl;
  /** How the chunked delta rules build (I + N)^{-1}: 'blocked' (default, stable) or 'series'
   * (Neumann product; loses float32 precision for near-repeated keys, see core/ops/tril-inverse.ts). */
  inverse?: TrilInverseMethod;
  /** Biases on the q, k, v and output projections. Default false. (beta and alpha always have a bias.) */
  useBias?: boolean;
  /** Initializer of the projection kernels Wq, Wk, Wv, Wo, Wbeta, Walpha. Default 'glorotUniform'. */
  kernelInitializer?: InitializerSpec;
  /** Initializer of the projection biases (when useBias). Default 'zeros'. */
  biasInitializer?: InitializerSpec;
  /** Initial bias of the write-strength logits: beta = sigmoid(x Wbeta + b). Default 0 (beta = 0.5). */
  betaBiasInit?: number;
  /** Initial bias of the forget-gate logits ('gated-delta'): alpha = sigmoid(x Walpha + b). Default 5
   * (alpha ~ 0.993, a memory horizon of ~150 tokens at initialisation). */
  gateBiasInit?: number;
}

/** Everything resolved except the sizes that may depend on the input width. */
export interface ResolvedLinearAttentionConfig {
  dModel: number | null;
  numHeads: number;
  keyDim: number | null;
  valueDim: number | null;
  rule: LinearAttentionRule;
  qkNorm: QkNorm;
  queryScale: QueryScale;
  chunkSize: number;
  impl: LinearAttentionImpl;
  inverse: TrilInverseMethod;
  useBias: boolean;
  kernelInitializer: Initializer;
  biasInitializer: Initializer;
  betaBiasInit: number;
  gateBiasInit: number;
}

export const LINEAR_ATTENTION_DEFAULTS = {
  numHeads: 1,
  rule: 'additive' as LinearAttentionRule,
  queryScale: 'rsqrt-dk' as QueryScale,
  chunkSize: 64,
  impl: 'chunked' as LinearAttentionImpl,
  inverse: 'blocked' as TrilInverseMethod,
  useBias: false,
  kernelInitializer: 'glorotUniform' as InitializerName,
  biasInitializer: 'zeros' as InitializerName,
  betaBiasInit: 0,
  gateBiasInit: 5,
};

const WHERE = 'NlLinearAttention';

function fail(field: string, msg: string): never {
  return failAt(`${WHERE}.${field}`, msg);
}

/** Resolves an initializer spec (name, {className, config} or instance); errors name `field`. */
export function resolveInitializer(field: string, spec: unknown): Initializer {
  if (isInitializer(spec)) return spec;
  if (typeof spec === 'string') {
    const name = is.oneOf(INITIALIZER_NAMES)(spec, `${WHERE}.${field}`);
    const factory = (tf.initializers as unknown as Record<string, (a?: object) => Initializer>)[name];
    return factory({});
  }
  if (typeof spec === 'object' && spec !== null && typeof (spec as SerializedInitializer).className === 'string') {
    const { className, config } = spec as SerializedInitializer;
    const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
    if (!entry) fail(field, `unknown initializer className '${className}'`);
    const [cls, fromConfig] = entry;
    const made = fromConfig(cls, (config ?? {}) as tf.serialization.ConfigDict);
    if (!isInitializer(made)) fail(field, `className '${className}' is not an initializer`);
    return made;
  }
  return fail(field, `must be an initializer name (${INITIALIZER_NAMES.join(', ')}), {className, config} or an Initializer, got ${JSON.stringify(spec)}`);
}

/** The JSON form of an initializer, as written by getConfig(). */
export function serializeInitializer(init: Initializer): SerializedInitializer {
  // JSON round trip drops undefined entries (e.g. an unset seed), so the config is plain JSON.
  return { className: init.getClassName(), config: JSON.parse(JSON.stringify(init.getConfig())) };
}

/** Checks numHeads against dModel when per-head widths must be derived from it; returns dModel / numHeads. */
export function headWidthFromModel(dModel: number, numHeads: number): number {
  if (dModel % numHeads !== 0) {
    fail('numHeads', `must be a positive integer dividing dModel=${dModel} when keyDim or valueDim is not given, got ${numHeads}`);
  }
  return dModel / numHeads;
}

/** Validates args and fills defaults. Sizes that depend on the input width stay null until build. */
export function resolveLinearAttentionConfig(args: LinearAttentionArgs = {}): ResolvedLinearAttentionConfig {
  if (typeof args !== 'object' || args === null) failAt(WHERE, 'config must be an object');
  const d = LINEAR_ATTENTION_DEFAULTS;
  const raw = args as Record<string, unknown>;
  const sizes = fields(raw, { dModel: nullable(is.posInt), numHeads: withDefault(is.posInt, d.numHeads), keyDim: nullable(is.posInt), valueDim: nullable(is.posInt) }, WHERE);
  const { dModel, numHeads } = sizes;
  let { keyDim, valueDim } = sizes;
  if (dModel !== null && (keyDim === null || valueDim === null)) {
    const w = headWidthFromModel(dModel, numHeads);
    keyDim = keyDim ?? w;
    valueDim = valueDim ?? w;
  }
  const rule = withDefault(is.oneOf(LINEAR_ATTENTION_RULES), d.rule)(args.rule, `${WHERE}.rule`);
  const modes = fields(
    raw,
    {
      qkNorm: withDefault(is.oneOf(QK_NORMS), rule === 'additive' ? 'none' : 'l2'),
      queryScale: withDefault(is.oneOf(QUERY_SCALES), d.queryScale),
      chunkSize: withDefault(is.posInt, d.chunkSize),
      impl: withDefault(is.oneOf(LINEAR_ATTENTION_IMPLS), d.impl),
      inverse: withDefault(is.oneOf(TRIL_INVERSE_METHODS), d.inverse),
      useBias: withDefault(is.bool(), d.useBias),
    },
    WHERE,
  );
  const kernelInitializer = resolveInitializer('kernelInitializer', args.kernelInitializer ?? d.kernelInitializer);
  const biasInitializer = resolveInitializer('biasInitializer', args.biasInitializer ?? d.biasInitializer);
  const biases = fields(raw, { betaBiasInit: withDefault(is.number(), d.betaBiasInit), gateBiasInit: withDefault(is.number(), d.gateBiasInit) }, WHERE);
  return {
    dModel,
    numHeads,
    keyDim,
    valueDim,
    rule,
    ...modes,
    kernelInitializer,
    biasInitializer,
    ...biases,
  };
}
