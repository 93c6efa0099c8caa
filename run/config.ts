/**
 * The run config of `nlearn` (model + training + data) as a zod schema: JSON or YAML files, validated with
 * errors that name the field path and the allowed values; exported as JSON Schema (presets/schema.json)
 * for editor autocompletion. Blocks are named by registered layer class (a third-party block registered
 * by its plugin is used the same way as NlHopeBlock).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { z } from 'zod';
import type { LanguageModelConfig } from '../plugins/hope';
import { MAX_BPE_VOCAB } from './bpe';
import { readTextFile } from '../core/io/read';
import { PRESET_NAMES } from './constants';

export const OPTIMIZERS = ['adam', 'adamw', 'sgd'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];
export const RUN_SCHEDULES = ['constant', 'warmupConstant', 'cosineDecay', 'warmupCosineDecay', 'linear'] as const;
export const CORPORA = ['moby-dick', 'sotu', 'files'] as const;
export type CorpusName = (typeof CORPORA)[number];
export const TOKENIZERS = ['byte', 'bpe'] as const;
export type TokenizerName = (typeof TOKENIZERS)[number];

const LayerSpecSchema = z
  .object({
    className: z.string().regex(/^Nl[A-Za-z0-9]+$/, 'must be a registered layer class name starting with Nl (e.g. NlHopeBlock)'),
    config: z.record(z.string(), z.unknown()).optional().describe('the class constructor config (JSON)'),
    repeat: z.number().int().min(1).max(1024).default(1).describe('consecutive copies of this block'),
  })
  .strict();

export const ModelSchema = z
  .object({
    vocabSize: z.number().int().min(2).max(1 << 20).default(256).describe('>= 256 for the byte tokenizer; equal to data.vocabSize for bpe'),
    dModel: z.number().int().min(1).max(65536),
    blocks: z.array(LayerSpecSchema).min(1).max(1024).describe('blocks in order, each {className, config, repeat}'),
    tieEmbeddings: z.boolean().default(true),
    normEps: z.number().positive().max(1).default(1e-6),
    embeddingInitStd: z.number().positive().max(100).default(0.02),
  })
  .strict();

export const TrainingSchema = z
  .object({
    steps: z.number().int().min(1).max(1e9).default(200),
    batchSize: z.number().int().min(1).max(65536).default(4),
    seqLength: z.number().int().min(2).max(1 << 20).default(64).describe('tokens per training piece (one context)'),
    optimizer: z.enum(OPTIMIZERS).default('adam'),
    learningRate: z.number().positive().max(100).default(3e-3),
    schedule: z
      .object({
        name: z.enum(RUN_SCHEDULES).describe('learning-rate schedule (core/transforms/schedules.ts); the peak is training.learningRate'),
        warmupSteps: z.number().int().min(0).default(0).describe('warmupConstant / warmupCosineDecay: linear warm-up from 0 over this many steps'),
        endFactor: z.number().min(0).max(1).default(0).describe('cosineDecay / warmupCosineDecay / linear: final learning rate as a fraction of learningRate'),
        steps: z.number().int().min(1).optional().describe('steps of the whole schedule incl. warm-up (default: training.steps)'),
      })
      .strict()
      .optional()
      .describe('learning-rate schedule (default: constant); saved in checkpoints with the optimizer state'),
    weightDecay: z.number().min(0).max(1000).default(0).describe('adamw only'),
    clipNorm: z.number().positive().max(1e12).default(1),
    gradientMode: z.enum(['full', 'stop']).default('full'),
    partialChunk: z.enum(['carry', 'flush']).default('carry'),
    segmentLength: z.number().int().min(1).max(1 << 20).optional().describe('default: the fastest CMS period; at most seqLength'),
    checkpointEvery: z.number().int().min(1).max(1e9).default(50),
    evalEvery: z.number().int().min(1).max(1e9).default(50),
    evalBatches: z.number().int().min(1).max(100000).default(2),
    seed: z.number().int().min(0).max(2 ** 32 - 1).default(1).describe('seeds the weight initialisation and the training batches: same seed, same run'),
    maxLoss: z.number().positive().max(1e30).optional().describe('divergence guard: a step whose mean loss is above this is refused before the optimizer applies it (default 3 ln(model.vocabSize)); non-finite losses always are'),
    maxGradNorm: z.number().positive().max(1e30).default(1e6).describe('divergence guard: a step whose outer-gradient global norm (before clipping) is above this is refused; non-finite norms always are'),
    onDivergence: z.enum(['stop', 'skip']).default('stop').describe("divergence guard: 'stop' training (the last good checkpoint stays latest) or 'skip' the bad batch and continue"),
  })
  .strict();

export const DataSchema = z
  .object({
    corpus: z.enum(CORPORA).default('moby-dick'),
    paths: z.array(z.string().min(1)).optional().describe("text files or folders (corpus 'files')"),
    validationFraction: z.number().gt(0).lt(1).default(0.05),
    encoding: z.enum(['utf-8', 'bytes']).default('utf-8').describe("how text files are read: 'utf-8' (invalid UTF-8 is an error naming the file and byte offset) or 'bytes' (taken as they are)"),
    tokenizer: z.enum(TOKENIZERS).default('byte').describe("'byte': UTF-8 bytes (vocab 256); 'bpe': byte-level BPE trained on the training split, saved with the checkpoint"),
    vocabSize: z
      .number()
      .int()
      .min(257, 'must be > 256 (the 256 byte tokens come first, then the merges)')
      .max(MAX_BPE_VOCAB, `must be <= ${MAX_BPE_VOCAB}`)
      .optional()
      .describe("bpe only: 256 byte tokens + the learned merges (training may stop earlier when no pair repeats)"),
  })
  .strict()
  .superRefine((d, ctx) => {
    if (d.corpus === 'files' && (!d.paths || d.paths.length === 0)) ctx.addIssue({ code: 'custom', path: ['paths'], message: "is required when corpus is 'files'" });
    if (d.tokenizer === 'bpe' && d.vocabSize === undefined) ctx.addIssue({ code: 'custom', path: ['vocabSize'], message: "is required when tokenizer is 'bpe'" });
    if (d.tokenizer === 'byte' && d.vocabSize !== undefined) ctx.addIssue({ code: 'custom', path: ['vocabSize'], message: "is only used with tokenizer 'bpe' (the byte tokenizer has 256 tokens)" });
  });

export const RunConfigSchema = z
  .object({
    $schema: z.string().optional(),
    name: z.string().optional(),
    description: z.string().optional(),
    openChoices: z.record(z.string(), z.string()).optional().describe('choices the paper leaves open, and what this preset chose'),
    model: ModelSchema,
    training: TrainingSchema.default(TrainingSchema.parse({})),
    data: DataSchema.default(DataSchema.parse({})),
  })
  .strict()
  .superRefine((c, ctx) => {
    const v = c.model.vocabSize;
    if (c.data.tokenizer === 'bpe' && c.data.vocabSize !== undefined && v !== c.data.vocabSize) {
      ctx.addIssue({ code: 'custom', path: ['model', 'vocabSize'], message: `must equal data.vocabSize (${c.data.vocabSize}) with the bpe tokenizer, got ${v}` });
    }
    if (c.data.tokenizer === 'byte' && v < 256) ctx.addIssue({ code: 'custom', path: ['model', 'vocabSize'], message: `must be >= 256 with the byte tokenizer, got ${v}` });
    const sch = c.training.schedule;
    if (sch && sch.name.startsWith('warmup') && sch.warmupSteps < 1) ctx.addIssue({ code: 'custom', path: ['training', 'schedule', 'warmupSteps'], message: `must be >= 1 with schedule '${sch.name}'` });
  });

export type RunConfig = z.infer<typeof RunConfigSchema>;
export type RunConfigInput = z.input<typeof RunConfigSchema>;

/** One line per problem: "model.blocks[0].className: ..." (zod's messages list the allowed values). */
export function formatIssues(error: z.ZodError, where = 'config'): string {
  return error.issues
    .map((i) => {
      const p = i.path.reduce<string>((a, k) => (typeof k === 'number' ? `${a}[${k}]` : a ? `${a}.${String(k)}` : String(k)), '');
      return `${where}${p ? ` ${p}` : ''}: ${i.message}`;
    })
    .join('\n');
}

