/**
 * Byte-level language modelling (the shape of paper Table 2): validation bits per byte on Moby Dick and
 * on the State of the Union addresses for every model family of the presets (hope, hope-attention,
 * transformer, titans, deltanet, gated-deltanet) at matched parameter counts and a matched token budget,
 * with learning curves (validation bpb vs training tokens).
 *
 * Models: the structure of each family's preset (presets/*.yaml: mixer config, ffn kind, CMS levels of
 * hope-tiny) shrunk to hope-tiny's size (dModel 32, 2 blocks, 2 heads); only the ffn hidden width differs
 * between families, set so every count is within 5% of HOPE's (checked at build time of the full size).
 * Everything else is shared: embedding / norms / tied head, Adam + clip, learning rate, steps, batch,
 * sequence length, data order (run/data.ts trainBatch, a pure function of (seed, step)), weight seed.
 *
 * The cell runner (`runLmCell`) is shared with the ablations experiment (ablations.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { bitsPerByte, createLmRun, disposeLmRun, loadDataset, nlRuntime, trainBatch, validationBatches, type CorpusName, type Dataset } from '../run';
import type { LayerSpec } from '../plugins/hope';
import type { BlockKind } from '../plugins/hope';
import { LanguageModel, type LanguageModelConfig } from '../plugins/hope';
import { tokenCrossEntropy } from '../plugins/scheduler';
import { NestedTrainer } from '../plugins/scheduler';
import { withSeededRandom } from './models';
import type { Experiment, ExperimentResult, Row, RunOpts, SizeName } from './types';

export type LmCorpus = Extract<CorpusName, 'moby-dick' | 'sotu'>;

/** Model size and the parts every family shares (preset structure at hope-tiny's size). */
export interface LmModelConfig {
  dModel: number;
  numBlocks: number;
  numHeads: number;
  /** Self-modifying Titans chunkSize = memChunkSize (hope presets: 16). */
  smtChunkSize: number;
  /** NlTitansMemory chunk (titans-small: 16). */
  titansChunkSize: number;
  /** NlLinearAttention chunk (deltanet-small / gated-deltanet-small: 64). */
  linearChunkSize: number;
  /** CMS levels of the HOPE kinds (hope-tiny: period 16 at eta 0.01, then a frozen MLP). */
  cmsLevels: Array<{ period: number; learningRate?: number }>;
}

/** Shared training budget (identical for every family and corpus). */
export interface LmTrainConfig {
  learningRate: number;
  clipNorm: number;
  steps: number;
  batchSize: number;
  seqLength: number;
  /** Validation every `evalEvery` steps (and at the last step). */
  evalEvery: number;
  /** Fixed validation set: evalBatches x evalBatchSize windows of seqLength bytes, evenly spaced over the validation text. */
  evalBatches: number;
  evalBatchSize: number;
  validationFraction: number;
}

export interface LmFamily {
  kind: BlockKind;
  /** Hidden width multiple of the family's ffn (CMS levels for hope kinds, SwiGLU for the others): the parameter-matching knob. */
  ffnExpansion: number;
}

export interface LmConfig {
  corpora: LmCorpus[];
  families: LmFamily[];
  model: LmModelConfig;
  train: LmTrainConfig;
  seeds: number[];
  /** Parameter counts must be within this relative distance of the first family's (full size; smoke only reports). */
  paramTolerance: number;
}

/** Extra config of the HOPE block (ablation switches, ablations.ts). */
export interface HopeOverrides {
  smt?: Record<string, unknown>;
  cmsLevels?: Array<{ period: number; learningRate?: number }>;
}

