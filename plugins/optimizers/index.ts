/** Public surface of nested-learning/plugins/optimizers. */
export { optimizersPlugin, OPTIMIZER_TRANSFORMS } from './plugin';
export {
  registerOptimizerTransforms, adamwOptimizer, assocMomentumOptimizer, deltaMomentumOptimizer, dmgdOptimizer,
  muonOptimizer, dgdOptimizer, m3Optimizer,
} from './factories';
export { adamw, type AdamWConfig } from './adamw';
export { assocMomentum, type AssocMomentumConfig } from './assoc-momentum';
export { deltaMomentum, outerProjectLeft, DELTA_KEY_NORMS, type DeltaKeyNorm, type DeltaMomentumConfig } from './delta-momentum';
export { dmgd, dmgdKeys, dmgdWidth, dmgdForward, DMGD_ACTIVATIONS, DMGD_INNER_LOSSES, type DmgdActivation, type DmgdInnerLoss, type DmgdConfig } from './dmgd';
export { muon, orthogonalize, orthogonalizeLike, orthogonalizeMany, orthoScale, ORTHO_SCALES, type OrthoScale, type MuonConfig, type OrthogonalizeConfig } from './muon';
export { dgd, type DgdConfig } from './dgd';
export { m3, M3_MOMENTA, M3_PRECONDITIONS, type M3Momentum, type M3Precondition, type M3Config } from './m3';
export { toyRun, toyRunFloat64, toyPsi64, type Toy64Optimizer, type ToyConfig, type ToyResult } from './toy';
export {
  newtonSchulz, newtonSchulzBatch, newtonSchulzMany, setFusedNewtonSchulz, NS_COEFFS, adamStep, PRECONDITIONER_KINDS, learnedPreconditionerLoss,
  type PreconditionerKind, type AdamParams,
} from './util';
