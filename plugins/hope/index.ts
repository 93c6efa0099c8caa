/** Public surface of nested-learning/plugins/hope. */
export { hopePlugin } from './plugin';
export { NlCausalAttention, NlGatedMlp, applyRope, type AttentionState, type CausalAttentionArgs, type GatedMlpArgs } from './attention';
export { NlResidualBlock, NlHopeBlock, NlHopeAttentionBlock, createSubLayer, DEFAULT_HOPE_CMS, type LayerSpec, type ResidualBlockArgs } from './block';
export { LanguageModel, NlTokenEmbedding, NlLmHead, seededRandom, LANGUAGE_MODEL_FORMAT, LANGUAGE_MODEL_FORMAT_VERSION, type LanguageModelMetadata, type LanguageModelConfig, type GenerateOptions, type TokenEmbeddingArgs, type LmHeadArgs } from './lm';
export { blockSpec, BLOCK_KINDS, type BlockKind, type BlockSizes } from './kinds';
export { rmsNorm } from './util';
