/** Manifest of the self-modifying-titans plugin (no services). */
import { definePlugin } from '../../core/plugin';
import { NlSelfModifyingTitans } from './layer';

export const selfModifyingTitansPlugin = definePlugin({
  name: 'self-modifying-titans',
  version: '0.1.0',
  description:
    'Self-modifying Titans (Section 8, Eqs. 83-93): residual-MLP memories for k, v, eta, alpha and retrieval, self-generated targets, DGD with weight decay and momentum, chunk-parallel.',
  requires: ['linear-attention'],
  layers: [NlSelfModifyingTitans],
  capabilities: ['sequence-mixer', 'associative-memory', 'self-modifying'],
});