/**
 * Validates a parsed config. `knownClasses` (registered layer class names, e.g. runtime.layers().keys())
 * adds a check that every block class exists, naming the allowed values.
 */
export function validateRunConfig(raw: unknown, opts: { knownClasses?: Iterable<string>; where?: string } = {}): RunConfig {
  const r = RunConfigSchema.safeParse(raw);
  if (!r.success) throw new Error(formatIssues(r.error, opts.where));
  if (opts.knownClasses) {
    const known = [...opts.knownClasses];
    r.data.model.blocks.forEach((b, i) => {
      if (!known.includes(b.className)) {
        throw new Error(`${opts.where ?? 'config'} model.blocks[${i}].className: unknown class '${b.className}' (registered: ${known.join(', ')})`);
      }
    });
  }
  return r.data;
}

/** Largest config file read (checked before reading). */
export const MAX_CONFIG_BYTES = 1 << 20;

/**
 * Parses config text: JSON for .json, else YAML in a strict mode (YAML 1.2 core schema: no custom or
 * language tags such as !!js/function or !!binary, no duplicate keys, bounded aliases); any YAML error or
 * warning refuses the file. Errors start with `file`.
 */
export function parseConfigText(text: string, file: string): unknown {
  const json = path.extname(file).toLowerCase() === '.json';
  if (json) {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Error(`${file}: not valid JSON: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const doc = YAML.parseDocument(text, { schema: 'core', customTags: [], uniqueKeys: true, strict: true, prettyErrors: false });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw new Error(`${file}: not valid YAML (strict mode: no custom tags, no duplicate keys): ${problem.message.split('\n')[0]}`);
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new Error(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** Reads a .json / .yaml / .yml config file (a regular file of at most MAX_CONFIG_BYTES, strict UTF-8) and validates it; errors start with the file name. */
export function loadRunConfig(file: string, opts: { knownClasses?: Iterable<string> } = {}): RunConfig {
  if (typeof file !== 'string' || file === '') throw new Error('--config: the path is empty');
  const text = readTextFile(file, { maxBytes: MAX_CONFIG_BYTES, label: file });
  if (text.trim() === '') throw new Error(`${file}: the file is empty`);
  return validateRunConfig(parseConfigText(text, file), { ...opts, where: file });
}

export { PRESET_NAMES, type PresetName } from './constants';

/** presets/ next to this package (source tree or dist). */
export function presetsDir(): string {
  for (const d of [path.join(__dirname, '..', 'presets'), path.join(__dirname, '..', '..', 'presets')]) if (fs.existsSync(path.join(d, 'hope-tiny.yaml'))) return d;
  throw new Error('presets directory not found');
}

export function loadPreset(name: string, opts: { knownClasses?: Iterable<string> } = {}): RunConfig {
  if (!(PRESET_NAMES as readonly string[]).includes(name)) throw new Error(`--preset: must be one of ${PRESET_NAMES.join(', ')}, got '${name}'`);
  return loadRunConfig(path.join(presetsDir(), `${name}.yaml`), opts);
}

/** The model part as the LanguageModel config (blocks expanded by `repeat`). */
export function languageModelConfig(c: RunConfig): LanguageModelConfig {
  const m = c.model;
  const blocks = m.blocks.flatMap((b) => Array.from({ length: b.repeat }, () => ({ className: b.className, config: b.config ?? {} })));
  return { vocabSize: m.vocabSize, dModel: m.dModel, blocks, tieEmbeddings: m.tieEmbeddings, normEps: m.normEps, embeddingInitStd: m.embeddingInitStd };
}

/**
 * The scaleBySchedule spec for training.schedule (core/transforms/schedules.ts), peak = training.learningRate,
 * or null for a constant learning rate. The optimizer runs at learning rate 1 and is chained with it. The
 * schedule's length is schedule.steps, else training.steps of the config (not a --steps override), and at
 * least warmupSteps + 1.
 */
export function runScheduleSpec(t: RunConfig['training']): { transform: 'scaleBySchedule'; config: { schedule: Record<string, string | number> } } | null {
  const s = t.schedule;
  if (!s || s.name === 'constant') return null;
  const lr = t.learningRate;
  const steps = Math.max(s.steps ?? t.steps, s.warmupSteps + 1); // a run shorter than its warm-up stays in warm-up
  const schedule: Record<string, string | number> =
    s.name === 'warmupConstant' ? { name: s.name, init: 0, peak: lr, warmupSteps: s.warmupSteps }
    : s.name === 'cosineDecay' ? { name: s.name, init: lr, steps, alpha: s.endFactor }
    : s.name === 'warmupCosineDecay' ? { name: s.name, init: 0, peak: lr, warmupSteps: s.warmupSteps, steps, end: s.endFactor * lr }
    : { name: 'linear', init: lr, end: s.endFactor * lr, steps, begin: 0 };
  return { transform: 'scaleBySchedule', config: { schedule } };
}

/** JSON Schema of the run config (what presets/schema.json holds). */
export function runConfigJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(RunConfigSchema, { io: 'input' }) as Record<string, unknown>;
}
