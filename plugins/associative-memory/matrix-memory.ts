/**
 * MatrixMemory: a linear associative memory M in R^{dv x dk} per sequence (paper Definition 1, Eq. 6).
 * Writing a pair (k, v) is one gradient-descent step on the inner objective L~(M k; v):
 *
 *   M <- (1 - alpha) M - eta * dL/dM,   dL/dM = g k^T,   g = dL/dp at p = M k   (linear memory)
 *
 * g comes from the core InnerLoss's analytic gradient, so the objective picks the rule:
 *   'dot'    L = -<Mk, v>            -> Hebbian   M += eta v k^T                 (Eq. 18)
 *   'l2'     L = 1/2 |Mk - v|^2      -> delta     M -= eta (M k - v) k^T
 *   'cosine' L = -cos(Mk, v)         -> Oja-style M += eta/|p| (v^ - <p^, v^> p^) k^T   (README)
 * The decay alpha is weight decay: the step is GD with step eta on L + alpha/(2 eta) |M|_F^2.
 *
 * Pure: state in, new state out; nothing is mutated or disposed (the caller owns both states).
 */
import * as tf from '@tensorflow/tfjs';
import { BUILTIN_INNER_LOSSES, dotLoss, type InnerLoss } from '../../core';
import { resolveMatrixMemoryConfig, UPDATE_RULE_OF, type AssocObjective, type MatrixMemoryConfig, type UpdateRuleName } from './config';
import { assertMatrixMemoryState, zeroMatrixMemoryState, type MatrixMemoryState } from './state';
import { checkShape } from './util';

/**
 * One write of a batch of pairs, one pair per row: returns (1 - decay) M - eta g k^T.
 * memory [B, dv, dk], key [B, dk], value [B, dv] -> [B, dv, dk]. Not wrapped in tidy: callers run it
 * inside their own tidy (it is the inner body of token loops).
 * `readMemory` (default `memory`) is where the prediction p = M k is taken; the layer's 'stop' mode
 * passes a gradient-stopped copy so writes carry no outer gradient.
 */
export function matrixMemoryWrite(
  memory: tf.Tensor,
  key: tf.Tensor,
  value: tf.Tensor,
  loss: InnerLoss,
  eta: number,
  decay: number,
  readMemory: tf.Tensor = memory,
): tf.Tensor3D {
  const k = key.expandDims(1); // [B, 1, dk]
  const p = readMemory.mul(k).sum(-1); // [B, dv] = M k (elementwise+sum: no batched matmul)
  const g = loss.grad(p, value); // [B, dv] = dL/dp
  const gradM = g.expandDims(2).mul(k); // [B, dv, dk] = g k^T = dL/dM
  const kept = decay > 0 ? memory.mul(1 - decay) : memory;
  return kept.sub(gradM.mul(eta)) as tf.Tensor3D;
}

/** Reads memory [B, dv, dk] at one query per row, query [B, dk] -> [B, dv] (= M q). No tidy. */
export function matrixMemoryReadOne(memory: tf.Tensor, query: tf.Tensor): tf.Tensor2D {
  return memory.mul(query.expandDims(1)).sum(-1) as tf.Tensor2D;
}

export class MatrixMemory {
  readonly keyDim: number;
  readonly valueDim: number;
  /** The inner objective whose GD step is the write rule. */
  readonly loss: InnerLoss;
  readonly eta: number;
  readonly decay: number;

  constructor(config: MatrixMemoryConfig) {
    const c = resolveMatrixMemoryConfig(config);
    this.keyDim = c.keyDim;
    this.valueDim = c.valueDim;
    this.loss = c.loss;
    this.eta = c.eta;
    this.decay = c.decay;
  }

  /** Name of the write rule, or 'custom' for a plugin-provided objective. */
  get rule(): UpdateRuleName | 'custom' {
    const name = this.loss.name as AssocObjective;
    return (BUILTIN_INNER_LOSSES as Record<string, InnerLoss>)[name] === this.loss ? UPDATE_RULE_OF[name] : 'custom';
  }

