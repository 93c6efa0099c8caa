/** Public surface of nested-learning/plugins/associative-memory. */
export { associativeMemoryPlugin } from './plugin';
export { MatrixMemory, matrixMemoryWrite, matrixMemoryReadOne } from './matrix-memory';
export { SlotMemory } from './slot-memory';
export { NlAssociativeMemory, associativeMemory } from './layer';
export type { AssociativeMemoryLayerArgs, AssociativeMemoryStreamResult, TfLayerArgs } from './layer';
export {
  ASSOC_OBJECTIVES,
  UPDATE_RULE_OF,
  INITIAL_MEMORIES,
  resolveMatrixMemoryConfig,
  resolveSlotMemoryConfig,
  resolveAssociativeMemoryOptions,
} from './config';
export type {
  AssocObjective,
  UpdateRuleName,
  InitialMemory,
  MatrixMemoryConfig,
  SlotMemoryConfig,
  AssociativeMemoryOptions,
  ResolvedAssociativeMemoryOptions,
} from './config';
export { zeroMatrixMemoryState, emptySlotMemoryState, assertMatrixMemoryState, assertSlotMemoryState } from './state';
export type { MatrixMemoryState, SlotMemoryState } from './state';
