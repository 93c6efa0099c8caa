/** nested-learning/plugins/linear-attention: public surface. */
export { linearAttentionPlugin } from './plugin';
export {
  NlLinearAttention,
  linearAttention,
  linearAttentionForward,
  QK_NORM_EPS,
  type LinearAttentionOptions,
  type LinearAttentionWeights,
  type LinearAttentionWeightName,
} from './layer';
export {
  LINEAR_ATTENTION_DEFAULTS,
  LINEAR_ATTENTION_IMPLS,
  QK_NORMS,
  QUERY_SCALES,
  resolveLinearAttentionConfig,
  type InitializerName,
  type InitializerSpec,
  type LinearAttentionArgs,
  type LinearAttentionImpl,
  type QkNorm,
  type QueryScale,
  type ResolvedLinearAttentionConfig,
  type SerializedInitializer,
} from './config';
export {
  checkLinearAttentionState,
  disposeLinearAttentionState,
  zeroLinearAttentionState,
  type LinearAttentionState,
} from './state';
export { naiveRecurrence } from './ops/naive';
export { chunkedRecurrence, type ChunkedOptions } from './ops/chunked';
export { seriesInverse, wyInverse, wyMatrix, TRIL_INVERSE_METHODS, type TrilInverseMethod } from '../../core/ops/tril-inverse';
export { LINEAR_ATTENTION_RULES, type LinearAttentionRule, type RecurrenceInputs, type RecurrenceOutputs } from './ops/types';
