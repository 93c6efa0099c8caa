/**
 * Configuration of NlTitansMemory: args (one doc comment per field), defaults, and validation whose
 * errors name the field ("NlTitansMemory.numHeads: ...").
 */
import * as tf from '@tensorflow/tfjs';
import { getInnerLoss } from '../../core/inner-loss';
import { failAt, fields, is, nullable, withDefault } from '../../core/validate';
import { validateGradientMode, type GradientMode } from '../../core/level';
import { MEMORY_ACTIVATIONS, MEMORY_KINDS, STEP_NORMS, type MemoryActivation, type MemoryKind, type StepNorm } from './ops/memory';

export type { MemoryActivation, MemoryKind, StepNorm } from './ops/memory';
export type { GradientMode } from '../../core/level';

/** 'chunked': chunk-parallel coefficient form (ops/chunked.ts); 'naive': token loop (ops/naive.ts). */
export type TitansImpl = 'chunked' | 'naive';
export const TITANS_IMPLS: readonly TitansImpl[] = ['chunked', 'naive'];
/** Activation on the q/k/v projections (after the conv). */
export type QkvActivation = 'silu' | 'none';
export const QKV_ACTIVATIONS: readonly QkvActivation[] = ['silu', 'none'];
/** Per-head normalisation of q and k. */
export type TitansQkNorm = 'l2' | 'none';
export const TITANS_QK_NORMS: readonly TitansQkNorm[] = ['l2', 'none'];
/** NaN/Inf sentinel (syncs with the device): 'auto' = in step() (streaming) only, 'always', 'never'. */
export type CheckFinite = 'auto' | 'always' | 'never';
export const CHECK_FINITE_MODES: readonly CheckFinite[] = ['auto', 'always', 'never'];
/** Initializer names accepted for the projection kernels. */
export type TitansInitializerName = 'glorotUniform' | 'glorotNormal' | 'heNormal' | 'leCunNormal' | 'zeros';
export const TITANS_INITIALIZERS: readonly TitansInitializerName[] = ['glorotUniform', 'glorotNormal', 'heNormal', 'leCunNormal', 'zeros'];

type BaseLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface TitansMemoryArgs extends BaseLayerArgs {
  /** Model width D of the input and output [B, T, D]; inferred from the input when omitted. */
  dModel?: number | null;
  /** Heads H; each head of each sequence owns a memory of width d = dModel / H. Default 1. */
  numHeads?: number;
  /** 'mlp': M(x) = x + W1 act(W2 x) (default); 'linear': M(x) = W x. */
  memory?: MemoryKind;
  /** Hidden width of the 'mlp' memory as a multiple of d (dh = expansion d). Default 2. */
  expansion?: number;
  /** Hidden activation of the 'mlp' memory. Default 'silu'. */
  activation?: MemoryActivation;
  /** Inner objective l(M(k), v), a core InnerLoss name: 'l2' (default, Titans Eq. 12) or 'dot' (or 'cosine'). */
  innerLoss?: string;
  /** Tokens per chunk C: inner gradients of a chunk are taken at the chunk-start state (Titans Eqs. 16-18). Default 16. */
  chunkSize?: number;
  /** 'chunked' (default) or 'naive' (token loop reference, for tests and benchmarks). */
  impl?: TitansImpl;
  /** 'full' (default): outer gradients flow through memory writes; 'stop': writes are not differentiated. */
  gradientMode?: GradientMode;
  /** Recompute each chunk in the backward pass instead of keeping its intermediates (ops/segments.ts):
   * memory O(T/C) chunk-start states + one chunk, same values and gradients. Default true. */
  checkpoint?: boolean;
  /** Named set of defaults for the write rule (README "Parameterisations"); fields given explicitly win.
   * 'stable' (default): thetaMax 1, stepNorm 'normalized', momentum off, innerGradClip 4, memoryOutputInit 'zeros'.
   * 'paper': thetaMax 0.1, stepNorm 'none', momentum on (etaBiasInit 2), innerGradClip 1, memoryOutputInit 'normal'
   * (the defaults before issue 12). */
  parameterization?: TitansParameterization;
  /** theta_t = thetaMax sigmoid(x W_theta + b) in (0, thetaMax). Default 1 ('stable'), 0.1 ('paper'). */
  thetaMax?: number;
  /** Initial bias of the theta logits. Default 0 (theta = thetaMax / 2). */
  thetaBiasInit?: number;
  /** Surprise momentum S_t = eta_t S_{t-1} - theta_t g_t (Titans Eq. 10). Off: eta = 0 (S_t = -theta_t g_t) and
   * no eta projection. Default false ('stable'), true ('paper'). */
  momentum?: boolean;
  /** Initial bias of eta_t = sigmoid(x W_eta + b) in (0, 1) (with momentum). Default 2 (eta ~ 0.88). */
  etaBiasInit?: number;
  /** Initial bias of alpha_t = sigmoid(x W_alpha + b) in (0, 1). Default -4 (alpha ~ 0.018). */
  alphaBiasInit?: number;
  /** Per-token clip of the inner-gradient Frobenius norm (all memory matrices together); 0 = off. Default 4
   * ('stable'), 1 ('paper').
   * With stepNorm 'normalized' it clips the normalised step |e|^2 g / |g|^2 instead. */
  innerGradClip?: number;
  /** 'none': the write is theta g (Titans Eq. 10); 'normalized': theta |e|^2 g / |g|^2, so theta is the
   * fraction of the error at the key that one write corrects (normalised LMS; ops/memory.ts stepFactor).
   * Default 'normalized' ('stable'), 'none' ('paper'). */
  stepNorm?: StepNorm;
  /** Activation on q, k, v after projection and conv. Default 'silu'. */
  qkvActivation?: QkvActivation;
  /** Normalisation of q and k per head. Default 'l2'. */
  qkNorm?: TitansQkNorm;
  /** Short causal depthwise conv (window 4, residual: x + conv(x)) on q, k, v. Default true. */
  conv?: boolean;
  /** RMS norm of each head's read with a learned scale. Default true. */
  outputNorm?: boolean;
  /** Output gate: read * sigmoid(x W_gate). Default true. */
  outputGate?: boolean;
  /** Output projection [H d, D] (off: the merged heads are the output, H d = D). Default true. */
  outputProjection?: boolean;
  /** NaN/Inf sentinel: 'auto' (default; in step() only, since it syncs), 'always' or 'never'. */
  checkFinite?: CheckFinite;
  /** Initializer of the projection kernels. Default 'glorotUniform'. */
  kernelInitializer?: TitansInitializerName;
  /** Std of the normal init of the meta-learned initial memory weights (times 1/sqrt(fan-in)). Default 1. */
  memoryInitScale?: number;
  /** Init of the memory's output matrix (W1 of 'mlp', W of 'linear'): 'normal' (memoryInitScale) or 'zeros'
   * (the initial memory reads q ('mlp') or 0 ('linear'), and a write at a fresh key is exact).
   * Default 'zeros' ('stable'), 'normal' ('paper'). */
  memoryOutputInit?: MemoryOutputInit;
}

