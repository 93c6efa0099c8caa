import { expect } from 'chai';
import type { PluginManifest } from '../../core/plugin';
import { linearAttentionPlugin } from './plugin';
import { NlLinearAttention } from './layer';
import * as publicSurface from './index';

describe('linear-attention plugin manifest', () => {
  it('declares name, version, the layer class and capabilities (no services)', () => {
    expect(linearAttentionPlugin.name).to.equal('linear-attention');
    expect(linearAttentionPlugin.version).to.equal('0.1.0');
    expect(linearAttentionPlugin.layers).to.deep.equal([NlLinearAttention]);
    expect(NlLinearAttention.className).to.equal('NlLinearAttention');
    expect(linearAttentionPlugin.capabilities).to.deep.equal(['sequence-mixer', 'linear-memory']);
    expect((linearAttentionPlugin as PluginManifest).module).to.equal(undefined);
    expect(Object.isFrozen(linearAttentionPlugin)).to.equal(true);
  });

  it('index exports the public surface', () => {
    for (const name of ['linearAttentionPlugin', 'NlLinearAttention', 'linearAttention', 'linearAttentionForward', 'naiveRecurrence', 'chunkedRecurrence', 'wyInverse', 'zeroLinearAttentionState', 'disposeLinearAttentionState', 'resolveLinearAttentionConfig']) {
      expect(publicSurface, name).to.have.property(name);
    }
    expect(publicSurface.linearAttention({ numHeads: 2 })).to.be.instanceOf(NlLinearAttention);
  });
});
