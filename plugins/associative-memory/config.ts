/**
 * Configuration of the associative-memory plugin: literal unions for modes, defaults, and validation
 * that names the offending field (e.g. "MatrixMemory.decay: must be in [0, 1), got 1.5").
 */
import { validateGradientMode, type GradientMode, type InnerLoss, BUILTIN_INNER_LOSSES } from '../../core';

/** Inner objective L~ of a matrix memory (paper Eq. 6); the update rule is one GD step on it. */
export type AssocObjective = 'dot' | 'l2' | 'cosine';
export const ASSOC_OBJECTIVES: readonly AssocObjective[] = ['dot', 'l2', 'cosine'];

/** The write rule that one GD step on each objective produces for a linear memory (see README). */
export type UpdateRuleName = 'hebbian' | 'delta' | 'cosine-normalized';
export const UPDATE_RULE_OF: Readonly<Record<AssocObjective, UpdateRuleName>> = {
  dot: 'hebbian', // Eq. 18: M += eta v k^T
  l2: 'delta', // M -= eta (M k - v) k^T
  cosine: 'cosine-normalized', // M += (eta/|Mk|) (v^ - <p^, v^> p^) k^T, Oja-style
};

/** How the layer's memory starts each sequence. 'learned': a trainable [dv, dk] matrix (meta-learned). */
export type InitialMemory = 'zeros' | 'learned';
export const INITIAL_MEMORIES: readonly InitialMemory[] = ['zeros', 'learned'];

export interface MatrixMemoryConfig {
  /** Key dimension dk (memory is [B, dv, dk]). Positive integer. */
  keyDim: number;
  /** Value dimension dv. Positive integer. */
  valueDim: number;
  /** Inner objective: a built-in name or any InnerLoss (e.g. contributed by a plugin). Default 'l2'. */
  objective?: AssocObjective | InnerLoss;
  /** Inner learning rate eta >= 0 of the GD step on the objective. Default 0.5. */
  eta?: number;
  /** Forgetting alpha in [0, 1): M <- (1 - alpha) M - eta grad. Default 0 (no forgetting). */
  decay?: number;
}

export interface ResolvedMatrixMemoryConfig {
  keyDim: number;
  valueDim: number;
  loss: InnerLoss;
  eta: number;
  decay: number;
}

export interface SlotMemoryConfig {
  /** Number of slots S (ring buffer capacity). Positive integer. */
  slots: number;
  /** Key dimension dk. Positive integer. */
  keyDim: number;
  /** Value dimension dv. Positive integer. */
  valueDim: number;
  /** Softmax temperature tau > 0 of the read softmax(q K^T / tau) V. Default 1. */
  temperature?: number;
}

export type ResolvedSlotMemoryConfig = Required<SlotMemoryConfig>;

/**
 * Hyper-parameters of the NlAssociativeMemory layer (everything except tfjs' own LayerArgs).
 * All fields are JSON values so getConfig() can return them unchanged.
 */
export interface AssociativeMemoryOptions {
  /** Key/query dimension dk. Default (null/undefined): the input width D. */
  keyDim?: number | null;
  /** Value dimension dv. Default (null/undefined): the input width D. */
  valueDim?: number | null;
  /** Inner objective (and so write rule): 'dot' Hebbian, 'l2' delta, 'cosine' normalised. Default 'l2'. */
  objective?: AssocObjective;
  /** Inner learning rate eta >= 0. Default 0.5. */
  eta?: number;
  /** Forgetting alpha in [0, 1). Default 0. */
  decay?: number;
  /** L2-normalise keys and queries before writing/reading (keeps the delta rule stable for eta < 2). Default true. */
  normalizeKeys?: boolean;
  /** Bias terms on the q/k/v/output projections. Default false. */
  useBias?: boolean;
  /** Initial memory per sequence. Default 'zeros', except 'learned' for objective 'cosine'. */
  initialMemory?: InitialMemory;
  /** 'full': outer gradients flow through memory writes; 'stop': writes are constants. Default 'full'. */
  gradientMode?: GradientMode;
}

export interface ResolvedAssociativeMemoryOptions {
  keyDim: number | null;
  valueDim: number | null;
  objective: AssocObjective;
  eta: number;
  decay: number;
  normalizeKeys: boolean;
  useBias: boolean;
  initialMemory: InitialMemory;
  gradientMode: GradientMode;
}

export const DEFAULT_ETA = 0.5;
export const DEFAULT_DECAY = 0;
export const DEFAULT_OBJECTIVE: AssocObjective = 'l2';

