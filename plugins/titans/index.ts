/** nested-learning/plugins/titans: public surface. */
export { titansPlugin } from './plugin';
export {
  NlTitansMemory,
  titansMemory,
  titansForward,
  titansInitialState,
  assertTitansFinite,
  TITANS_NORM_EPS,
  NO_MOMENTUM_LOG_ETA,
  type TitansOptions,
  type TitansWeights,
  type TitansWeightName,
} from './layer';
export {
  TITANS_DEFAULTS,
  TITANS_PARAMETERIZATION_DEFAULTS,
  TITANS_PARAMETERIZATIONS,
  MEMORY_OUTPUT_INITS,
  TITANS_IMPLS,
  CHECK_FINITE_MODES,
  QKV_ACTIVATIONS,
  TITANS_QK_NORMS,
  resolveTitansConfig,
  type CheckFinite,
  type QkvActivation,
  type ResolvedTitansConfig,
  type TitansImpl,
  type TitansMemoryArgs,
  type TitansQkNorm,
  type TitansParameterization,
  type MemoryOutputInit,
} from './config';
export { checkTitansState, disposeTitansState, titansStateShapes, CONV_WINDOW, type TitansMemoryState } from './state';
export { naiveTitans } from './ops/naive';
export { chunkedTitans } from './ops/chunked';
export {
  activate,
  activateGrad,
  applyMemory,
  clipFactor,
  stepFactor,
  STEP_NORMS,
  innerGradFactors,
  MEMORY_ACTIVATIONS,
  MEMORY_KEYS,
  MEMORY_KINDS,
  memoryMatrixShapes,
  type MemoryActivation,
  type MemoryKind,
  type MemorySpec,
  type StepNorm,
} from './ops/memory';
export type { TitansRecurrenceInputs, TitansRecurrenceOptions, TitansRecurrenceOutputs } from './ops/types';
