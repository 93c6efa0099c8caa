/**
 * The standard block kinds of the paper's comparison as {className, config} specs, built from the
 * same parts so comparisons are like for like (pre-norm mixer + residual, pre-norm ffn + residual).
 * Presets write these specs out in full; this helper is for code and tests.
 */
import type { LayerSpec } from './block';

export type BlockKind = 'hope' | 'hope-attention' | 'transformer' | 'titans' | 'deltanet' | 'gated-deltanet';
export const BLOCK_KINDS: readonly BlockKind[] = ['hope', 'hope-attention', 'transformer', 'titans', 'deltanet', 'gated-deltanet'];

export interface BlockSizes {
  numHeads: number;
  /** CMS levels (HOPE kinds). */
  cmsLevels?: Array<{ period: number; learningRate?: number }>;
  /** CMS hidden width multiple. */
  cmsExpansion?: number;
  /** Gated-MLP hidden width multiple (baselines). */
  mlpExpansion?: number;
  /** Chunk size of the chunked recurrent mixers. */
  chunkSize?: number;
}

export function blockSpec(kind: BlockKind, s: BlockSizes): LayerSpec {
  const cms = {
    className: 'NlContinuumMemorySystem',
    config: { levels: s.cmsLevels ?? [{ period: 16, learningRate: 0.01 }, { period: 0 }], variant: 'sequential', expansion: s.cmsExpansion ?? 2 },
  };
  const mlp = { className: 'NlGatedMlp', config: { expansion: s.mlpExpansion ?? 8 / 3 } };
  const c = s.chunkSize ?? 16;
  switch (kind) {
    case 'hope':
      return { className: 'NlHopeBlock', config: { mixer: { className: 'NlSelfModifyingTitans', config: { numHeads: s.numHeads, chunkSize: c, memChunkSize: c } }, ffn: cms } };
    case 'hope-attention':
      return { className: 'NlHopeAttentionBlock', config: { mixer: { className: 'NlCausalAttention', config: { numHeads: s.numHeads } }, ffn: cms } };
    case 'transformer':
      return { className: 'NlResidualBlock', config: { mixer: { className: 'NlCausalAttention', config: { numHeads: s.numHeads } }, ffn: mlp } };
    case 'titans':
      return { className: 'NlResidualBlock', config: { mixer: { className: 'NlTitansMemory', config: { numHeads: s.numHeads, chunkSize: c } }, ffn: mlp } };
    case 'deltanet':
    case 'gated-deltanet':
      return {
        className: 'NlResidualBlock',
        config: { mixer: { className: 'NlLinearAttention', config: { numHeads: s.numHeads, rule: kind === 'deltanet' ? 'delta' : 'gated-delta', chunkSize: c } }, ffn: mlp },
      };
  }
}
