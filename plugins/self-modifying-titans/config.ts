/** Config of NlSelfModifyingTitans: defaults, validation (errors name the field), resolution. */
import { getInnerLoss } from '../../core/inner-loss';
import { validateGradientMode, type GradientMode } from '../../core/level';
import { BASE_LAYER_KEYS, is, refuseUnknownKeys } from '../../core/validate';
import { NORMALIZE_MODES, SMT_IMPLS, SMT_PARAMETERIZATIONS, type NormalizeMode, type SmtImpl, type SmtParameterization } from './ops/forward';
import { MEMORY_ACTIVATIONS, type MemoryActivation } from './ops/memory';

/** An inner loss by name: a built-in ('l2', 'dot', 'cosine') or one a loaded plugin contributed (core/catalog). */
export type SmtInnerLossName = string;
/** The built-in inner losses (any name in the catalogue is accepted too; 'stable' takes 'l2' only). */
export const SMT_INNER_LOSSES: readonly SmtInnerLossName[] = ['l2', 'dot', 'cosine'];

export interface SelfModifyingTitansArgs {
  name?: string;
  trainable?: boolean;
  inputShape?: (number | null)[];
  batchInputShape?: (number | null)[];
  dModel?: number; // inferred from the input when omitted
  numHeads?: number; // must divide dModel
  hiddenDim?: number; // memory MLP hidden width (default 2 x head width)
  activation?: MemoryActivation;
  innerLoss?: SmtInnerLossName;
  momentum?: boolean;
  momentumDecay?: number; // mu in [0, 1)
  dgd?: boolean;
  weightDecay?: boolean;
  staticK?: boolean;
  staticV?: boolean;
  adaptiveQ?: boolean;
  normalize?: NormalizeMode;
  chunkSize?: number;
  memChunkSize?: number;
  etaMax?: number;
  alphaMin?: number;
  etaBiasInit?: number;
  alphaBiasInit?: number;
  gradClip?: number | null;
  impl?: SmtImpl;
  gradientMode?: GradientMode;
  sentinel?: boolean;
  initScale?: number; // std of the memories' initial W2 is initScale / sqrt(dh); W1 is initScale / sqrt(dhid) ('paper'; 'stable': W1 starts at 0)
  /** 'stable' (default: learned k/v/q projections, exact delta-rule W1 on normalised hidden features) or 'paper' (README). */
  parameterization?: SmtParameterization;
  /** 'stable' only: step-size multiple for W2 and for M_k, M_v, M_eta, M_alpha (M_q), in (0, 1]. Default 0.1. */
  slowRate?: number;
  /**
   * Activation checkpointing per chunk (default true): under a gradient tape only each chunk's inputs are
   * kept and the chunk is recomputed in the backward pass. Same values and gradients; false is ~1.5x fewer
   * kernels per training step for more memory (worth it for short sequences).
   */
  checkpoint?: boolean;
}

export interface ResolvedSmtConfig {
  dModel: number | null;
  numHeads: number;
  hiddenDim: number | null;
  activation: MemoryActivation;
  innerLoss: SmtInnerLossName;
  momentum: boolean;
  momentumDecay: number;
  dgd: boolean;
  weightDecay: boolean;
  staticK: boolean;
  staticV: boolean;
  adaptiveQ: boolean;
  normalize: NormalizeMode;
  chunkSize: number;
  memChunkSize: number;
  etaMax: number;
  alphaMin: number;
  etaBiasInit: number;
  alphaBiasInit: number;
  gradClip: number | null;
  impl: SmtImpl;
  gradientMode: GradientMode;
  sentinel: boolean;
  initScale: number;
  parameterization: SmtParameterization;
  slowRate: number;
  checkpoint: boolean;
}

type SmtDefaults = Readonly<Omit<ResolvedSmtConfig, 'dModel' | 'hiddenDim' | 'parameterization'>>;

/** Defaults of parameterization 'paper' (the form before the stable one; its numbers are this project's choices). */
export const SMT_DEFAULTS: SmtDefaults = {
  numHeads: 1,
  activation: 'silu',
  innerLoss: 'l2',
  momentum: true,
  momentumDecay: 0.5,
  dgd: true,
  weightDecay: true,
  staticK: false,
  staticV: false,
  adaptiveQ: false,
  normalize: 'l2',
  chunkSize: 64,
  memChunkSize: 64,
  etaMax: 0.1,
  alphaMin: 0.5,
  etaBiasInit: 0,
  alphaBiasInit: 4,
  gradClip: 1,
  impl: 'chunked',
  gradientMode: 'full',
  sentinel: true,
  initScale: 0.5,
  slowRate: 0.1, // unused by 'paper'
  checkpoint: true,
};

/**
 * Defaults of parameterization 'stable' (the default; README "Parameterisations"): beta ~ 0.73 at
 * initialisation (etaMax 1, bias 1: the smallest tried whose cross-token sensitivity at init exceeds
 * DeltaNet's at beta 0.5; the read keeps Eq. 89's residual q), slow matrices at 0.1 beta, alpha ~ 0.99,
 * no momentum, W2 std 1/sqrt(dh).
 */
export const SMT_STABLE_DEFAULTS: SmtDefaults = {
  ...SMT_DEFAULTS,
  momentum: false,
  etaMax: 1,
  etaBiasInit: 1,
  alphaMin: 0.5,
  alphaBiasInit: 4,
  initScale: 1,
  slowRate: 0.1,
};

const C = 'NlSelfModifyingTitans';

