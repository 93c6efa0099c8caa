/** Inputs/outputs of the Titans memory recurrence, shared by ops/naive.ts and ops/chunked.ts. */
import type * as tf from '@tensorflow/tfjs';
import type { GradientMode } from '../../../core/level';
import type { MemorySpec, StepNorm } from './memory';

/** Per-head sequences with heads folded into the batch axis: N = B x H. */
export interface TitansRecurrenceInputs {
  q: tf.Tensor3D; // [N, T, d] queries (read only)
  k: tf.Tensor3D; // [N, T, d] keys (write)
  v: tf.Tensor3D; // [N, T, d] values (write)
  theta: tf.Tensor2D; // [N, T] step size theta_t > 0 (Titans Eq. 10)
  logEta: tf.Tensor2D; // [N, T] log eta_t <= 0, momentum decay (Eq. 10)
  logKeep: tf.Tensor2D; // [N, T] log(1 - alpha_t) <= 0, forgetting (Eq. 13)
  weights: tf.Tensor3D[]; // fast weights at the start, [N, out, in] each (MEMORY_KEYS order)
  momenta: tf.Tensor3D[]; // surprise momenta S at the start, same shapes
  /** Tokens of the current chunk already seen before this call, 0 <= position < chunkSize (default 0):
   * chunks are counted along the stream, so a call may start inside a chunk. */
  position?: number;
  /** Fast weights at the start of the current chunk (where its inner gradients are taken), same shapes
   * as `weights`; required when position > 0, ignored when position = 0. */
  chunkStart?: tf.Tensor3D[];
}

export interface TitansRecurrenceOptions extends MemorySpec {
  /** Tokens per chunk C: every inner gradient of a chunk is taken at the state at the chunk start
   * (Titans Eqs. 16-18). C = 1 is the fully sequential memory. */
  chunkSize: number;
  /** Per-token clip of the inner-gradient Frobenius norm (all matrices together); <= 0 = off. */
  innerGradClip: number;
  /** 'none' (default): the write is theta g; 'normalized': theta |e|^2 g / |g|^2 (ops/memory.ts stepFactor). */
  stepNorm?: StepNorm;
  /** 'full': outer gradients flow through the writes; 'stop': writes are not differentiated. */
  gradientMode: GradientMode;
  /** Recompute each chunk in the backward pass (tf.customGrad, ops/segments.ts) instead of keeping every
   * intermediate on the tape: memory O(T/C) chunk-start states + one chunk. Default true. */
  checkpoint?: boolean;
}

export interface TitansRecurrenceOutputs {
  y: tf.Tensor3D; // [N, T, d] reads y_t = M_t(q_t), after token t's write
  weights: tf.Tensor3D[]; // final fast weights
  momenta: tf.Tensor3D[]; // final momenta
  /** Fast weights at the start of the chunk the stream is in after this call (= weights when position = 0). */
  chunkStart: tf.Tensor3D[];
  /** Tokens of the current chunk seen after this call: (position + T) mod chunkSize. */
  position: number;
}

export function checkRecurrenceInputs(inp: TitansRecurrenceInputs, opts: TitansRecurrenceOptions, where: string): void {
  const [n, t, d] = inp.q.shape;
  for (const [name, x] of [['k', inp.k], ['v', inp.v]] as const) {
    if (x.shape.join() !== inp.q.shape.join()) throw new Error(`${where}: ${name} shape [${x.shape}] must equal q shape [${inp.q.shape}]`);
  }
  for (const [name, x] of [['theta', inp.theta], ['logEta', inp.logEta], ['logKeep', inp.logKeep]] as const) {
    if (x.shape.join() !== [n, t].join()) throw new Error(`${where}: ${name} shape [${x.shape}] must be [${n}, ${t}]`);
  }
  const want = opts.kind === 'linear' ? 1 : 2;
  if (inp.weights.length !== want || inp.momenta.length !== want) {
    throw new Error(`${where}: memory '${opts.kind}' needs ${want} weight and momentum matrices`);
  }
  inp.weights.forEach((w, i) => {
    if (w.shape[0] !== n || inp.momenta[i].shape.join() !== w.shape.join()) {
      throw new Error(`${where}: weights[${i}] [${w.shape}] and momenta[${i}] [${inp.momenta[i].shape}] must be equal and start with N=${n}`);
    }
  });
  if (opts.kind === 'linear' && inp.weights[0].shape.slice(1).join() !== [d, d].join()) {
    throw new Error(`${where}: linear memory W must be [N, ${d}, ${d}], got [${inp.weights[0].shape}]`);
  }
  if (!Number.isInteger(opts.chunkSize) || opts.chunkSize < 1) {
    throw new Error(`${where}: chunkSize must be a positive integer, got ${JSON.stringify(opts.chunkSize)}`);
  }
  const p = inp.position ?? 0;
  if (!Number.isInteger(p) || p < 0 || p >= opts.chunkSize) {
    throw new Error(`${where}: position must be an integer in [0, chunkSize=${opts.chunkSize}), got ${JSON.stringify(inp.position)}`);
  }
  if (p > 0) {
    if (!inp.chunkStart || inp.chunkStart.length !== want) throw new Error(`${where}: position ${p} > 0 needs chunkStart (${want} matrices)`);
    inp.chunkStart.forEach((w, i) => {
      if (w.shape.join() !== inp.weights[i].shape.join()) throw new Error(`${where}: chunkStart[${i}] [${w.shape}] must equal weights[${i}] [${inp.weights[i].shape}]`);
    });
  }
}
