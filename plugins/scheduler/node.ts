/**
 * The scheduler's Node-only door: the data-parallel transport over worker_threads (parallel/node.ts).
 * Kept out of index.ts so that browser bundles of the plugin never see worker_threads.
 */
export { availableCores, spawnNodeReplicas, startNodeDataParallel, NodeWorkerTransport, type NodeFactoryRef, type NodeReplicaSpec } from './parallel/node';
// Trainer checkpoints are files: their documented door is this one (index.ts keeps them too, loading
// core/io only when called, so that a page bundle of the plugin never imports node:fs).
export { saveTrainerCheckpoint, loadTrainerCheckpoint, CHECKPOINT_FORMAT, CHECKPOINT_VERSION } from './checkpoint';
