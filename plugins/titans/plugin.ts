/** Manifest of the titans plugin (no services, so no ContainerModule). */
import { definePlugin } from '../../core/plugin';
import { NlTitansMemory } from './layer';

export const titansPlugin = definePlugin({
  name: 'titans',
  version: '0.1.0',
  description:
    'Titans long-term memory (LMM): per-sequence MLP or linear memory with surprise momentum, forgetting and chunk-parallel writes (Titans Eqs. 9-18).',
  layers: [NlTitansMemory],
  capabilities: ['sequence-mixer', 'neural-memory'],
});
