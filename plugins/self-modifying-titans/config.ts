/** Config of NlSelfModifyingTitans: defaults, validation (errors name the field), resolution. */
import { BUILTIN_INNER_LOSSES } from '../../core/inner-loss';
import { validateGradientMode, type GradientMode } from '../../core/level';
import { NORMALIZE_MODES, SMT_IMPLS, type NormalizeMode, type SmtImpl } from './ops/forward';
import { MEMORY_ACTIVATIONS, type MemoryActivation } from './ops/memory';

export type SmtInnerLossName = 'l2' | 'dot';
export const SMT_INNER_LOSSES: readonly SmtInnerLossName[] = ['l2', 'dot'];

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
  initScale?: number; // std of the memories' initial W2 is initScale / sqrt(dh); W1 is initScale / sqrt(dhid)
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
}

export const SMT_DEFAULTS: Readonly<Omit<ResolvedSmtConfig, 'dModel' | 'hiddenDim'>> = {
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
};

const C = 'NlSelfModifyingTitans';

function oneOf<T extends string>(field: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new Error(`${C}.${field}: must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}
function posInt(field: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`${C}.${field}: must be a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}
function bool(field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new Error(`${C}.${field}: must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}
function num(field: string, v: unknown, lo: number, hi: number, loOpen: boolean, hiOpen: boolean): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && (hiOpen ? v < hi : v <= hi);
  if (!ok) throw new Error(`${C}.${field}: must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${JSON.stringify(v)}`);
  return v as number;
}

export function resolveSmtConfig(a: SelfModifyingTitansArgs): ResolvedSmtConfig {
  const d = SMT_DEFAULTS;
  const r: ResolvedSmtConfig = {
    dModel: a.dModel == null ? null : posInt('dModel', a.dModel),
    numHeads: posInt('numHeads', a.numHeads ?? d.numHeads),
    hiddenDim: a.hiddenDim == null ? null : posInt('hiddenDim', a.hiddenDim),
    activation: oneOf('activation', a.activation ?? d.activation, MEMORY_ACTIVATIONS),
    innerLoss: oneOf('innerLoss', a.innerLoss ?? d.innerLoss, SMT_INNER_LOSSES),
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
    etaMax: num('etaMax', a.etaMax ?? d.etaMax, 0, 1, true, false),
    alphaMin: num('alphaMin', a.alphaMin ?? d.alphaMin, 0, 1, true, false),
    etaBiasInit: num('etaBiasInit', a.etaBiasInit ?? d.etaBiasInit, -1e3, 1e3, false, false),
    alphaBiasInit: num('alphaBiasInit', a.alphaBiasInit ?? d.alphaBiasInit, -1e3, 1e3, false, false),
    gradClip: a.gradClip === null ? null : num('gradClip', a.gradClip ?? d.gradClip, 0, Infinity, true, true),
    impl: oneOf('impl', a.impl ?? d.impl, SMT_IMPLS),
    gradientMode: validateGradientMode(a.gradientMode ?? d.gradientMode, `${C}.gradientMode`),
    sentinel: bool('sentinel', a.sentinel ?? d.sentinel),
    initScale: num('initScale', a.initScale ?? d.initScale, 0, 1e3, false, false),
  };
  if (!(r.innerLoss in BUILTIN_INNER_LOSSES)) throw new Error(`${C}.innerLoss: unknown inner loss '${r.innerLoss}'`);
  if (r.dModel !== null && r.dModel % r.numHeads !== 0) {
    throw new Error(`${C}.numHeads: must divide dModel=${r.dModel}, got ${r.numHeads}`);
  }
  return r;
}
