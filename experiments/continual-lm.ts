/**
 * Continual language modelling (issue 7 item 6): corpus A (Moby Dick) then corpus B (State of the Union
 * addresses), byte level, a small HOPE (the hope-tiny preset model) vs a Transformer++ of matched size
 * (2 blocks of RoPE attention + SwiGLU, width 32, SwiGLU expansion picked so the parameter counts match).
 *
 * Protocol, same for both models (Adam, clip 1, seeded weights, the same batches):
 * 1. train `stepsA` steps on A's training split; measure bpb on A and B;
 * 2. train `stepsB` steps on B; measure bpb on A (forgetting = bpb_A after B - bpb_A after A) and B;
 * 3. test-time memorization: every evaluation context first reads `memorizeBytes` of A's TRAINING text
 *    with trainer.memorize (in-context learning only: CMS levels and self-modifying memories for HOPE,
 *    the KV cache for the Transformer; no outer step), then the A validation window: bpb on A
 *    "after B + memorize A".
 * bpb of a corpus = mean next-byte loss over the first `evalBytes` validation bytes cut into windows of
 * `seqLength` (the training context length), each window its own context, read in parallel (evalWindows).
 */
import * as tf from '@tensorflow/tfjs';
import type { LanguageModelConfig } from '../plugins/hope';
import { bitsPerByte, countLmParams, createLmRun, disposeLmRun, languageModelConfig, loadDataset, loadPreset, nlRuntime, trainBatch, type LmRun } from '../run';
import type { Experiment, ExperimentResult, Row, RunOpts, SizeName } from './types';

export type ContinualLmKind = 'hope' | 'transformer';

export interface ContinualLmConfig {
  kinds: ContinualLmKind[];
  stepsA: number;
  stepsB: number;
  batchSize: number;
  seqLength: number;
  learningRate: number;
  evalBytes: number;
  memorizeBytes: number;
  seeds: number[];
}

const FULL: ContinualLmConfig = { kinds: ['hope', 'transformer'], stepsA: 100, stepsB: 100, batchSize: 4, seqLength: 64, learningRate: 3e-3, evalBytes: 1024, memorizeBytes: 1025, seeds: [1] };
const SMOKE: ContinualLmConfig = { ...FULL, stepsA: 1, stepsB: 1, batchSize: 1, seqLength: 16, evalBytes: 16, memorizeBytes: 17 };

/** The hope-tiny model config (presets/hope-tiny.yaml). */
export function hopeTinyConfig(): LanguageModelConfig {
  return languageModelConfig(loadPreset('hope-tiny', { knownClasses: nlRuntime().layers().keys() }));
}

/** Transformer++ with hope-tiny's width, depth and heads; SwiGLU hidden = expansion x 32. */
export function transformerConfig(expansion: number): LanguageModelConfig {
  const block = { className: 'NlResidualBlock', config: { mixer: { className: 'NlCausalAttention', config: { numHeads: 2 } }, ffn: { className: 'NlGatedMlp', config: { expansion } } } };
  return { vocabSize: 256, dModel: 32, blocks: [block, block], tieEmbeddings: true };
}

const countParams = countLmParams;

/** The SwiGLU expansion (hidden a multiple of 1/32) whose Transformer++ is closest in parameters to `target`. */
export function matchedExpansion(target: number): number {
  const base = countParams(transformerConfig(1));
  const per = countParams(transformerConfig(2)) - base; // parameters per unit of expansion (linear in the hidden width)
  const e = 1 + (target - base) / per;
  return Math.max(1 / 32, Math.round(e * 32) / 32);
}

/** Token ids (bytes): a typed array. */
type TokenStream = { length: number; subarray(begin: number, end?: number): ArrayLike<number> };

type Model = LmRun;

function build(c: LanguageModelConfig, lr: number, seed: number): Model {
  return createLmRun({ model: c, optimizer: lr, seed, trainer: { clipNorm: 1 } }); // Adam, token cross-entropy
}

const dispose = disposeLmRun;

function trainSteps(m: Model, train: Parameters<typeof trainBatch>[0], steps: number, cfg: ContinualLmConfig, seed: number): number {
  let loss = NaN;
  for (let s = 0; s < steps; s++) {
    const b = trainBatch(train, s, cfg.batchSize, cfg.seqLength, seed);
    try {
      loss = m.trainer.train(b.inputs, b.targets).loss;
    } finally {
      tf.dispose([b.inputs, b.targets]);
    }
    if (!Number.isFinite(loss)) throw new Error(`continual-lm: training loss not finite at step ${s} (lower learningRate)`);
  }
  return loss;
}

