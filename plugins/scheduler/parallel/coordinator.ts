/**
 * DataParallelTrainer: rank 0 of the data-parallel protocol (./protocol.ts). Wraps the local
 * NestedTrainer (which trains the first slice of every batch in this thread) and N - 1 replicas behind
 * transports. Per train() call: the batch is split into contiguous slices of sequences (sizes differ by
 * at most one; at most B ranks are active), every rank trains its slice with the outer step deferred,
 * the outer gradients are reduced as sum_r (b_r / B) g_r (= the full batch's gradient of its mean
 * per-token loss), and every rank, the inactive ones included, steps with the same reduced bytes.
 * With gradient accumulation the reduction happens every accumulationSteps calls.
 *
 * In-context learning stays local to each rank: memory states and CMS level clocks are per sequence,
 * so a split batch updates each sequence's fast weights exactly as the full batch does.
 */
import * as tf from '@tensorflow/tfjs';
import { startKernelCounter, startPeakBytes } from '../../../core/profiling';
import type { NestedTrainer } from '../trainer';
import type { CoordinatorTransport, FromReplica, Measurement, ToReplica, WireTensor } from './protocol';
import { buffersOf } from './protocol';
import { fromWire, toWire, wireSlice } from './wire';

type Body<T> = T extends unknown ? Omit<T, 'id'> : never;

export interface ParallelTrainResult {
  /** Mean per-token loss of the whole batch. */
  loss: number;
  /** True when the outer optimizer stepped. */
  outerStep: boolean;
  /** Sequences per rank (rank 0 first; 0 = idle this call). */
  slices: number[];
  /** Per rank, when measure: kernel calls and peak live tensor bytes of its train + step. */
  measurement?: Measurement[];
  /** The divergence guard of some rank skipped the piece (onDivergence 'skip'): what it found. Nothing was applied. */
  skipped?: unknown;
}

interface Peer {
  transport: CoordinatorTransport;
  pending: Map<number, { resolve: (m: FromReplica) => void; reject: (e: Error) => void }>;
  failed: Error | null;
}

export class DataParallelTrainer {
  readonly local: NestedTrainer;
  private peers: Peer[];
  private nextId = 1;
  private pieces = 0;
  private closed = false;

  /** Prefer DataParallelTrainer.start (init + weight sync). */
  constructor(local: NestedTrainer, transports: CoordinatorTransport[]) {
    this.local = local;
    this.peers = transports.map((transport) => {
      const p: Peer = { transport, pending: new Map(), failed: null };
      transport.onMessage((m) => {
        const w = p.pending.get(m.id);
        if (!w) return;
        p.pending.delete(m.id);
        if (m.type === 'error') {
          const err = new Error(`data-parallel replica: ${m.message}`) as Error & { info?: unknown };
          if (m.name) err.name = m.name; // e.g. 'DivergenceError', with its info
          if (m.info !== undefined) err.info = m.info;
          w.reject(err);
        } else w.resolve(m);
      });
      transport.onError((e) => {
        p.failed = e;
        for (const w of p.pending.values()) w.reject(new Error(`data-parallel replica failed: ${e.message}`));
        p.pending.clear();
      });
      return p;
    });
  }

  /**
   * Builds every replica from `factory` (passed to its ReplicaFactory) and copies rank 0's weights and
   * optimizer state to them.
   */
  static async start(local: NestedTrainer, transports: CoordinatorTransport[], factory: unknown): Promise<DataParallelTrainer> {
    const dp = new DataParallelTrainer(local, transports);
    try {
      await Promise.all(dp.peers.map((p) => dp.request(p, { type: 'init', factory })));
      await dp.sync();
    } catch (e) {
      await dp.close().catch(() => undefined);
      throw e;
    }
    return dp;
  }

  /** Ranks, this one included. */
  get workers(): number {
    return this.peers.length + 1;
  }

