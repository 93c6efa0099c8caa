/**
 * One tf.Optimizer factory per optimizer: `new NlTransformOptimizer({transform: name, config})`.
 * They need the transform registered (the plugin registry does it for a runtime; or call
 * registerOptimizerTransforms() once).
 */
import { type JsonObject, NlTransformOptimizer, registerTransformFactory } from '../../core';
import type { AdamWConfig } from './adamw';
import type { AssocMomentumConfig } from './assoc-momentum';
import type { DeltaMomentumConfig } from './delta-momentum';
import type { DgdConfig } from './dgd';
import type { DmgdConfig } from './dmgd';
import type { M3Config } from './m3';
import type { MuonConfig } from './muon';
import { OPTIMIZER_TRANSFORMS } from './plugin';

/** Registers this plugin's transform factories (idempotent). For use without the plugin registry. */
export function registerOptimizerTransforms(): void {
  for (const [name, f] of Object.entries(OPTIMIZER_TRANSFORMS)) registerTransformFactory(name, f, 'optimizers');
}

const make = (name: string, config: object): NlTransformOptimizer => new NlTransformOptimizer({ transform: name, config: config as JsonObject });

export const adamwOptimizer = (c: AdamWConfig): NlTransformOptimizer => make('adamw', c);
export const assocMomentumOptimizer = (c: AssocMomentumConfig): NlTransformOptimizer => make('assocMomentum', c);
export const deltaMomentumOptimizer = (c: DeltaMomentumConfig): NlTransformOptimizer => make('deltaMomentum', c);
export const dmgdOptimizer = (c: DmgdConfig = {}): NlTransformOptimizer => make('dmgd', c);
export const muonOptimizer = (c: MuonConfig): NlTransformOptimizer => make('muon', c);
export const dgdOptimizer = (c: DgdConfig): NlTransformOptimizer => make('dgd', c);
export const m3Optimizer = (c: M3Config): NlTransformOptimizer => make('m3', c);
