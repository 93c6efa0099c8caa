/** Manifest of the associative-memory plugin (paper Definition 1, Eq. 6, as usable components). */
import { definePlugin } from '../../core';
import { NlAssociativeMemory } from './layer';

export const associativeMemoryPlugin = definePlugin({
  name: 'associative-memory',
  version: '0.1.0',
  description:
    'Associative memories (Eq. 6): a matrix memory written by one GD step on a dot/L2/cosine objective ' +
    '(Hebbian/delta/Oja-style rules), a ring-buffer slot memory read by softmax attention, and the ' +
    'NlAssociativeMemory sequence layer.',
  layers: [NlAssociativeMemory],
  // The core l2/dot/cosine losses cover the three rules: no extra inner losses.
  capabilities: ['associative-memory'],
});

export default associativeMemoryPlugin;