/** One block of a family: the preset's structure at size `m`, ffn hidden = ffnExpansion x dModel. */
export function lmBlockSpec(f: LmFamily, m: LmModelConfig, over: HopeOverrides = {}): LayerSpec {
  const cms = { className: 'NlContinuumMemorySystem', config: { variant: 'sequential', expansion: f.ffnExpansion, levels: over.cmsLevels ?? m.cmsLevels } };
  const mlp = { className: 'NlGatedMlp', config: { expansion: f.ffnExpansion } };
  const h = m.numHeads;
  switch (f.kind) {
    case 'hope':
      return { className: 'NlHopeBlock', config: { mixer: { className: 'NlSelfModifyingTitans', config: { numHeads: h, chunkSize: m.smtChunkSize, memChunkSize: m.smtChunkSize, ...(over.smt ?? {}) } }, ffn: cms } };
    case 'hope-attention':
      return { className: 'NlHopeAttentionBlock', config: { mixer: { className: 'NlCausalAttention', config: { numHeads: h } }, ffn: cms } };
    case 'transformer':
      return { className: 'NlResidualBlock', config: { mixer: { className: 'NlCausalAttention', config: { numHeads: h } }, ffn: mlp } };
    case 'titans':
      return { className: 'NlResidualBlock', config: { mixer: { className: 'NlTitansMemory', config: { numHeads: h, chunkSize: m.titansChunkSize } }, ffn: mlp } };
    case 'deltanet':
    case 'gated-deltanet':
      return { className: 'NlResidualBlock', config: { mixer: { className: 'NlLinearAttention', config: { numHeads: h, rule: f.kind === 'deltanet' ? 'delta' : 'gated-delta', chunkSize: m.linearChunkSize } }, ffn: mlp } };
  }
}

/** A seeded language model of `numBlocks` copies of `block` (vocab 256, bytes). */
export function buildLm(block: LayerSpec, m: LmModelConfig, seed: number): LanguageModel {
  nlRuntime(); // registers every layer class the specs name
  return new LanguageModel(lmModelConfig(block, m), { seed });
}

/** The model config of `numBlocks` copies of `block` (vocab 256, bytes). */
export function lmModelConfig(block: LayerSpec, m: LmModelConfig): LanguageModelConfig {
  return { vocabSize: 256, dModel: m.dModel, blocks: Array.from({ length: m.numBlocks }, () => block) };
}

/** Parameter count of a family at size `m` (builds and disposes the model). */
export function familyParams(f: LmFamily, m: LmModelConfig, over: HopeOverrides = {}): number {
  const lm = buildLm(lmBlockSpec(f, m, over), m, 1);
  try {
    return lm.countParams();
  } finally {
    lm.dispose();
  }
}

const datasets = new Map<string, Dataset>();
/** The byte dataset of a corpus (cached per process: the split is deterministic). */
export function lmDataset(corpus: LmCorpus, t: LmTrainConfig): Dataset {
  const key = `${corpus}/${t.validationFraction}/${t.seqLength}`;
  let d = datasets.get(key);
  if (!d) {
    d = loadDataset({ corpus, validationFraction: t.validationFraction }, t.seqLength);
    datasets.set(key, d);
  }
  return d;
}

export interface CurvePoint {
  step: number;
  tokens: number;
  /** Validation bits per byte on the fixed validation set (each window a fresh context, in-context learning on). */
  valBpb: number;
  /** Mean training bits per byte over the steps since the previous point. */
  trainBpb: number;
}

export interface CellResult {
  params: number;
  points: CurvePoint[];
  trainSeconds: number;
  evalSeconds: number;
}

/** Validation bpb over fixed batches, each a fresh context read with in-context learning (as run/run.ts evaluate). */
function validationBpb(trainer: NestedTrainer, batches: Array<{ inputs: tf.Tensor2D; targets: tf.Tensor2D }>): number {
  let sum = 0;
  let n = 0;
  for (const b of batches) {
    const r = trainer.memorize(b.inputs, b.targets, { newContext: true });
    sum += r.loss * b.inputs.size;
    n += b.inputs.size;
  }
  trainer.resetMemory();
  return bitsPerByte(sum / n);
}

/**
 * Trains one model (block spec, corpus, seed) for `t.steps` outer steps with Adam and the token
 * cross-entropy, evaluating every `t.evalEvery` steps. Data order and weights depend on `seed` only, so
 * every family sees the same batches. `segmentLength`: NestedTrainer's truncation length (default: the
 * fastest CMS period, i.e. none for models without in-context levels). Disposes everything it creates.
 */
/** The columns lm and ablations share: one row per evaluation point of a cell (`final` marks the last step). */
export function cellRows(r: CellResult, steps: number): Row[] {
  return r.points.map((p) => ({
    params: r.params,
    step: p.step,
    tokens: p.tokens,
    valBpb: +p.valBpb.toFixed(4),
    trainBpb: +p.trainBpb.toFixed(4),
    final: p.step === steps,
    trainSeconds: +r.trainSeconds.toFixed(1),
    evalSeconds: +r.evalSeconds.toFixed(1),
  }));
}

