/**
 * One model format: a run checkpoint (checkpoint.json + tensors.bin, written by `nl train`) exported as a
 * tfjs LayersModel directory (model.json + weights.bin) that tf.loadLayersModel and LanguageModel.load
 * read, in Node (file://) and in a page (http(s)://, indexeddb://). The tokenizer goes into model.json's
 * userDefinedMetadata.nestedLearning.extra.tokenizer: {kind: 'byte'} or {kind: 'bpe', bpe: <merges>}.
 */
import { fileSystem } from '../core/io';
import { disposeRun, loadRun, runTokenizer, type Run } from './run';

export interface ExportResult {
  /** The export directory (model.json, weights.bin). */
  dir: string;
  /** Training step of the exported checkpoint. */
  step: number;
  /** model.json bytes + weights bytes. */
  bytes: number;
}

/** The tokenizer as JSON for the exported metadata. */
export function tokenizerMetadata(r: Run): Record<string, unknown> {
  const tok = runTokenizer(r);
  if (tok.kind === 'byte') return { kind: 'byte', vocabSize: tok.vocabSize };
  return { kind: tok.kind, vocabSize: tok.vocabSize, bpe: JSON.parse(JSON.stringify(tok)) };
}

/** Writes a loaded run's LanguageModel to `outDir` as a tfjs LayersModel (atomic, file-system handler). */
export async function exportLanguageModel(r: Run, outDir: string): Promise<ExportResult> {
  const res = await r.lm.save(fileSystem(outDir), { tokenizer: tokenizerMetadata(r), step: r.step, model: r.config.model });
  const info = res.modelArtifactsInfo;
  return { dir: outDir, step: r.step, bytes: (info.modelTopologyBytes ?? 0) + (info.weightDataBytes ?? 0) + (info.weightSpecsBytes ?? 0) };
}

/**
 * Loads the run in `checkpoint` (a `nl train --out` directory: its latest checkpoint) and exports its
 * model to `outDir`.
 */
export async function exportRun(checkpoint: string, outDir: string): Promise<ExportResult> {
  const r = await loadRun(checkpoint);
  try {
    return await exportLanguageModel(r, outDir);
  } finally {
    disposeRun(r);
  }
}
