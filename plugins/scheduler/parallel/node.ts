/**
 * Node-only: the data-parallel protocol over worker_threads. Each worker is its own tfjs engine and
 * backend instance (wasm: its own module and heap, one thread), so N workers use N cores. Not exported
 * from the plugin's index (browser bundles must not see worker_threads); apps import it through the
 * plugin's Node door, plugins/scheduler/node.ts (nested-learning/plugins/scheduler/node).
 *
 *   const dp = await startNodeDataParallel(trainer, 2, { backend: 'wasm', module: require.resolve('./my-factory'), export: 'buildReplica', payload: config });
 *   const r = await dp.train(inputs, targets);
 *   await dp.close();
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { NestedTrainer } from '../trainer';
import { DataParallelTrainer } from './coordinator';
import type { CoordinatorTransport, FromReplica, ToReplica } from './protocol';

/** The cores this process may use (os.availableParallelism). */
export function availableCores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** What each worker builds: `require(module)[exportName](payload)` must return a ReplicaHandle (./replica.ts). */
export interface NodeReplicaSpec {
  /** Backend for selectBackend in each worker (e.g. 'wasm'). */
  backend: string;
  /** Absolute path of the module exporting the ReplicaFactory (.ts when running from source). */
  module: string;
  /** Export name of the factory in `module`. */
  export: string;
  /** JSON-serialisable argument of the factory (e.g. a run config). */
  payload: unknown;
}

/** The payload of the `init` message the Node worker bootstrap understands. */
export interface NodeFactoryRef {
  module: string;
  export: string;
  payload: unknown;
}

export class NodeWorkerTransport implements CoordinatorTransport {
  readonly worker: Worker;
  private errorHandler: ((e: Error) => void) | null = null;
  private closing = false;

  constructor(worker: Worker) {
    this.worker = worker;
    worker.on('error', (e) => this.errorHandler?.(e));
    worker.on('exit', (code) => {
      if (!this.closing) this.errorHandler?.(new Error(`worker exited with code ${code}`));
    });
  }

  send(msg: ToReplica, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(msg, transfer);
  }

  onMessage(handler: (msg: FromReplica) => void): void {
    this.worker.removeAllListeners('message');
    this.worker.on('message', handler);
  }

  onError(handler: (err: Error) => void): void {
    this.errorHandler = handler;
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }
}

/** Node flags a worker must share with this process (export conditions, preloaded modules). */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const a = process.execArgv;
  for (let i = 0; i < a.length; i++) {
    const f = a[i];
    if (f.startsWith('--conditions=') || f.startsWith('-C=') || f.startsWith('--require=') || f.startsWith('--max-old-space-size') || f.startsWith('--stack-size')) out.push(f);
    else if ((f === '--conditions' || f === '-C' || f === '-r' || f === '--require') && i + 1 < a.length) out.push(f, a[++i]);
  }
  return out;
}

// The worker's entry: registers ts-node when the bootstrap is TypeScript (running from source) and the
// process did not preload it, then loads the bootstrap.
const BOOT = `
const { workerData } = require('node:worker_threads');
if (workerData.entry.endsWith('.ts') && !require.extensions['.ts']) require(workerData.tsNode).register({ transpileOnly: true, projectSearchDir: workerData.root });
require(workerData.entry);
`;

/** Starts `count` worker threads running the replica bootstrap (./node-worker.ts) on `backend`. */
export function spawnNodeReplicas(count: number, backend: string): NodeWorkerTransport[] {
  const ext = path.extname(__filename); // '.ts' from source, '.js' from dist
  const entry = path.join(__dirname, `node-worker${ext}`);
  let tsNode = '';
  if (ext === '.ts') tsNode = require.resolve('ts-node');
  const root = path.resolve(__dirname, '..', '..', '..');
  return Array.from({ length: count }, () => new NodeWorkerTransport(new Worker(BOOT, { eval: true, workerData: { entry, tsNode, root, backend }, execArgv: workerExecArgv() })));
}

/**
 * Data parallelism over `workers` ranks: this thread (rank 0, training with `local`) plus workers - 1
 * worker threads, each building its replica with `spec` and receiving rank 0's weights and optimizer
 * state. workers <= 1: no threads (the returned trainer runs everything locally).
 */
export async function startNodeDataParallel(local: NestedTrainer, workers: number, spec: NodeReplicaSpec): Promise<DataParallelTrainer> {
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`workers: must be an integer >= 1, got ${JSON.stringify(workers)}`);
  const transports = spawnNodeReplicas(workers - 1, spec.backend);
  const factory: NodeFactoryRef = { module: spec.module, export: spec.export, payload: spec.payload };
  return DataParallelTrainer.start(local, transports, factory);
}
