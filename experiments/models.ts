/**
 * Shared model plumbing for the experiments: a tiny LanguageModel per block kind (built from
 * plugins/hope blockSpec, so every kind uses the same embedding, norms, head and residual layout), a
 * NestedTrainer with a masked per-token loss (labels only where the task has one), seeded weight
 * initialisation, and batched evaluation through the trainer (so HOPE's CMS levels learn in context
 * at test time exactly as in training).
 */
import * as tf from '@tensorflow/tfjs';
import { seededRandom, withSeededRandom } from '../core';
import { blockSpec, type BlockKind } from '../plugins/hope';
import type { LayerSpec } from '../plugins/hope';
import { createLmRun, disposeLmRun, type LmRun } from '../run';

/**
 * The block kinds of plugins/hope plus plain (additive) linear attention, the paper's "linear attention"
 * baseline, and 'hope-paper': HOPE with the self-modifying Titans' 'paper' parameterisation (the rows
 * kept beside the default 'stable' HOPE).
 */
export type ModelKind = BlockKind | 'linear-attention' | 'hope-paper';

/** One block of a kind; 'linear-attention' mirrors blockSpec's DeltaNet block with rule 'additive' (Eq. 18). */
export function modelBlockSpec(kind: ModelKind, s: ModelSizes): LayerSpec {
  if (kind === 'linear-attention') {
    return {
      className: 'NlResidualBlock',
      config: { mixer: { className: 'NlLinearAttention', config: { numHeads: s.numHeads, rule: 'additive', chunkSize: s.chunkSize } }, ffn: { className: 'NlGatedMlp', config: { expansion: 8 / 3 } } },
    };
  }
  if (kind === 'hope-paper') {
    const spec = blockSpec('hope', { numHeads: s.numHeads, chunkSize: s.chunkSize, ...(s.cmsLevels ? { cmsLevels: s.cmsLevels } : {}) });
    const mixer = (spec.config as { mixer: LayerSpec }).mixer;
    return { ...spec, config: { ...spec.config, mixer: { ...mixer, config: { ...mixer.config, parameterization: 'paper' } } } };
  }
  return blockSpec(kind, { numHeads: s.numHeads, chunkSize: s.chunkSize, ...(s.cmsLevels ? { cmsLevels: s.cmsLevels } : {}) });
}

export interface ModelSizes {
  dModel: number;
  numHeads: number;
  numBlocks: number;
  chunkSize: number;
  /** CMS levels of the HOPE kinds (blockSpec default when absent). */
  cmsLevels?: Array<{ period: number; learningRate?: number }>;
}

/** Deterministic uniform [0, 1) generator (mulberry32; the project's one implementation, core/random.ts). */
export const rng = seededRandom;

/** Integer in [lo, hi] (inclusive). */
export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** Scoped seeded Math.random (core/random.ts); buildModel runs model construction in it. */
export { withSeededRandom };

/** A run of the one recipe (run/recipe.ts) plus its kind and parameter count. */
export interface ModelRun extends LmRun {
  kind: ModelKind;
  params: number;
}

/**
 * Masked cross-entropy per token: logits [B, T, V], targets [B, T, V] holding w * onehot(label) at
 * labelled positions and 0 elsewhere -> [B, T]. With w = T the trainer's mean over B*T tokens becomes the
 * mean over labelled sequences (one label per sequence).
 */
export function maskedCrossEntropy(logits: tf.Tensor, targets: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.logSoftmax(logits).mul(targets).sum(-1).neg());
}

export function buildModel(kind: ModelKind, vocabSize: number, s: ModelSizes, lr: number, seed: number): ModelRun {
  const r = createLmRun({
    model: { vocabSize, dModel: s.dModel, blocks: Array.from({ length: s.numBlocks }, () => modelBlockSpec(kind, s)) },
    optimizer: lr, // Adam
    seed,
    trainer: { loss: maskedCrossEntropy, clipNorm: 1 },
  });
  return { kind, ...r, params: r.lm.countParams() };
}

export function disposeModel(m: ModelRun): void {
  disposeLmRun(m);
}

/** A batch of labelled sequences: ids [B, T] and, per sequence, (position, label) pairs. */
export interface Batch {
  ids: number[][];
  labels: Array<Array<{ pos: number; label: number }>>;
}

/** Builds (inputs [B, T] int32, targets [B, T, V] weighted one-hot) for a batch. */
export function batchTensors(b: Batch, vocabSize: number): { x: tf.Tensor2D; y: tf.Tensor3D; nLabels: number } {
  const B = b.ids.length;
  const T = b.ids[0].length;
  for (const row of b.ids) if (row.length !== T) throw new Error(`batchTensors: ragged batch (pad first): ${row.length} vs ${T}`);
  const nLabels = b.labels.reduce((a, l) => a + l.length, 0);
  const w = (B * T) / Math.max(1, nLabels); // mean over labels, not over tokens
  const y = new Float32Array(B * T * vocabSize);
  b.labels.forEach((ls, i) => ls.forEach(({ pos, label }) => (y[(i * T + pos) * vocabSize + label] = w)));
  const x = tf.tensor2d(Int32Array.from(b.ids.flat()), [B, T], 'int32');
  return { x, y: tf.tensor3d(y, [B, T, vocabSize]), nLabels };
}

/** One outer step on a batch; returns the mean loss per label (nats). */
export function trainStep(m: ModelRun, b: Batch, vocabSize: number): number {
  const { x, y } = batchTensors(b, vocabSize);
  try {
    return m.trainer.train(x, y).loss;
  } finally {
    tf.dispose([x, y]);
  }
}

/**
 * Accuracy on labelled positions, each sequence a fresh context read with in-context learning
 * (trainer.memorize, no outer step): the prediction at a labelled position is the argmax over
 * `candidates` (the allowed answer tokens). Returns correct count and total. One sync per batch.
 */
export async function evalBatch(m: ModelRun, b: Batch, vocabSize: number, candidates: readonly number[]): Promise<{ correct: number; total: number }> {
  const { x, y } = batchTensors(b, vocabSize);
  const T = b.ids[0].length;
  try {
    const r = m.trainer.memorize(x, y, { newContext: true, collect: true });
    const logits = r.outputs!; // [B, T, V]
    const picked = tf.tidy(() => {
      const cand = tf.gather(logits, tf.tensor1d(Int32Array.from(candidates), 'int32'), 2); // [B, T, C]
      return tf.argMax(cand, -1); // [B, T] index into candidates
    });
    const arg = await picked.data();
    tf.dispose([logits, r.tokenLosses ?? [], picked]);
    let correct = 0;
    let total = 0;
    b.labels.forEach((ls, i) =>
      ls.forEach(({ pos, label }) => {
        total++;
        if (candidates[arg[i * T + pos]] === label) correct++;
      }),
    );
    return { correct, total };
  } finally {
    m.trainer.resetMemory();
    tf.dispose([x, y]);
  }
}

/** Left-pads every row to the longest with `pad`, shifting label positions. */
export function leftPad(rows: Array<{ ids: number[]; labels: Array<{ pos: number; label: number }> }>, pad: number): Batch {
  const T = Math.max(...rows.map((r) => r.ids.length));
  return {
    ids: rows.map((r) => [...new Array<number>(T - r.ids.length).fill(pad), ...r.ids]),
    labels: rows.map((r) => r.labels.map((l) => ({ pos: l.pos + T - r.ids.length, label: l.label }))),
  };
}
