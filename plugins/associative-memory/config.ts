/**
 * Configuration of the associative-memory plugin: literal unions for modes, defaults, and validation
 * that names the offending field (e.g. "MatrixMemory.decay: must be in [0, 1), got 1.5").
 */
import { validateGradientMode, type GradientMode, type InnerLoss, BUILTIN_INNER_LOSSES } from '../../core';
import { failAt, fields, is, nullable, withDefault } from '../../core/validate';

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

/** The field checks (core/validate.ts kit); eta, decay, objective default when undefined. */
export const checkPositiveInt = is.posInt;
export const checkEta = withDefault(is.number({ min: 0 }), DEFAULT_ETA, 'undefined');
export const checkDecay = withDefault(is.number({ min: 0, below: 1 }), DEFAULT_DECAY, 'undefined');
export const checkObjectiveName = withDefault(is.oneOf(ASSOC_OBJECTIVES), DEFAULT_OBJECTIVE, 'undefined');

function isInnerLoss(v: unknown): v is InnerLoss {
  const l = v as InnerLoss;
  return typeof v === 'object' && v !== null && typeof l.name === 'string' && typeof l.grad === 'function' && typeof l.value === 'function';
}

export function resolveMatrixMemoryConfig(c: MatrixMemoryConfig, where = 'MatrixMemory'): ResolvedMatrixMemoryConfig {
  if (typeof c !== 'object' || c === null) failAt(where, 'config must be an object');
  const loss = isInnerLoss(c.objective) ? c.objective : BUILTIN_INNER_LOSSES[checkObjectiveName(c.objective, `${where}.objective`)];
  const { keyDim, valueDim, eta, decay } = fields(c as unknown as Record<string, unknown>, { keyDim: is.posInt, valueDim: is.posInt, eta: checkEta, decay: checkDecay }, where);
  return { keyDim, valueDim, loss, eta, decay };
}

export function resolveSlotMemoryConfig(c: SlotMemoryConfig, where = 'SlotMemory'): ResolvedSlotMemoryConfig {
  if (typeof c !== 'object' || c === null) failAt(where, 'config must be an object');
  const temperature = withDefault(is.number({ above: 0 }), 1)(c.temperature, `${where}.temperature`);
  return { ...fields(c as unknown as Record<string, unknown>, { slots: is.posInt, keyDim: is.posInt, valueDim: is.posInt }, where), temperature };
}

/** Validates the layer options; null dims mean "the input width", resolved at build time. */
export function resolveAssociativeMemoryOptions(o: AssociativeMemoryOptions, where = 'NlAssociativeMemory'): ResolvedAssociativeMemoryOptions {
  const objective = checkObjectiveName(o.objective, `${where}.objective`);
  const initialMemory = withDefault(is.oneOf(INITIAL_MEMORIES), objective === 'cosine' ? 'learned' : 'zeros', 'undefined')(o.initialMemory, `${where}.initialMemory`);
  if (objective === 'cosine' && initialMemory === 'zeros') {
    // The cosine gradient scales with 1/|M k|: undefined for the all-zero memory.
    failAt(`${where}.initialMemory`, `'zeros' is invalid with objective 'cosine' (its gradient is undefined at M k = 0); use 'learned'`);
  }
  const f = fields(
    o as Record<string, unknown>,
    {
      keyDim: nullable(is.posInt),
      valueDim: nullable(is.posInt),
      eta: checkEta,
      decay: checkDecay,
      normalizeKeys: withDefault(is.bool(), true, 'undefined'),
      useBias: withDefault(is.bool(), false, 'undefined'),
      gradientMode: withDefault(validateGradientMode, 'full', 'undefined'),
    },
    where,
  );
  return { keyDim: f.keyDim, valueDim: f.valueDim, objective, eta: f.eta, decay: f.decay, normalizeKeys: f.normalizeKeys, useBias: f.useBias, initialMemory, gradientMode: f.gradientMode };
}
