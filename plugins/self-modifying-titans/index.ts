/** nested-learning/plugins/self-modifying-titans: public surface. */
export { selfModifyingTitansPlugin } from './plugin';
export { NlSelfModifyingTitans, selfModifyingTitans } from './layer';
export { SMT_DEFAULTS, SMT_INNER_LOSSES, resolveSmtConfig, type ResolvedSmtConfig, type SelfModifyingTitansArgs, type SmtInnerLossName } from './config';
export {
  initialSmtState,
  memoryNames,
  segmentLengths,
  selfModifyingTitansForward,
  stateShapes,
  NORMALIZE_MODES,
  SMT_IMPLS,
  type MemoryName,
  type NormalizeMode,
  type SmtImpl,
  type SmtOptions,
  type SmtState,
  type SmtWeightName,
  type SmtWeights,
} from './ops/forward';
export { activate, activateGrad, innerGradients, readMemory, MEMORY_ACTIVATIONS, type MemoryActivation } from './ops/memory';
export { chunkedSegment, naiveSegment, type GroupWeights, type RecurrenceOptions, type SegmentWrites } from './ops/recurrence';
