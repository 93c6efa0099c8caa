/** Public surface of nested-learning/plugins/cms. */
export { cmsPlugin } from './plugin';
export { NlContinuumMemorySystem, continuumMemorySystem, fastKey, childKey } from './layer';
export type { CmsLayerArgs, CmsState } from './layer';
// The pure CMS op (explicit weights, state and clocks in; outputs, state and clocks out).
export { cmsForward, cmsInitialState, cmsAccumulate, cmsApplyUpdates, cmsInContext, cmsSpec, cmsFreshClocks, cmsGradientKeys } from './ops/cms';
export type { CmsParams, CmsSpec, CmsClocks, CmsBlockWeights, CmsInContextArgs, CmsInContextResult, CmsTokenLoss } from './ops/cms';
export { CMS_VARIANTS, CMS_ACTIVATIONS, resolveCmsOptions, cmsOptionsToJson } from './config';
export type { CmsVariant, CmsActivation, CmsLevelConfig, CmsOptions, ResolvedCmsLevel, ResolvedCmsOptions } from './config';
export { cmsFromDense } from './retrofit';
export type { DenseMlpPair, RetrofitOptions } from './retrofit';
