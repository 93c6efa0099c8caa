/** Manifest of the linear-attention plugin (no services, so no ContainerModule). */
import { definePlugin } from '../../core/plugin';
import { NlLinearAttention } from './layer';

export const linearAttentionPlugin = definePlugin({
  name: 'linear-attention',
  version: '0.1.0',
  description:
    'Linear-memory sequence mixers: linear attention (Eq. 18), DeltaNet and gated DeltaNet (DGD on a linear memory, Eqs. 57/93), naive and chunk-parallel.',
  layers: [NlLinearAttention],
  capabilities: ['sequence-mixer', 'linear-memory'],
});
