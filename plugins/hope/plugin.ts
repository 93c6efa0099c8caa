/** Manifest of the hope plugin: HOPE blocks, the baselines' parts, and the language-model layers. */
import { definePlugin } from '../../core/plugin';
import { NlCausalAttention, NlGatedMlp } from './attention';
import { NlHopeAttentionBlock, NlHopeBlock, NlResidualBlock } from './block';
import { NlLmHead, NlTokenEmbedding } from './lm';

export const hopePlugin = definePlugin({
  name: 'hope',
  version: '0.1.0',
  description:
    'HOPE (Section 8, Eqs. 94-97): self-modifying Titans -> CMS chain blocks, HOPE-Attention, the Transformer++/Titans/DeltaNet ' +
    'baseline blocks from the same parts, and a language-model assembly run by NestedTrainer with carried states.',
  requires: ['self-modifying-titans', 'cms', 'titans', 'linear-attention'],
  layers: [NlResidualBlock, NlHopeBlock, NlHopeAttentionBlock, NlCausalAttention, NlGatedMlp, NlTokenEmbedding, NlLmHead],
  capabilities: ['block', 'language-model', 'sequence-layer', 'in-context-learner'],
});

export default hopePlugin;
