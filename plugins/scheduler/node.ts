/**
 * The scheduler's Node-only door: the data-parallel transport over worker_threads (parallel/node.ts).
 * Kept out of index.ts so that browser bundles of the plugin never see worker_threads.
 */
export { availableCores, spawnNodeReplicas, startNodeDataParallel, NodeWorkerTransport, type NodeFactoryRef, type NodeReplicaSpec } from './parallel/node';
