/** Public surface of nested-learning/plugins/scheduler. */
export { schedulerPlugin, SCHEDULER_TOKENS, type NestedTrainerFactory } from './plugin';
export { NestedModel, disposeStates } from '../../core';
export type { NestedStage, StageStates } from '../../core';
export { NestedTrainer, PARTIAL_CHUNK_POLICIES, DivergenceError, validateTrainerMeta } from './trainer';
export type {
  DivergenceInfo,
  DivergenceOptions,
  LevelClock,
  NestedTrainerOptions,
  PartialChunkPolicy,
  ProgressEvent,
  RunOptions,
  RunResult,
  SegmentEvent,
  TokenLoss,
  TrainerCheckpointMeta,
} from './trainer';
// Trainer checkpoints (Node: they read and write files; core/io is loaded when they are called).
export { saveTrainerCheckpoint, loadTrainerCheckpoint, CHECKPOINT_FORMAT, CHECKPOINT_VERSION } from './checkpoint';
export { tokenSquaredError, tokenCrossEntropy } from './losses';
// Data parallelism, platform-neutral parts (the Node worker_threads transport is the plugin's Node door, node.ts).
export { DataParallelTrainer, type ParallelTrainResult } from './parallel/coordinator';
export { serveReplica, type ReplicaFactory, type ReplicaHandle } from './parallel/replica';
export { loopbackPair } from './parallel/loopback';
export type { Transport, CoordinatorTransport, ReplicaTransport, ToReplica, FromReplica, WireTensor, Measurement } from './parallel/protocol';
// Levels as data and the pure plan come from core (createPeriodicScheduler, LevelSpec).
export { createPeriodicScheduler } from '../../core';
export type { LevelSpec, Scheduler, Boundary } from '../../core';