function fail(path: string, msg: string): never {
  throw new Error(`${path}: ${msg}`);
}

export function checkPositiveInt(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(path, `must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

export function checkEta(v: unknown, path: string): number {
  if (v === undefined) return DEFAULT_ETA;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(path, `must be a finite number >= 0, got ${JSON.stringify(v)}`);
  return v;
}

export function checkDecay(v: unknown, path: string): number {
  if (v === undefined) return DEFAULT_DECAY;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v >= 1) fail(path, `must be a number in [0, 1), got ${JSON.stringify(v)}`);
  return v;
}

export function checkObjectiveName(v: unknown, path: string): AssocObjective {
  if (v === undefined) return DEFAULT_OBJECTIVE;
  if (typeof v !== 'string' || !(ASSOC_OBJECTIVES as readonly string[]).includes(v)) {
    fail(path, `must be one of ${ASSOC_OBJECTIVES.map((o) => `'${o}'`).join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as AssocObjective;
}

function isInnerLoss(v: unknown): v is InnerLoss {
  const l = v as InnerLoss;
  return typeof v === 'object' && v !== null && typeof l.name === 'string' && typeof l.grad === 'function' && typeof l.value === 'function';
}

export function resolveMatrixMemoryConfig(c: MatrixMemoryConfig, where = 'MatrixMemory'): ResolvedMatrixMemoryConfig {
  if (typeof c !== 'object' || c === null) fail(where, 'config must be an object');
  const loss = isInnerLoss(c.objective) ? c.objective : BUILTIN_INNER_LOSSES[checkObjectiveName(c.objective, `${where}.objective`)];
  return {
    keyDim: checkPositiveInt(c.keyDim, `${where}.keyDim`),
    valueDim: checkPositiveInt(c.valueDim, `${where}.valueDim`),
    loss,
    eta: checkEta(c.eta, `${where}.eta`),
    decay: checkDecay(c.decay, `${where}.decay`),
  };
}

export function resolveSlotMemoryConfig(c: SlotMemoryConfig, where = 'SlotMemory'): ResolvedSlotMemoryConfig {
  if (typeof c !== 'object' || c === null) fail(where, 'config must be an object');
  const t = c.temperature ?? 1;
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) fail(`${where}.temperature`, `must be a finite number > 0, got ${JSON.stringify(t)}`);
  return {
    slots: checkPositiveInt(c.slots, `${where}.slots`),
    keyDim: checkPositiveInt(c.keyDim, `${where}.keyDim`),
    valueDim: checkPositiveInt(c.valueDim, `${where}.valueDim`),
    temperature: t,
  };
}

function checkBool(v: unknown, dflt: boolean, path: string): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') fail(path, `must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** Validates the layer options; null dims mean "the input width", resolved at build time. */
export function resolveAssociativeMemoryOptions(o: AssociativeMemoryOptions, where = 'NlAssociativeMemory'): ResolvedAssociativeMemoryOptions {
  const dim = (v: unknown, f: string): number | null => (v === undefined || v === null ? null : checkPositiveInt(v, `${where}.${f}`));
  const objective = checkObjectiveName(o.objective, `${where}.objective`);
  let initialMemory: InitialMemory;
  if (o.initialMemory === undefined) {
    initialMemory = objective === 'cosine' ? 'learned' : 'zeros';
  } else if (!(INITIAL_MEMORIES as readonly string[]).includes(o.initialMemory as string)) {
    fail(`${where}.initialMemory`, `must be one of 'zeros', 'learned', got ${JSON.stringify(o.initialMemory)}`);
  } else {
    initialMemory = o.initialMemory;
  }
  if (objective === 'cosine' && initialMemory === 'zeros') {
    // The cosine gradient scales with 1/|M k|: undefined for the all-zero memory.
    fail(`${where}.initialMemory`, `'zeros' is invalid with objective 'cosine' (its gradient is undefined at M k = 0); use 'learned'`);
  }
  return {
    keyDim: dim(o.keyDim, 'keyDim'),
    valueDim: dim(o.valueDim, 'valueDim'),
    objective,
    eta: checkEta(o.eta, `${where}.eta`),
    decay: checkDecay(o.decay, `${where}.decay`),
    normalizeKeys: checkBool(o.normalizeKeys, true, `${where}.normalizeKeys`),
    useBias: checkBool(o.useBias, false, `${where}.useBias`),
    initialMemory,
    gradientMode: o.gradientMode === undefined ? 'full' : validateGradientMode(o.gradientMode, `${where}.gradientMode`),
  };
}