const oneOf = <T extends string>(field: string, v: unknown, allowed: readonly T[]): T => is.oneOf(allowed)(v, `${C}.${field}`);
const posInt = (field: string, v: unknown): number => is.posInt(v, `${C}.${field}`);
const bool = (field: string, v: unknown): boolean => is.bool()(v, `${C}.${field}`);
/** A finite number in the interval lo..hi, each end open or closed ('a number in (0, 2]'). */
const num = (field: string, v: unknown, lo: number, hi: number, loOpen: boolean, hiOpen: boolean): number =>
  is.number({ ...(loOpen ? { above: lo } : { min: lo }), ...(hi === Infinity ? {} : hiOpen ? { below: hi } : { max: hi }) })(v, `${C}.${field}`);

/** A registered inner loss name (the 'paper' form writes with its gradient, ops/memory.ts), else an error naming the field. */
function innerLossName(v: unknown): string {
  if (typeof v !== 'string') throw new Error(`${C}.innerLoss: must be an inner loss name, got ${JSON.stringify(v)}`);
  getInnerLoss(v, `${C}.innerLoss`); // throws: unknown inner loss '...'; allowed: ...
  return v;
}

/** Every key of SelfModifyingTitansArgs (a misspelled key is refused, not ignored). */
const SMT_KEYS: readonly string[] = [
  'dModel', 'numHeads', 'hiddenDim', 'activation', 'innerLoss', 'momentum', 'momentumDecay', 'dgd', 'weightDecay', 'staticK', 'staticV',
  'adaptiveQ', 'normalize', 'chunkSize', 'memChunkSize', 'etaMax', 'alphaMin', 'etaBiasInit', 'alphaBiasInit', 'gradClip', 'impl',
  'gradientMode', 'sentinel', 'initScale', 'parameterization', 'slowRate', 'checkpoint',
];

export function resolveSmtConfig(a: SelfModifyingTitansArgs): ResolvedSmtConfig {
  refuseUnknownKeys(a as Record<string, unknown>, [...SMT_KEYS, ...BASE_LAYER_KEYS, 'customObjects'], C); // customObjects: added by tfjs deserialisation
  const p = oneOf('parameterization', a.parameterization ?? 'stable', SMT_PARAMETERIZATIONS);
  const d = p === 'stable' ? SMT_STABLE_DEFAULTS : SMT_DEFAULTS;
  const r: ResolvedSmtConfig = {
    parameterization: p,
    slowRate: num('slowRate', a.slowRate ?? d.slowRate, 0, 1, true, false),
    checkpoint: bool('checkpoint', a.checkpoint ?? d.checkpoint),
    dModel: a.dModel == null ? null : posInt('dModel', a.dModel),
    numHeads: posInt('numHeads', a.numHeads ?? d.numHeads),
    hiddenDim: a.hiddenDim == null ? null : posInt('hiddenDim', a.hiddenDim),
    activation: oneOf('activation', a.activation ?? d.activation, MEMORY_ACTIVATIONS),
    innerLoss: innerLossName(a.innerLoss ?? d.innerLoss),
    momentum: bool('momentum', a.momentum ?? d.momentum),
    momentumDecay: num('momentumDecay', a.momentumDecay ?? d.momentumDecay, 0, 1, false, true),
    dgd: bool('dgd', a.dgd ?? d.dgd),
    weightDecay: bool('weightDecay', a.weightDecay ?? d.weightDecay),
    staticK: bool('staticK', a.staticK ?? d.staticK),
    staticV: bool('staticV', a.staticV ?? d.staticV),
    adaptiveQ: bool('adaptiveQ', a.adaptiveQ ?? d.adaptiveQ),
    normalize: oneOf('normalize', a.normalize ?? d.normalize, NORMALIZE_MODES),
    chunkSize: posInt('chunkSize', a.chunkSize ?? d.chunkSize),
    memChunkSize: posInt('memChunkSize', a.memChunkSize ?? d.memChunkSize),
    etaMax: num('etaMax', a.etaMax ?? d.etaMax, 0, p === 'stable' ? 2 : 1, true, false), // stable: (alpha I - beta h h^T) stays a non-expansion up to 2
    alphaMin: num('alphaMin', a.alphaMin ?? d.alphaMin, 0, 1, true, false),
    etaBiasInit: num('etaBiasInit', a.etaBiasInit ?? d.etaBiasInit, -1e3, 1e3, false, false),
    alphaBiasInit: num('alphaBiasInit', a.alphaBiasInit ?? d.alphaBiasInit, -1e3, 1e3, false, false),
    gradClip: a.gradClip === null ? null : num('gradClip', a.gradClip ?? d.gradClip, 0, Infinity, true, true),
    impl: oneOf('impl', a.impl ?? d.impl, SMT_IMPLS),
    gradientMode: validateGradientMode(a.gradientMode ?? d.gradientMode, `${C}.gradientMode`),
    sentinel: bool('sentinel', a.sentinel ?? d.sentinel),
    initScale: num('initScale', a.initScale ?? d.initScale, 0, 1e3, false, false),
  };
  if (p === 'stable') {
    if (r.momentum) throw new Error(`${C}.momentum: parameterization 'stable' has no momentum (its W1 write is an exact delta rule; 1/(1 - mu) would push the step past 1); set momentum: false or parameterization: 'paper'`);
    if (r.normalize !== 'l2') throw new Error(`${C}.normalize: parameterization 'stable' needs 'l2' (normalised keys and targets bound the writes), got '${r.normalize}'`);
    if (r.innerLoss !== 'l2') throw new Error(`${C}.innerLoss: parameterization 'stable' writes the L2 objective exactly (delta rule), got '${r.innerLoss}'`);
  }
  if (r.dModel !== null && r.dModel % r.numHeads !== 0) {
    throw new Error(`${C}.numHeads: must divide dModel=${r.dModel}, got ${r.numHeads}`);
  }
  return r;
}