export function runLmCell(block: LayerSpec, m: LmModelConfig, t: LmTrainConfig, corpus: LmCorpus, seed: number, opts: { segmentLength?: number; label?: string; log?: (l: string) => void } = {}): CellResult {
  const ds = lmDataset(corpus, t);
  const run = createLmRun({
    model: lmModelConfig(block, m),
    optimizer: t.learningRate, // Adam
    seed,
    trainer: { loss: tokenCrossEntropy, clipNorm: t.clipNorm, ...(opts.segmentLength ? { segmentLength: opts.segmentLength } : {}) },
  });
  const { lm, trainer } = run;
  const vb = validationBatches(ds.validation, t.evalBatches, t.evalBatchSize, t.seqLength);
  const points: CurvePoint[] = [];
  let trainMs = 0;
  let evalMs = 0;
  try {
    let lossSum = 0;
    let lossN = 0;
    for (let step = 0; step < t.steps; step++) {
      const t0 = Date.now();
      const b = trainBatch(ds.train, step, t.batchSize, t.seqLength, seed);
      let loss: number;
      try {
        loss = trainer.train(b.inputs, b.targets).loss;
      } finally {
        tf.dispose([b.inputs, b.targets]);
      }
      trainMs += Date.now() - t0;
      if (!Number.isFinite(loss)) throw new Error(`lm: ${opts.label ?? block.className} on ${corpus} diverged at step ${step + 1} (loss ${loss}; lower train.learningRate)`);
      lossSum += loss;
      lossN++;
      const done = step + 1;
      if (done % t.evalEvery === 0 || done === t.steps) {
        const e0 = Date.now();
        const valBpb = validationBpb(trainer, vb);
        evalMs += Date.now() - e0;
        points.push({ step: done, tokens: done * t.batchSize * t.seqLength, valBpb, trainBpb: bitsPerByte(lossSum / lossN) });
        opts.log?.(`${opts.label ?? ''} ${corpus} seed ${seed} step ${done}: val ${valBpb.toFixed(4)} bpb, train ${bitsPerByte(lossSum / lossN).toFixed(4)} bpb (${((trainMs + evalMs) / 1000).toFixed(0)} s)`);
        lossSum = 0;
        lossN = 0;
      }
    }
    return { params: lm.countParams(), points, trainSeconds: trainMs / 1000, evalSeconds: evalMs / 1000 };
  } finally {
    for (const b of vb) tf.dispose([b.inputs, b.targets]);
    disposeLmRun(run);
  }
}

/** Columns that are wall-clock timings (differ between identical runs). */
export const TIMING_COLUMNS: readonly string[] = ['trainSeconds', 'evalSeconds'];

const MODEL_FULL: LmModelConfig = {
  dModel: 32,
  numBlocks: 2,
  numHeads: 2,
  smtChunkSize: 16,
  titansChunkSize: 16,
  linearChunkSize: 64,
  cmsLevels: [{ period: 16, learningRate: 0.01 }, { period: 0 }],
};

/** ffn widths: the others' hidden width solved for HOPE's count (within 0.5% at dModel 32); HOPE's CMS expansion is 1.25 (hope-tiny has 2): the stable self-modifying Titans' k/v/gate projections took the difference. */
const FAMILIES: LmFamily[] = [
  { kind: 'hope', ffnExpansion: 1.25 },
  { kind: 'hope-attention', ffnExpansion: 4 },
  { kind: 'transformer', ffnExpansion: 174 / 32 },
  { kind: 'titans', ffnExpansion: 136 / 32 },
  { kind: 'deltanet', ffnExpansion: 173 / 32 },
  { kind: 'gated-deltanet', ffnExpansion: 173 / 32 },
];

export const LM_TRAIN_FULL: LmTrainConfig = {
  learningRate: 3e-3,
  clipNorm: 1,
  steps: 100,
  batchSize: 32,
  seqLength: 64,
  evalEvery: 25,
  evalBatches: 4,
  evalBatchSize: 32,
  validationFraction: 0.05,
};

const FULL: LmConfig = {
  corpora: ['moby-dick', 'sotu'],
  families: FAMILIES,
  model: MODEL_FULL,
  train: LM_TRAIN_FULL,
  seeds: [1, 2],
  paramTolerance: 0.05,
};

