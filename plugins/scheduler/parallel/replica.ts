/**
 * The replica side of the data-parallel protocol (./protocol.ts), platform-neutral: a bootstrap (Node:
 * ./node-worker.ts; a browser: a Web Worker script) selects the backend, then calls serveReplica with its
 * transport and a factory that builds the replica's trainer from the coordinator's `init` payload.
 * Messages are handled one at a time, in order.
 */
import * as tf from '@tensorflow/tfjs';
import { startKernelCounter, startPeakBytes } from '../../../core/profiling';
import type { NestedTrainer, TrainerCheckpointMeta } from '../trainer';
import type { FromReplica, Measurement, ReplicaTransport, ToReplica, WireTensor } from './protocol';
import { buffersOf } from './protocol';
import { fromWire, toWire } from './wire';

export interface ReplicaHandle {
  trainer: NestedTrainer;
  dispose(): void;
}

/** Builds the replica's model and trainer from the `init` payload (same architecture as rank 0's). */
export type ReplicaFactory = (payload: unknown) => ReplicaHandle | Promise<ReplicaHandle>;

function measured<T>(on: boolean, fn: () => T): { result: T; measurement?: Measurement } {
  if (!on) return { result: fn() };
  const k = startKernelCounter();
  const p = startPeakBytes();
  try {
    const result = fn();
    return { result, measurement: { kernelCalls: k.counts().total, peakBytes: p.peak() } };
  } finally {
    p.stop();
    k.stop();
  }
}

/** Serves the protocol on `transport` until `close`; returns a promise that settles when closed. */
export function serveReplica(transport: ReplicaTransport, factory: ReplicaFactory): Promise<void> {
  let handle: ReplicaHandle | null = null;
  let queue: Promise<void> = Promise.resolve();
  let closed!: () => void;
  const done = new Promise<void>((res) => (closed = res));
  const trainer = (): NestedTrainer => {
    if (!handle) throw new Error('data-parallel replica: not initialised (init first)');
    return handle.trainer;
  };
  const send = (m: FromReplica, transfer: ArrayBuffer[] = []): void => transport.send(m, transfer);

  async function handleMessage(msg: ToReplica): Promise<void> {
    switch (msg.type) {
      case 'init': {
        if (handle) handle.dispose();
        handle = await factory(msg.factory);
        send({ type: 'ready', id: msg.id });
        return;
      }
      case 'sync': {
        const map = new Map(msg.tensors.map((w) => [w.key, fromWire(w)]));
        try {
          await trainer().importCheckpoint(msg.meta as TrainerCheckpointMeta, map);
        } finally {
          tf.dispose([...map.values()]);
        }
        send({ type: 'ready', id: msg.id });
        return;
      }
      case 'train': {
        const tr = trainer();
        const x = fromWire(msg.inputs);
        const y = fromWire(msg.targets);
        const { result, measurement } = measured(msg.measure, () => {
          try {
            const r = tr.train(x, y, { deferOuterStep: true }) as { loss: number; skipped?: unknown };
            const p = msg.reduce && !r.skipped ? tr.pendingOuterGradients() : null;
            return { loss: r.loss, pieces: p?.pieces ?? 0, grads: p ? p.grads.map((g) => toWire(g.key, g.tensor)) : null, ...(r.skipped ? { skipped: r.skipped } : {}) };
          } finally {
            tf.dispose([x, y]);
          }
        });
        send({ type: 'result', id: msg.id, ...result, ...(measurement ? { measurement } : {}) }, buffersOf(result.grads ?? []));
        return;
      }
      case 'step': {
        const tr = trainer();
        const grads = msg.grads.map((w) => ({ key: w.key, tensor: fromWire(w) }));
        const { measurement } = measured(msg.measure, () => {
          try {
            tr.stepWithOuterGradients(msg.pieces, grads);
          } finally {
            tf.dispose(grads.map((g) => g.tensor));
          }
        });
        send({ type: 'stepped', id: msg.id, ...(measurement ? { measurement } : {}) });
        return;
      }
      case 'discard': {
        trainer().discardOuterGradients();
        send({ type: 'discarded', id: msg.id });
        return;
      }
      case 'weights': {
        const { tensors, owned } = await trainer().exportCheckpoint();
        let out: WireTensor[];
        try {
          out = tensors.filter((t) => !t.key.startsWith('state/') && !t.key.startsWith('outer/')).map((t) => toWire(t.key, t.tensor));
        } finally {
          tf.dispose(owned);
        }
        send({ type: 'weights', id: msg.id, tensors: out }, buffersOf(out));
        return;
      }
      case 'close': {
        if (handle) handle.dispose();
        handle = null;
        send({ type: 'closed', id: msg.id });
        closed();
        return;
      }
    }
  }

  transport.onMessage((msg) => {
    queue = queue.then(() =>
      handleMessage(msg).catch((e: unknown) => {
        const err = e as Error & { info?: unknown };
        send({ type: 'error', id: msg.id, message: err?.message ?? String(e), name: err?.name, ...(err?.info !== undefined ? { info: structuredClone(err.info) } : {}) });
      }),
    );
  });
  return done;
}