  /** Empty memory for `batchSize` sequences: M = 0, [B, dv, dk]. */
  initialState(batchSize: number): MatrixMemoryState {
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`MatrixMemory.initialState: batchSize must be a positive integer, got ${JSON.stringify(batchSize)}`);
    return zeroMatrixMemoryState(batchSize, this.valueDim, this.keyDim);
  }

  /**
   * Writes N pairs per row, in order (token-by-token semantics): keys [B, N, dk], values [B, N, dv].
   * The Hebbian rule has an exact parallel form (the increments do not depend on M), used here;
   * delta and cosine run the sequential recurrence.
   */
  store(state: MatrixMemoryState, keys: tf.Tensor, values: tf.Tensor): MatrixMemoryState {
    this.checkStore(state, keys, values, 'store');
    if (this.loss !== dotLoss || (keys.shape as number[])[1] === 0) return this.sequentialUnchecked(state, keys, values);
    return tf.tidy(() => {
      // Hebbian (Eq. 18 with decay): M_N = (1-a)^N M_0 + sum_i eta (1-a)^(N-1-i) v_i k_i^T.
      const n = (keys.shape as number[])[1];
      const r = 1 - this.decay;
      const w = new Float32Array(n);
      for (let i = 0; i < n; i++) w[i] = this.eta * Math.pow(r, n - 1 - i);
      const vw = values.mul(tf.tensor1d(w).reshape([1, n, 1])); // [B, N, dv]
      const sum = tf.matMul(vw, keys, true, false); // [B, dv, N] x [B, N, dk] -> [B, dv, dk]
      const m0 = this.decay > 0 ? state.memory.mul(Math.pow(r, n)) : state.memory;
      return { memory: m0.add(sum) as tf.Tensor3D };
    });
  }

  /** Reference form: the write rule applied pair by pair, for every objective. Same result as store(). */
  storeSequential(state: MatrixMemoryState, keys: tf.Tensor, values: tf.Tensor): MatrixMemoryState {
    this.checkStore(state, keys, values, 'storeSequential');
    return this.sequentialUnchecked(state, keys, values);
  }

  /** retrieve(q) = M q for N queries per row: queries [B, N, dk] -> [B, N, dv]. Does not write. */
  retrieve(state: MatrixMemoryState, queries: tf.Tensor): tf.Tensor3D {
    assertMatrixMemoryState(state, -1, this.valueDim, this.keyDim, 'MatrixMemory.retrieve: state');
    const b = state.memory.shape[0];
    checkShape(queries, [b, -1, this.keyDim], 'MatrixMemory.retrieve: queries', `[B=${b}, N, keyDim=${this.keyDim}]`);
    return tf.tidy(() => tf.matMul(queries, state.memory, false, true) as tf.Tensor3D); // [B, N, dk] x [B, dk, dv]
  }

  /** The inner objective summed over rows and pairs: sum_{b,i} L~(M_b k_i; v_i) -> scalar. */
  objective(state: MatrixMemoryState, keys: tf.Tensor, values: tf.Tensor): tf.Scalar {
    this.checkStore(state, keys, values, 'objective');
    return tf.tidy(() => this.loss.value(tf.matMul(keys, state.memory, false, true), values).sum() as tf.Scalar);
  }

  private sequentialUnchecked(state: MatrixMemoryState, keys: tf.Tensor, values: tf.Tensor): MatrixMemoryState {
    return tf.tidy(() => {
      const ks = tf.unstack(keys, 1); // N x [B, dk]
      const vs = tf.unstack(values, 1); // N x [B, dv]
      let m: tf.Tensor = state.memory;
      for (let i = 0; i < ks.length; i++) m = matrixMemoryWrite(m, ks[i], vs[i], this.loss, this.eta, this.decay);
      // N = 0 would return the input tensor itself: clone so the result is always a new tensor.
      return { memory: (m === state.memory ? m.clone() : m) as tf.Tensor3D };
    });
  }

  private checkStore(state: MatrixMemoryState, keys: tf.Tensor, values: tf.Tensor, fn: string): void {
    assertMatrixMemoryState(state, -1, this.valueDim, this.keyDim, `MatrixMemory.${fn}: state`);
    const b = state.memory.shape[0];
    checkShape(keys, [b, -1, this.keyDim], `MatrixMemory.${fn}: keys`, `[B=${b}, N, keyDim=${this.keyDim}]`);
    const n = (keys.shape as number[])[1];
    checkShape(values, [b, n, this.valueDim], `MatrixMemory.${fn}: values`, `[B=${b}, N=${n}, valueDim=${this.valueDim}]`);
  }
}