/** Named default sets of the write rule (README "Parameterisations"). */
export type TitansParameterization = 'stable' | 'paper';
export const TITANS_PARAMETERIZATIONS: readonly TitansParameterization[] = ['stable', 'paper'];

/** Init of the memory's output matrix. */
export type MemoryOutputInit = 'normal' | 'zeros';
export const MEMORY_OUTPUT_INITS: readonly MemoryOutputInit[] = ['normal', 'zeros'];

export interface ResolvedTitansConfig {
  dModel: number | null;
  numHeads: number;
  memory: MemoryKind;
  expansion: number;
  activation: MemoryActivation;
  innerLoss: string;
  chunkSize: number;
  impl: TitansImpl;
  gradientMode: GradientMode;
  checkpoint: boolean;
  parameterization: TitansParameterization;
  thetaMax: number;
  thetaBiasInit: number;
  momentum: boolean;
  etaBiasInit: number;
  alphaBiasInit: number;
  innerGradClip: number;
  stepNorm: StepNorm;
  qkvActivation: QkvActivation;
  qkNorm: TitansQkNorm;
  conv: boolean;
  outputNorm: boolean;
  outputGate: boolean;
  outputProjection: boolean;
  checkFinite: CheckFinite;
  kernelInitializer: TitansInitializerName;
  memoryInitScale: number;
  memoryOutputInit: MemoryOutputInit;
}

/** Fields whose defaults depend on `parameterization`. */
type ParamFields = 'thetaMax' | 'thetaBiasInit' | 'momentum' | 'etaBiasInit' | 'alphaBiasInit' | 'innerGradClip' | 'stepNorm' | 'memoryOutputInit';

/**
 * The two named default sets (README "Parameterisations", docs/paper-map.md). 'paper' is the plugin's form
 * before issue 12: Titans' small step on the raw gradient with momentum. At init a write there removes ~2% of
 * the error at its key (theta 0.05 x gain |h|^2 + |W1 D|^2 ~ 0.8 x clip factor ~ 0.5) and in-context recall
 * trains to 0.435 in 3000 probe steps (DeltaNet 0.998). 'stable' is a delta-rule-strength write: a normalised
 * step with theta in (0, 1) (0.5 at init), no momentum (its 1/(1 - eta) gain would push the step past 1),
 * W1 = 0 at init (a write at a fresh key is exact) and a clip that bounds each step's norm.
 */
export const TITANS_PARAMETERIZATION_DEFAULTS: Readonly<Record<TitansParameterization, Pick<ResolvedTitansConfig, ParamFields>>> = {
  stable: { thetaMax: 1, thetaBiasInit: 0, momentum: false, etaBiasInit: 2, alphaBiasInit: -4, innerGradClip: 4, stepNorm: 'normalized', memoryOutputInit: 'zeros' },
  paper: { thetaMax: 0.1, thetaBiasInit: 0, momentum: true, etaBiasInit: 2, alphaBiasInit: -4, innerGradClip: 1, stepNorm: 'none', memoryOutputInit: 'normal' },
};

