/** Manifest of the cms plugin: the Continuum Memory System (paper Section 7, Eqs. 70-74). */
import { definePlugin } from '../../core';
import { NlContinuumMemorySystem } from './layer';

export const cmsPlugin = definePlugin({
  name: 'cms',
  version: '0.1.0',
  description:
    'Continuum Memory System: k MLP levels with periods in tokens that learn in context from the task loss ' +
    '(Eq. 71), sequential / nested / independent variants, retrofit from Dense MLPs.',
  layers: [NlContinuumMemorySystem],
  capabilities: ['cms', 'in-context-learner', 'sequence-layer'],
});

export default cmsPlugin;