/**
 * Mean nats per byte on `n` = floor((bytes.length - 1) / seqLength) windows of `seqLength` bytes of `bytes`,
 * read as n parallel contexts [n, seqLength] through trainer.memorize (in-context learning while reading,
 * no outer step). Without `prefix` each window is a fresh context, exactly like a training piece. With
 * `prefix` (test-time memorization) every context first reads the prefix bytes, piece by piece, and
 * the window continues that context; only the window's loss is returned.
 */
export function evalWindows(m: Model, bytes: TokenStream, seqLength: number, prefix?: TokenStream): number {
  const n = Math.floor((bytes.length - 1) / seqLength);
  if (n < 1) throw new Error(`continual-lm: ${bytes.length} bytes is shorter than seqLength + 1 = ${seqLength + 1}`);
  const piece = (src: TokenStream, start: number, rows: number, tile: boolean): { x: tf.Tensor2D; y: tf.Tensor2D } => {
    const x = new Int32Array(rows * seqLength);
    const y = new Int32Array(rows * seqLength);
    for (let r = 0; r < rows; r++) {
      const o = tile ? start : start + r * seqLength;
      const xs = src.subarray(o, o + seqLength);
      const ys = src.subarray(o + 1, o + seqLength + 1);
      for (let t = 0; t < seqLength; t++) {
        x[r * seqLength + t] = xs[t];
        y[r * seqLength + t] = ys[t];
      }
    }
    return { x: tf.tensor2d(x, [rows, seqLength], 'int32'), y: tf.tensor2d(y, [rows, seqLength], 'int32') };
  };
  let fresh = true;
  if (prefix) {
    const np = Math.floor((prefix.length - 1) / seqLength);
    for (let i = 0; i < np; i++) {
      const p = piece(prefix, i * seqLength, n, true); // the same prefix piece in every context
      try {
        m.trainer.memorize(p.x, p.y, { newContext: i === 0 });
      } finally {
        tf.dispose([p.x, p.y]);
      }
      fresh = false;
    }
  }
  const w = piece(bytes, 0, n, false);
  try {
    return m.trainer.memorize(w.x, w.y, { newContext: fresh }).loss;
  } finally {
    tf.dispose([w.x, w.y]);
    m.trainer.resetMemory();
  }
}