  /** Copies rank 0's trainer checkpoint (weights, optimizer state, pending gradients) to every replica. */
  async sync(): Promise<void> {
    const { meta, tensors, owned } = await this.local.exportCheckpoint();
    let wire: WireTensor[];
    try {
      wire = tensors.filter((t) => !t.key.startsWith('state/') && !t.key.startsWith('outer/')).map((t) => toWire(t.key, t.tensor)); // weights + optimizer state
    } finally {
      tf.dispose(owned);
    }
    if (meta.pendingPieces > 0) {
      throw new Error(`DataParallelTrainer.sync: rank 0 has outer gradients pending from ${meta.pendingPieces} piece(s) of an accumulation window; start or sync at an outer-step boundary`);
    }
    const m = { ...meta, session: null, pendingOrder: [], pendingPieces: 0 }; // contexts stay local (each rank's own sequences)
    this.pieces = 0;
    await Promise.all(this.peers.map((p) => this.request(p, { type: 'sync', meta: m, tensors: wire })));
  }

  /** One piece of training over all ranks (a new context per call, as NestedTrainer.train's default). */
  async train(inputs: tf.Tensor, targets: tf.Tensor, opts: { measure?: boolean } = {}): Promise<ParallelTrainResult> {
    if (this.closed) throw new Error('DataParallelTrainer.train: closed');
    const b = inputs.shape[0];
    if (targets.shape[0] !== b) throw new Error(`DataParallelTrainer.train: targets batch ${targets.shape[0]} differs from inputs batch ${b}`);
    const measure = opts.measure ?? false;
    const ranks = Math.min(this.workers, b);
    const slices = Array.from({ length: this.workers }, (_, r) => (r < ranks ? Math.floor(b / ranks) + (r < b % ranks ? 1 : 0) : 0));
    const reduce = this.pieces + 1 >= this.local.options.accumulationSteps;
    // send the replicas' slices first, so they compute while rank 0 does
    const xd = inputs.dataSync() as Float32Array | Int32Array;
    const yd = targets.dataSync() as Float32Array | Int32Array;
    const replies: Array<Promise<FromReplica> | null> = [];
    let begin = slices[0];
    for (let r = 1; r < this.workers; r++) {
      if (slices[r] === 0) {
        replies.push(null);
        continue;
      }
      const wi = wireSlice('inputs', xd, inputs.shape, inputs.dtype as 'float32' | 'int32', begin, slices[r]);
      const wt = wireSlice('targets', yd, targets.shape, targets.dtype as 'float32' | 'int32', begin, slices[r]);
      begin += slices[r];
      replies.push(this.request(this.peers[r - 1], { type: 'train', inputs: wi, targets: wt, reduce, measure }, buffersOf([wi, wt])));
    }
    const k = measure ? startKernelCounter() : null;
    const pk = measure ? startPeakBytes() : null;
    try {
      let localLoss = NaN;
      let localError: unknown = null;
      let skipped: unknown;
      try {
        const x = inputs.slice(0, slices[0]);
        const y = targets.slice(0, slices[0]);
        try {
          const r = this.local.train(x, y, { deferOuterStep: true }) as { loss: number; skipped?: unknown };
          localLoss = r.loss;
          skipped = r.skipped;
        } finally {
          tf.dispose([x, y]);
        }
      } catch (e) {
        localError = e;
      }
      const settled = await Promise.allSettled(replies.map((p) => p ?? Promise.resolve(null)));
      const results = settled.map((st) => (st.status === 'fulfilled' ? (st.value as Extract<FromReplica, { type: 'result' }> | null) : null));
      const replicaError = settled.find((st): st is PromiseRejectedResult => st.status === 'rejected');
      skipped ??= results.find((res) => res?.skipped !== undefined)?.skipped;
      this.pieces++;
      let loss = (slices[0] / b) * localLoss;
      results.forEach((res, i) => {
        if (res) loss += (slices[i + 1] / b) * res.loss;
      });
      if (localError !== null || replicaError || skipped !== undefined) {
        // a rank refused its slice (divergence guard) or failed: the piece is refused on every rank
        this.local.discardOuterGradients();
        await Promise.allSettled(this.peers.map((p) => this.request(p, { type: 'discard' })));
        this.pieces = 0;
        if (localError !== null) throw localError;
        if (replicaError) throw replicaError.reason;
        return { loss, outerStep: false, slices, skipped };
      }
      let outerStep = false;
      let acks: Array<Extract<FromReplica, { type: 'stepped' }> | null> = [];
      if (reduce) {
        const own = this.local.pendingOuterGradients();
        const keys = own.grads.map((g) => g.key);
        for (const res of results) for (const g of res?.grads ?? []) if (!keys.includes(g.key)) keys.push(g.key);
        const reduced = tf.tidy(() =>
          keys.map((key) => {
            const parts: tf.Tensor[] = [];
            const mine = own.grads.find((g) => g.key === key);
            if (mine) parts.push(mine.tensor.mul(slices[0] / b));
            results.forEach((res, i) => {
              const w = res?.grads?.find((g) => g.key === key);
              if (w) parts.push(fromWire(w).mul(slices[i + 1] / b));
            });
            return { key, tensor: tf.keep(parts.length === 1 ? parts[0] : tf.addN(parts)) };
          }),
        );
        const pieces = this.pieces;
        const before = this.local.outerSteps;
        let stepped: Array<Promise<FromReplica>> = [];
        let stepError: unknown = null;
        try {
          const wire = reduced.map((g) => toWire(g.key, g.tensor));
          stepped = this.peers.map((p) => this.request(p, { type: 'step', pieces, grads: wire, measure }));
          this.local.stepWithOuterGradients(pieces, reduced); // the gradient-norm guard sees the same bytes on every rank
        } catch (e) {
          stepError = e;
        } finally {
          tf.dispose(reduced.map((g) => g.tensor));
        }
        this.pieces = 0;
        const st = await Promise.allSettled(stepped);
        if (stepError !== null) throw stepError;
        const bad = st.find((x): x is PromiseRejectedResult => x.status === 'rejected');
        if (bad) throw bad.reason;
        acks = st.map((x) => (x.status === 'fulfilled' ? (x.value as Extract<FromReplica, { type: 'stepped' }>) : null));
        outerStep = this.local.outerSteps > before; // false when the guard skipped the step (on every rank alike)
      }
      const out: ParallelTrainResult = { loss, outerStep, slices };
      if (k && pk) {
        out.measurement = [
          { kernelCalls: k.counts().total, peakBytes: pk.peak() },
          ...this.peers.map((_, i) => {
            const a = results[i]?.measurement;
            const m = acks[i]?.measurement;
            return { kernelCalls: (a?.kernelCalls ?? 0) + (m?.kernelCalls ?? 0), peakBytes: Math.max(a?.peakBytes ?? 0, m?.peakBytes ?? 0) };
          }),
        ];
      }
      return out;
    } finally {
      pk?.stop();
      k?.stop();
    }
  }

  /** Every replica's model weights and optimizer state (rank 1..N-1; trainer checkpoint keys 'var/...', 'opt/...', ...). */
  async replicaWeights(): Promise<WireTensor[][]> {
    const r = await Promise.all(this.peers.map((p) => this.request(p, { type: 'weights' })));
    return r.map((m) => (m as Extract<FromReplica, { type: 'weights' }>).tensors);
  }

  /** Closes every replica (disposes its model) and its transport. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.peers.map((p) => (p.failed ? Promise.resolve() : this.request(p, { type: 'close' }, [], true))));
    await Promise.allSettled(this.peers.map((p) => p.transport.close()));
  }

  private request(p: Peer, body: Body<ToReplica>, transfer: ArrayBuffer[] = [], closing = false): Promise<FromReplica> {
    if (p.failed) return Promise.reject(new Error(`data-parallel replica failed: ${p.failed.message}`));
    if (this.closed && !closing) return Promise.reject(new Error('DataParallelTrainer: closed'));
    const id = this.nextId++;
    return new Promise<FromReplica>((resolve, reject) => {
      p.pending.set(id, { resolve, reject });
      p.transport.send({ ...body, id } as ToReplica, transfer);
    });
  }
}