/** Defaults (the 'stable' parameterisation). */
export const TITANS_DEFAULTS: Omit<ResolvedTitansConfig, 'dModel'> = {
  numHeads: 1,
  memory: 'mlp',
  expansion: 2,
  activation: 'silu',
  innerLoss: 'l2',
  chunkSize: 16,
  impl: 'chunked',
  gradientMode: 'full',
  checkpoint: true,
  parameterization: 'stable',
  ...TITANS_PARAMETERIZATION_DEFAULTS.stable,
  qkvActivation: 'silu',
  qkNorm: 'l2',
  conv: true,
  outputNorm: true,
  outputGate: true,
  outputProjection: true,
  checkFinite: 'auto',
  kernelInitializer: 'glorotUniform',
  memoryInitScale: 1,
};

const WHERE = 'NlTitansMemory';
function fail(field: string, msg: string): never {
  return failAt(`${WHERE}.${field}`, msg);
}

/** Head width d = dModel / numHeads (numHeads must divide dModel). */
export function headDimOf(dModel: number, numHeads: number): number {
  if (dModel % numHeads !== 0) fail('numHeads', `must divide dModel=${dModel}, got ${numHeads}`);
  return dModel / numHeads;
}

export function resolveTitansConfig(args: TitansMemoryArgs = {}): ResolvedTitansConfig {
  if (typeof args !== 'object' || args === null) failAt(WHERE, 'config must be an object');
  const d = TITANS_DEFAULTS;
  const raw = args as Record<string, unknown>;
  const { dModel, numHeads } = fields(raw, { dModel: nullable(is.posInt), numHeads: withDefault(is.posInt, d.numHeads) }, WHERE);
  if (dModel !== null) headDimOf(dModel, numHeads);
  const innerLoss = args.innerLoss ?? d.innerLoss;
  if (typeof innerLoss !== 'string') fail('innerLoss', `must be a loss name, got ${JSON.stringify(innerLoss)}`);
  getInnerLoss(innerLoss, `${WHERE}.innerLoss`);
  const parameterization = withDefault(is.oneOf(TITANS_PARAMETERIZATIONS), d.parameterization)(args.parameterization, `${WHERE}.parameterization`);
  const p = TITANS_PARAMETERIZATION_DEFAULTS[parameterization];
  const head = fields(
    raw,
    {
      memory: withDefault(is.oneOf(MEMORY_KINDS), d.memory),
      expansion: withDefault(is.posInt, d.expansion),
      activation: withDefault(is.oneOf(MEMORY_ACTIVATIONS), d.activation),
      chunkSize: withDefault(is.posInt, d.chunkSize),
      impl: withDefault(is.oneOf(TITANS_IMPLS), d.impl),
      gradientMode: withDefault(validateGradientMode, d.gradientMode),
      checkpoint: withDefault(is.bool(), d.checkpoint),
    },
    WHERE,
  );
  const rest = fields(
    raw,
    {
      thetaMax: withDefault(is.number({ above: 0 }), p.thetaMax),
      thetaBiasInit: withDefault(is.number(), p.thetaBiasInit),
      momentum: withDefault(is.bool(), p.momentum),
      etaBiasInit: withDefault(is.number(), p.etaBiasInit),
      alphaBiasInit: withDefault(is.number(), p.alphaBiasInit),
      innerGradClip: withDefault(is.number({ min: 0 }), p.innerGradClip),
      stepNorm: withDefault(is.oneOf(STEP_NORMS), p.stepNorm),
      qkvActivation: withDefault(is.oneOf(QKV_ACTIVATIONS), d.qkvActivation),
      qkNorm: withDefault(is.oneOf(TITANS_QK_NORMS), d.qkNorm),
      conv: withDefault(is.bool(), d.conv),
      outputNorm: withDefault(is.bool(), d.outputNorm),
      outputGate: withDefault(is.bool(), d.outputGate),
      outputProjection: withDefault(is.bool(), d.outputProjection),
      checkFinite: withDefault(is.oneOf(CHECK_FINITE_MODES), d.checkFinite),
      kernelInitializer: withDefault(is.oneOf(TITANS_INITIALIZERS), d.kernelInitializer),
      memoryInitScale: withDefault(is.number({ min: 0 }), d.memoryInitScale),
      memoryOutputInit: withDefault(is.oneOf(MEMORY_OUTPUT_INITS), p.memoryOutputInit),
    },
    WHERE,
  );
  const { memory, expansion, activation, chunkSize, impl, gradientMode, checkpoint } = head;
  // the key order of getConfig(), as before
  return { dModel, numHeads, memory, expansion, activation, innerLoss, chunkSize, impl, gradientMode, checkpoint, parameterization, ...rest };
}