export const continualLm: Experiment<ContinualLmConfig> = {
  name: 'continual-lm',
  title: 'Continual language modelling: Moby Dick then State of the Union, forgetting and test-time memorization (HOPE vs Transformer++)',
  claim: 'Continual learning: Hope forgets less than ICL (in-context learning alone) and EWC; CMS / in-context levels recover old knowledge at test time.',
  config: (size: SizeName) => (size === 'smoke' ? SMOKE : FULL),
  plot: { x: 'stage', y: 'bpb', color: 'kind', facet: 'corpus', xType: 'ordinal', mark: 'line', yScale: 'auto', title: 'Bits per byte on A (Moby Dick) and B (State of the Union) after each stage' },
  async run(opts: RunOpts): Promise<ExperimentResult> {
    const cfg = this.config(opts.smoke ? 'smoke' : 'full');
    const A = loadDataset({ corpus: 'moby-dick', validationFraction: 0.05 }, cfg.seqLength);
    const B = loadDataset({ corpus: 'sotu', validationFraction: 0.05 }, cfg.seqLength);
    const valA = A.validation.subarray(0, cfg.evalBytes + 1);
    const valB = B.validation.subarray(0, cfg.evalBytes + 1);
    const memA = A.train.subarray(0, cfg.memorizeBytes);
    const hopeCfg = hopeTinyConfig();
    const hopeParams = countParams(hopeCfg);
    const expansion = matchedExpansion(hopeParams);
    const configs: Record<ContinualLmKind, LanguageModelConfig> = { hope: hopeCfg, transformer: transformerConfig(expansion) };
    const rows: Row[] = [];
    const bpb = (nats: number): number => +bitsPerByte(nats).toFixed(4);
    for (const seed of cfg.seeds.map((s) => s + opts.seed - 1)) {
      for (const kind of cfg.kinds) {
        const t0 = Date.now();
        const m = build(configs[kind], cfg.learningRate, seed);
        const params = m.lm.countParams();
        const push = (stage: string, corpus: string, nats: number, lossTrain: number): void => {
          const row: Row = { kind, params, seed, stage, corpus, bpb: bpb(nats), lastTrainLoss: +lossTrain.toFixed(4), seconds: +((Date.now() - t0) / 1000).toFixed(1) };
          rows.push(row);
          opts.log?.(`continual-lm ${JSON.stringify(row)}`);
        };
        try {
          const lA = trainSteps(m, A.train, cfg.stepsA, cfg, seed);
          push('1 after A', 'A (moby-dick)', evalWindows(m, valA, cfg.seqLength), lA);
          push('1 after A', 'B (sotu)', evalWindows(m, valB, cfg.seqLength), lA);
          const lB = trainSteps(m, B.train, cfg.stepsB, cfg, seed + 1000);
          push('2 after B', 'A (moby-dick)', evalWindows(m, valA, cfg.seqLength), lB);
          push('2 after B', 'B (sotu)', evalWindows(m, valB, cfg.seqLength), lB);
          // test-time memorization of A text (no outer step), then the same windows
          push('3 after B + memorize A', 'A (moby-dick)', evalWindows(m, valA, cfg.seqLength, memA), lB);
        } finally {
          dispose(m);
        }
      }
    }
    const get = (kind: string, stage: string, corpus: string): number => {
      const v = rows.filter((r) => r.kind === kind && r.stage === stage && String(r.corpus).startsWith(corpus)).map((r) => Number(r.bpb));
      return v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
    };
    const f = (v: number): string => v.toFixed(3);
    const line = (k: string): string => {
      const a1 = get(k, '1 after A', 'A');
      const a2 = get(k, '2 after B', 'A');
      const a3 = get(k, '3 after B + memorize A', 'A');
      return `| ${k} | ${rows.find((r) => r.kind === k)?.params} | ${f(a1)} | ${f(get(k, '1 after A', 'B'))} | ${f(a2)} | ${f(get(k, '2 after B', 'B'))} | ${f(a2 - a1)} | ${f(a3)} | ${f(a3 - a2)} |`;
    };
    const summary = [
      'Bits per byte (lower is better; uniform bytes = 8).',
      '',
      '| kind | params | A after A | B after A | A after B | B after B | forgetting on A (A after B - A after A) | A after B + memorize A | memorization gain (negative = better) |',
      '|---|---|---|---|---|---|---|---|---|',
      ...cfg.kinds.map(line),
    ].join('\n');
    const forget = (k: string): number => get(k, '2 after B', 'A') - get(k, '1 after A', 'A');
    const recover = (k: string): number => get(k, '3 after B + memorize A', 'A') - get(k, '2 after B', 'A');
    const effect = (d: number): string => (d < -0.01 ? 'recovers' : d > 0.01 ? 'worse' : 'no effect');
    const both = cfg.kinds.includes('hope') && cfg.kinds.includes('transformer');
    const verdict = both
      ? `forgetting on A: hope ${f(forget('hope'))} vs transformer ${f(forget('transformer'))} bpb (${
          Math.max(forget('hope'), forget('transformer')) <= 0.01 ? 'no forgetting to compare: training on B does not hurt A for either model at this budget' : forget('hope') < forget('transformer') ? 'hope forgets less' : 'hope does not forget less'
        }); ` +
        `test-time memorization of A text changes bpb on A by hope ${f(recover('hope'))} (${effect(recover('hope'))}), transformer ${f(recover('transformer'))} (${effect(recover('transformer'))}); ` +
        `A after A: hope ${f(get('hope', '1 after A', 'A'))}, transformer ${f(get('transformer', '1 after A', 'A'))}`
      : 'only one kind run';
    return {
      rows,
      columns: ['kind', 'params', 'seed', 'stage', 'corpus', 'bpb', 'lastTrainLoss', 'seconds'],
      summary,
      notes: [
        `Models: hope = presets/hope-tiny.yaml (${hopeParams} parameters: 2 HOPE blocks, width 32, CMS [period 16, frozen]); transformer = 2 Transformer++ blocks (RoPE attention, 2 heads, SwiGLU expansion ${expansion}, the value that matches hope's parameter count), width 32, tied embeddings. Seeded weights.`,
        `Training: Adam lr ${cfg.learningRate}, clip 1, ${cfg.stepsA} steps on A then ${cfg.stepsB} on B, ${cfg.batchSize} x ${cfg.seqLength} bytes per step (run/data trainBatch, seeded); the optimizer state carries over from A to B (one continual run).`,
        `Evaluation: the first ${cfg.evalBytes} bytes of each validation split (every 20th 4 KB block) as ${Math.floor(cfg.evalBytes / cfg.seqLength)} windows of ${cfg.seqLength} bytes, each its own context (the training context length), read in parallel by NestedTrainer.memorize (HOPE's CMS and memories learn in context while reading; no outer step). Memorization: every window's context first reads the first ${cfg.memorizeBytes - 1} bytes of A's TRAINING split (pieces of ${cfg.seqLength}), then the window; for the Transformer that puts the window at positions ${cfg.memorizeBytes - 1}-${cfg.memorizeBytes - 1 + cfg.seqLength}, far beyond its training length ${cfg.seqLength} (RoPE extrapolation), for HOPE the prefix only changes its memories.`,
        'The claim as stated compares HOPE with in-context learning and EWC on class-incremental tasks; here the comparison is HOPE vs a Transformer++ (whose only test-time adaptation is attention over the context) at ~50K parameters and a few hundred steps. One seed.',
      ],
      verdict,
    };
  },
};
