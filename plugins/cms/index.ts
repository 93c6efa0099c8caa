/** Public surface of nested-learning/plugins/cms. */
export { cmsPlugin } from './plugin';
export { NlContinuumMemorySystem, continuumMemorySystem, fastKey, childKey } from './layer';
export type { CmsLayerArgs, CmsState } from './layer';
export { CMS_VARIANTS, CMS_ACTIVATIONS, resolveCmsOptions, cmsOptionsToJson } from './config';
export type { CmsVariant, CmsActivation, CmsLevelConfig, CmsOptions, ResolvedCmsLevel, ResolvedCmsOptions } from './config';
export { cmsFromDense } from './retrofit';
export type { DenseMlpPair, RetrofitOptions } from './retrofit';
