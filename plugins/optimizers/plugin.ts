/**
 * Manifest of the optimizers plugin: every optimizer is a GradientTransform factory registered by
 * name, so it composes (chain/everyK/partition), runs as a CMS level's inner optimizer, and is a
 * tf.Optimizer through the core NlTransformOptimizer (no optimizer subclasses of its own).
 */
import { definePlugin, type GradientTransformFactory } from '../../core';
import { adamw, type AdamWConfig } from './adamw';
import { assocMomentum, type AssocMomentumConfig } from './assoc-momentum';
import { deltaMomentum, type DeltaMomentumConfig } from './delta-momentum';
import { dgd, type DgdConfig } from './dgd';
import { dmgd, type DmgdConfig } from './dmgd';
import { m3, type M3Config } from './m3';
import { muon, type MuonConfig, orthogonalize, type OrthogonalizeConfig } from './muon';

/** Transform factories by registered name (names without '_'). */
export const OPTIMIZER_TRANSFORMS: Readonly<Record<string, GradientTransformFactory>> = Object.freeze({
  adamw: (c, path = 'adamw') => adamw(c as unknown as AdamWConfig, path),
  assocMomentum: (c, path = 'assocMomentum') => assocMomentum(c as unknown as AssocMomentumConfig, path),
  deltaMomentum: (c, path = 'deltaMomentum') => deltaMomentum(c as unknown as DeltaMomentumConfig, path),
  dmgd: (c, path = 'dmgd') => dmgd(c as unknown as DmgdConfig, path),
  muon: (c, path = 'muon') => muon(c as unknown as MuonConfig, path),
  orthogonalize: (c, path = 'orthogonalize') => orthogonalize(c as unknown as OrthogonalizeConfig, path),
  dgd: (c, path = 'dgd') => dgd(c as unknown as DgdConfig, path),
  m3: (c, path = 'm3') => m3(c as unknown as M3Config, path),
});

export const optimizersPlugin = definePlugin({
  name: 'optimizers',
  version: '0.1.0',
  description:
    'Optimizers as associative memories (paper Section 4): momentum with forget gate and diagonal or learned ' +
    'preconditioner (Eqs. 33, 38-41, 47), delta momentum (Eq. 49), Deep Momentum GD with a trained MLP memory ' +
    '(Eq. 50), Newton-Schulz/Muon (Eq. 52), DGD (Eq. 57), M3 (Algorithm 1) and AdamW.',
  transforms: OPTIMIZER_TRANSFORMS,
  capabilities: ['optimizer'],
});

export default optimizersPlugin;
