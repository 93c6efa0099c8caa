/**
 * Shared types of the linear-memory recurrences. Both implementations (ops/naive.ts, ops/chunked.ts)
 * compute the same function; the layer flattens batch and heads into one leading axis N = B * H.
 */
import type * as tf from '@tensorflow/tfjs';

/** Write rule of the matrix memory S (per sequence, per head; S in R^{dv x dk}). */
export type LinearAttentionRule = 'additive' | 'delta' | 'gated-delta';
export const LINEAR_ATTENTION_RULES: readonly LinearAttentionRule[] = ['additive', 'delta', 'gated-delta'];

export interface RecurrenceInputs {
  /** Queries [N, T, dk] (already normalised / scaled by the caller if wanted). */
  q: tf.Tensor3D;
  /** Keys [N, T, dk]. */
  k: tf.Tensor3D;
  /** Values [N, T, dv]. */
  v: tf.Tensor3D;
  /** Write strength beta_t in (0, 1), [N, T]. Required by 'delta' and 'gated-delta', ignored by 'additive'. */
  beta?: tf.Tensor2D | null;
  /** log alpha_t <= 0 (forget gate in log space), [N, T]. Required by 'gated-delta' only. */
  logAlpha?: tf.Tensor2D | null;
  /** Memory before the first token, [N, dv, dk]. */
  s0: tf.Tensor3D;
}

export interface RecurrenceOutputs {
  /** Reads o_t = S_t q_t (after the write of token t), [N, T, dv]. */
  o: tf.Tensor3D;
  /** Memory after the last token, [N, dv, dk]. */
  s: tf.Tensor3D;
}

/** Checks shapes and the presence of beta / logAlpha for `rule`; `where` prefixes the error. */
export function checkRecurrenceInputs(rule: LinearAttentionRule, inp: RecurrenceInputs, where: string): void {
  const { q, k, v, s0 } = inp;
  const fail = (msg: string): never => {
    throw new Error(`${where}: ${msg}`);
  };
  if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3) fail(`q, k, v must be rank 3 [N, T, d], got [${q.shape}], [${k.shape}], [${v.shape}]`);
  const [n, t, dk] = q.shape;
  if (t < 1) fail(`sequence length must be >= 1, got ${t}`);
  if (k.shape[0] !== n || k.shape[1] !== t || k.shape[2] !== dk) fail(`k shape [${k.shape}] must equal q shape [${q.shape}]`);
  if (v.shape[0] !== n || v.shape[1] !== t) fail(`v shape [${v.shape}] must be [${n}, ${t}, dv]`);
  const dv = v.shape[2];
  if (s0.rank !== 3 || s0.shape[0] !== n || s0.shape[1] !== dv || s0.shape[2] !== dk) {
    fail(`s0 shape [${s0.shape}] must be [N, dv, dk] = [${n}, ${dv}, ${dk}]`);
  }
  const check2 = (name: string, x: tf.Tensor | null | undefined, needed: boolean): void => {
    if (x == null) {
      if (needed) fail(`rule '${rule}' needs ${name} [N, T]`);
      return;
    }
    if (x.rank !== 2 || x.shape[0] !== n || x.shape[1] !== t) fail(`${name} shape [${x.shape}] must be [${n}, ${t}]`);
  };
  check2('beta', inp.beta, rule !== 'additive');
  check2('logAlpha', inp.logAlpha, rule === 'gated-delta');
}
