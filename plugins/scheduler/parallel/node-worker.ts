/**
 * Node-only worker bootstrap of a data-parallel replica (started by ./node.ts): selects the backend
 * named in workerData, then serves the protocol on parentPort, building the replica with the factory
 * named in the `init` message (NodeFactoryRef).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend } from '../../../core/backend';
import type { NodeFactoryRef } from './node';
import type { FromReplica, ReplicaTransport, ToReplica } from './protocol';
import { serveReplica, type ReplicaFactory, type ReplicaHandle } from './replica';

const port = parentPort;
if (!port) throw new Error('node-worker.ts: must run in a worker thread (plugins/scheduler/parallel/node.ts starts it)');
const backendReady = selectBackend((workerData as { backend: string }).backend);

const transport: ReplicaTransport = {
  send: (m: FromReplica, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer),
  onMessage: (h: (m: ToReplica) => void) => port.on('message', h),
  onError: () => undefined,
  close: async () => port.close(),
};

const factory: ReplicaFactory = async (payload: unknown): Promise<ReplicaHandle> => {
  await backendReady;
  const ref = payload as NodeFactoryRef;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(ref.module) as Record<string, ReplicaFactory>;
  const f = mod[ref.export];
  if (typeof f !== 'function') throw new Error(`${ref.module}: no export '${ref.export}' (a ReplicaFactory)`);
  return f(ref.payload);
};

void serveReplica(transport, factory).then(() => port.close());
