/**
 * Retrofit (paper Section 7.3): turn the MLPs of an existing tfjs model into CMS levels. Each pair of
 * Dense layers (up: D -> H with an activation, down: H -> D linear) becomes one level whose initial
 * weights are copied from them, so before any in-context update the CMS computes exactly
 *   h_{l+1} = h_l + down_l(up_l(h_l))    (residual: true, the Transformer FFN form), or
 *   h_{l+1} = down_l(up_l(h_l))          (residual: false).
 */
import * as tf from '@tensorflow/tfjs';
import { CMS_ACTIVATIONS, type CmsActivation, type CmsLevelConfig, type CmsVariant } from './config';
import { NlContinuumMemorySystem } from './layer';

export interface DenseMlpPair {
  /** Dense D -> H (kernel [D, H], bias [H] optional), activation one of the CMS activations. */
  up: tf.layers.Layer;
  /** Dense H -> D, linear activation. */
  down: tf.layers.Layer;
}

export interface RetrofitOptions {
  /** One per pair: period (tokens) and eta of the new level (default period 0 = frozen, as before). */
  levels?: Array<Omit<CmsLevelConfig, 'hiddenDim'>>;
  /** 'sequential' (default) or 'nested'; 'independent' would change the function. */
  variant?: Exclude<CmsVariant, 'independent'>;
  residual?: boolean;
  name?: string;
}

/** Builds a CMS whose level l starts as `pairs[l]` (weights copied; the Dense layers are not changed). */
export function cmsFromDense(pairs: readonly DenseMlpPair[], opts: RetrofitOptions = {}): NlContinuumMemorySystem {
  const where = 'cmsFromDense';
  if (!Array.isArray(pairs) || pairs.length === 0) throw new Error(`${where}.pairs: must be a non-empty array of {up, down} Dense layers`);
  let activation: CmsActivation | null = null;
  let useBias: boolean | null = null;
  let d = -1;
  const hidden: number[] = [];
  pairs.forEach((p, i) => {
    for (const which of ['up', 'down'] as const) {
      const l = p?.[which];
      if (!l || l.getClassName() !== 'Dense' || !l.built) throw new Error(`${where}.pairs[${i}].${which}: must be a built tf.layers.dense`);
    }
    const upCfg = p.up.getConfig();
    const downCfg = p.down.getConfig();
    const act = String(upCfg.activation) as CmsActivation;
    if (!(CMS_ACTIVATIONS as readonly string[]).includes(act)) throw new Error(`${where}.pairs[${i}].up: activation '${act}' is not one of ${CMS_ACTIVATIONS.join(', ')}`);
    if (activation !== null && act !== activation) throw new Error(`${where}.pairs[${i}].up: activation '${act}' differs from pairs[0]'s '${activation}' (one activation per CMS)`);
    activation = act;
    if (downCfg.activation !== 'linear') throw new Error(`${where}.pairs[${i}].down: activation must be 'linear', got '${downCfg.activation}'`);
    const bias = Boolean(upCfg.useBias) && Boolean(downCfg.useBias);
    if (Boolean(upCfg.useBias) !== Boolean(downCfg.useBias) || (useBias !== null && bias !== useBias)) throw new Error(`${where}.pairs[${i}]: all Dense layers must agree on useBias`);
    useBias = bias;
    const [k1] = p.up.getWeights();
    const [k2] = p.down.getWeights();
    if (d < 0) d = k1.shape[0];
    if (k1.shape[0] !== d || k2.shape[1] !== d || k2.shape[0] !== k1.shape[1]) {
      throw new Error(`${where}.pairs[${i}]: kernels [${k1.shape}] and [${k2.shape}] do not form D=${d} -> H -> D`);
    }
    hidden.push(k1.shape[1]);
  });
  const levelsIn = opts.levels ?? pairs.map(() => ({ period: 0 }));
  if (levelsIn.length !== pairs.length) throw new Error(`${where}.levels: needs one entry per pair (${pairs.length}), got ${levelsIn.length}`);
  const cms = new NlContinuumMemorySystem({
    name: opts.name,
    levels: levelsIn.map((l, i) => ({ ...l, hiddenDim: hidden[i] })),
    variant: opts.variant ?? 'sequential',
    activation: activation!,
    residual: opts.residual ?? true,
    useBias: useBias!,
  });
  cms.build([null, null, d]);
  pairs.forEach((p, l) => {
    const up = p.up.getWeights();
    const down = p.down.getWeights();
    cms.variable(l, 'w1').write(up[0]);
    cms.variable(l, 'w2').write(down[0]);
    if (useBias) {
      cms.variable(l, 'b1').write(up[1]);
      cms.variable(l, 'b2').write(down[1]);
    }
  });
  return cms;
}