export const LM_MODEL_SMOKE: LmModelConfig = { ...MODEL_FULL, dModel: 8, numBlocks: 1 };
export const LM_TRAIN_SMOKE: LmTrainConfig = { ...LM_TRAIN_FULL, steps: 1, batchSize: 2, seqLength: 16, evalEvery: 1, evalBatches: 1, evalBatchSize: 2 };

const SMOKE: LmConfig = { ...FULL, model: LM_MODEL_SMOKE, train: LM_TRAIN_SMOKE };

/** Relative distance of each family's count to the first family's; throws at full size when one exceeds the tolerance. */
export function checkParamMatch(cfg: LmConfig, enforce: boolean): Map<BlockKind, number> {
  const counts = new Map<BlockKind, number>();
  for (const f of cfg.families) counts.set(f.kind, familyParams(f, cfg.model));
  const ref = counts.get(cfg.families[0].kind)!;
  if (enforce) {
    for (const [k, n] of counts) {
      if (Math.abs(n / ref - 1) > cfg.paramTolerance) throw new Error(`lm: families[${k}].ffnExpansion: ${n} parameters vs ${ref} for ${cfg.families[0].kind} (more than ${cfg.paramTolerance * 100}% apart)`);
    }
  }
  return counts;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

export const lm: Experiment<LmConfig> = {
  name: 'lm',
  title: 'Byte-level language modelling: validation bits per byte on Moby Dick and State of the Union (the shape of paper Table 2)',
  claim: 'LM (760M/30B, 1.3B/100B tokens): Hope beats Transformer++, Titans, DeltaNet, ... on perplexity (Wiki ppl 18.68 vs Titans 20.08 vs Transformer++ 24.18 at 760M).',
  config: (size: SizeName) => (size === 'smoke' ? SMOKE : FULL),
  plot: { x: 'tokens', y: 'valBpb', color: 'kind', facet: 'corpus', xType: 'quantitative', mark: 'line', yScale: 'auto', title: 'Validation bits per byte vs training tokens (matched parameters and budget)' },
  async run(opts: RunOpts): Promise<ExperimentResult> {
    const cfg = this.config(opts.smoke ? 'smoke' : 'full');
    const counts = checkParamMatch(cfg, !opts.smoke);
    const rows: Row[] = [];
    for (const seed of cfg.seeds.map((s) => s + opts.seed - 1)) {
      for (const corpus of cfg.corpora) {
        for (const f of cfg.families) {
          const r = runLmCell(lmBlockSpec(f, cfg.model), cfg.model, cfg.train, corpus, seed, { label: f.kind, log: opts.log });
          for (const row of cellRows(r, cfg.train.steps)) rows.push({ corpus, kind: f.kind, seed, ...row });
          await new Promise((res) => setImmediate(res));
        }
      }
    }
    const finalBpb = (corpus: string, kind: string): number => mean(rows.filter((r) => r.final && r.corpus === corpus && r.kind === kind).map((r) => Number(r.valBpb)));
    const ref = counts.get(cfg.families[0].kind)!;
    const perSeed = (corpus: string, kind: string): string => {
      const v = rows.filter((r) => r.final && r.corpus === corpus && r.kind === kind).map((r) => Number(r.valBpb).toFixed(3));
      return v.length > 1 ? ` (${v.join(' / ')})` : '';
    };
    const summary =
      `Final validation bits per byte (lower is better) after ${cfg.train.steps} steps x ${cfg.train.batchSize} x ${cfg.train.seqLength} bytes = ` +
      `${cfg.train.steps * cfg.train.batchSize * cfg.train.seqLength} training tokens per model; ${cfg.seeds.length === 1 ? 'one seed' : `mean of ${cfg.seeds.length} seeds (per seed in brackets)`}.\n\n` +
      `| kind | params | vs hope | ${cfg.corpora.join(' | ')} |\n|---|---|---|${cfg.corpora.map(() => '---').join('|')}|\n` +
      cfg.families.map((f) => `| ${f.kind} | ${counts.get(f.kind)} | ${((counts.get(f.kind)! / ref - 1) * 100).toFixed(2)}% | ${cfg.corpora.map((c) => finalBpb(c, f.kind).toFixed(3) + perSeed(c, f.kind)).join(' | ')} |`).join('\n');
    const perCorpus = cfg.corpora.map((c) => {
      const ranked = [...cfg.families].map((f) => ({ k: f.kind, v: finalBpb(c, f.kind) })).sort((a, b) => a.v - b.v);
      const hopeRank = ranked.findIndex((x) => x.k === 'hope') + 1;
      return { c, ranked, hopeRank };
    });
    const hopeBestAll = perCorpus.every((p) => p.hopeRank === 1);
    const verdict =
      `${hopeBestAll ? 'hope best on every corpus' : 'hope not best'} at ~${Math.round(ref / 1000)}k parameters and ${((cfg.train.steps * cfg.train.batchSize * cfg.train.seqLength) / 1000).toFixed(0)}k tokens: ` +
      perCorpus.map((p) => `${p.c}: hope rank ${p.hopeRank}/${p.ranked.length} (${p.ranked.find((x) => x.k === 'hope')!.v.toFixed(3)} bpb), best ${p.ranked[0].k} ${p.ranked[0].v.toFixed(3)}, worst ${p.ranked[p.ranked.length - 1].k} ${p.ranked[p.ranked.length - 1].v.toFixed(3)}`).join('; ') +
      (cfg.seeds.length === 1 ? ' (one seed)' : '');
    const m = cfg.model;
    const t = cfg.train;
    return {
      rows,
      columns: ['corpus', 'kind', 'seed', 'params', 'step', 'tokens', 'valBpb', 'trainBpb', 'final', 'trainSeconds', 'evalSeconds'],
      summary,
      notes: [
        `Models: each family's preset structure (presets/*-small.yaml mixers, ffn kind; HOPE's CMS levels from hope-tiny: period ${m.cmsLevels[0].period} at eta ${m.cmsLevels[0].learningRate}, then a frozen level) at hope-tiny's size: dModel ${m.dModel}, ${m.numBlocks} blocks, ${m.numHeads} heads, byte vocab 256, tied embeddings, pre-norm RMSNorm. Chunks: self-modifying Titans ${m.smtChunkSize}, Titans ${m.titansChunkSize}, linear attention ${m.linearChunkSize}.`,
        `Matched parameters: only the ffn hidden width differs (${cfg.families.map((f) => `${f.kind} ${Math.round(f.ffnExpansion * m.dModel)}`).join(', ')}); counts ${cfg.families.map((f) => `${f.kind} ${counts.get(f.kind)}`).join(', ')} (all within ${(cfg.paramTolerance * 100).toFixed(0)}% of hope's, checked before the full run).`,
        `Matched budget: every model trains ${t.steps} Adam steps (lr ${t.learningRate}, global-norm clip ${t.clipNorm}, no schedule, no tuning per family) on the same ${t.batchSize} x ${t.seqLength}-byte windows per step (run/data.ts trainBatch with the run's seed: the same data order for every family), weights seeded by the run's seed. Each training window is a new context.`,
        `Trainer: NestedTrainer with its default segmentation: the HOPE kinds are cut into ${m.cmsLevels[0].period}-token segments (the CMS period; states carried as values, so backprop is truncated at segment boundaries), the baselines (no in-context levels) run each window as one segment. This is how \`nl train\` runs the presets; it is a difference between the families that was not removed.`,
        `Validation: the same ${t.evalBatches * t.evalBatchSize} windows of ${t.seqLength} bytes (evenly spaced over the held-out ${(t.validationFraction * 100).toFixed(0)}% blocks of run/data.ts splitTokens) at every point; each window a fresh context read with in-context learning (CMS levels update at test time as in training), as \`nl eval\`. bpb = mean cross-entropy in nats / ln 2 over the ${t.evalBatches * t.evalBatchSize * t.seqLength} predicted bytes.`,
        `Scale: ~${Math.round(ref / 1000)}k parameters and ${((t.steps * t.batchSize * t.seqLength) / 1000).toFixed(0)}k training bytes, against 760M-1.3B parameters and 30-100B tokens in the paper: this measures which family learns fastest from scratch at a tiny size, not the paper's regime. ${cfg.seeds.length === 1 ? 'One seed per cell (the budget did not allow two): differences of a few hundredths of a bit are within seed noise (see the ablations experiment for a seed-to-seed spread of HOPE).' : ''}`,
        'Columns: valBpb / trainBpb at each evaluation point (trainBpb = mean over the steps since the previous point); final marks the last point; trainSeconds / evalSeconds are per run (wall clock, loaded machine).',
      ],
      verdict,
    };
  },
};
