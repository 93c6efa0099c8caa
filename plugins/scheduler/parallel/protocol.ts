/**
 * Data-parallel training protocol (issue 18): messages between a coordinator (rank 0, which also trains
 * a slice of every batch) and replicas (ranks 1..N-1), each a NestedTrainer over its own copy of the
 * model in its own thread/backend. Only plain data crosses the transport (JSON-like objects and typed
 * arrays, transferable), so the same protocol runs over Node worker_threads (./node.ts), Web Workers
 * (postMessage has the same shape) or in one thread (./loopback.ts, for tests).
 *
 * One step (batch of B sequences; sequences are independent: every memory state is per sequence):
 *   coordinator -> replica r   train {inputs, targets: the r-th slice, reduce}
 *   replica r   -> coordinator result {loss (mean over its slice), grads? (pending outer gradient sums by
 *                              position key, when reduce)}
 *   coordinator: g = sum_r (b_r / B) g_r   (= the full batch's gradient of its mean per-token loss)
 *   coordinator -> every replica  step {pieces, g}; every replica (and rank 0) applies the same bytes
 *   with NestedTrainer.stepWithOuterGradients (mean over pieces, clip, optimizer), so weights and
 *   optimizer state stay identical without a broadcast.
 * Setup: `sync` carries rank 0's trainer checkpoint (weights, optimizer state) to every replica.
 * Divergence guard (NestedTrainer options.divergence): when any rank refuses its slice (its train throws,
 * or returns `skipped`), every rank discards the piece's gradients (`discard`) and the step is refused
 * as a whole: the error (or the skip) is reported as 1 worker would. The loss test is per slice, so a
 * finite loss above maxLoss in one slice refuses the batch even if the batch mean is below it.
 */

/** A tensor as plain data. */
export interface WireTensor {
  key: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  data: Float32Array | Int32Array;
}

/** Optional per-message measurements (benchmarks). */
export interface Measurement {
  /** Registered-kernel calls while handling the message. */
  kernelCalls: number;
  /** High-water mark of live tensor bytes while handling the message. */
  peakBytes: number;
}

export type ToReplica =
  | { type: 'init'; id: number; factory: unknown }
  | { type: 'sync'; id: number; meta: unknown; tensors: WireTensor[] }
  | { type: 'train'; id: number; inputs: WireTensor; targets: WireTensor; reduce: boolean; measure: boolean }
  | { type: 'step'; id: number; pieces: number; grads: WireTensor[]; measure: boolean }
  | { type: 'discard'; id: number }
  | { type: 'weights'; id: number }
  | { type: 'close'; id: number };

export type FromReplica =
  | { type: 'ready'; id: number }
  | { type: 'result'; id: number; loss: number; pieces: number; grads: WireTensor[] | null; measurement?: Measurement; skipped?: unknown }
  | { type: 'stepped'; id: number; measurement?: Measurement }
  | { type: 'weights'; id: number; tensors: WireTensor[] }
  | { type: 'closed'; id: number }
  | { type: 'discarded'; id: number }
  | { type: 'error'; id: number; message: string; name?: string; info?: unknown };

/**
 * A message channel to one peer.
 * Web Workers (not tested here): the coordinator side wraps a `Worker` as
 *   { send: (m, t) => w.postMessage(m, t ?? []), onMessage: (h) => (w.onmessage = (e) => h(e.data)),
 *     onError: (h) => (w.onerror = (e) => h(new Error(e.message))), close: async () => w.terminate() }
 * and the worker script selects its backend, then calls serveReplica(transport, factory) with the same shape
 * over `self` (postMessage / onmessage). send() may transfer the listed buffers (the sender must not use them
 * afterwards). Implementations: worker_threads (./node.ts), Web Workers, in-process (./loopback.ts).
 */
export interface Transport<Out, In> {
  send(msg: Out, transfer?: ArrayBuffer[]): void;
  /** Sets the handler of incoming messages (one handler; replaces the previous). */
  onMessage(handler: (msg: In) => void): void;
  /** Called when the peer fails or exits unexpectedly. */
  onError(handler: (err: Error) => void): void;
  close(): Promise<void>;
}

export type CoordinatorTransport = Transport<ToReplica, FromReplica>;
export type ReplicaTransport = Transport<FromReplica, ToReplica>;

/** The buffers of the wire tensors (for the transfer list). */
export function buffersOf(ts: ReadonlyArray<WireTensor | null | undefined>): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const t of ts) if (t && t.data.buffer instanceof ArrayBuffer && !out.includes(t.data.buffer)) out.push(t.data.buffer);
  return out;
}
