/**
 * Needle in a haystack (paper Table 1: single-needle passkey, number and uuid retrieval), byte level.
 *
 * Sequence (ASCII bytes, one token per byte): BOS, a haystack of filler sentences drawn at random from a
 * fixed list, with one needle sentence inserted between two filler sentences at a random depth, then the
 * question. Needle / question per type:
 *   passkey: "The pass key is: 48213. Remember it."   ... "What is the pass key? The pass key is: 48213"
 *   number:  "The magic number is: 2837461."  ... "What is the magic number? The magic number is: 2837461"
 *   uuid:    "The magic uuid is: 3f2a9c1b."    ... "What is the magic uuid? The magic uuid is: 3f2a9c1b"
 * (5 random digits, 7 random digits, 8 random lowercase hex characters: a short uuid-like string.)
 * Labelled: the answer characters at the end, each predicted at the byte before it (teacher forced); the
 * prediction is the argmax over the answer alphabet (digits, or hex digits for uuid). A sequence counts as
 * retrieved when every answer character is right: with teacher forcing that is exactly "greedy decoding
 * over the answer alphabet reproduces the needle", measured in one forward pass.
 * The filler contains no ':' and no digit, so "is: " followed by the answer occurs only in the needle.
 */
import * as tf from '@tensorflow/tfjs';
import { batchTensors, disposeModel, leftPad, randInt, rng, trainStep, type ModelKind, type ModelRun } from './models';
import { buildConvModel, type ConvModelSizes, type Example } from './mad';
import type { Experiment, ExperimentResult, Row, RunOpts, SizeName } from './types';

export type NeedleType = 'passkey' | 'number' | 'uuid';
export const NEEDLE_TYPES: readonly NeedleType[] = ['passkey', 'number', 'uuid'];

/** Byte-level vocabulary: ASCII 0-127; BOS = 2 (STX), PAD = 0. */
export const VOCAB = 128;
export const PAD = 0;
export const BOS = 2;

export const FILLER: readonly string[] = [
  'The grass is green.',
  'The sky is blue.',
  'The sun is yellow.',
  'Here we go.',
  'There and back again.',
  'The river flows to the sea.',
  'A cat sleeps on the warm roof.',
  'Birds sing in the morning.',
  'The road winds over the hill.',
  'Rain falls on the quiet town.',
];

const DIGITS = '0123456789';
const HEX = '0123456789abcdef';

interface NeedleSpec {
  alphabet: string;
  length: number;
  needle: (a: string) => string;
  question: string;
}
const SPECS: Record<NeedleType, NeedleSpec> = {
  passkey: { alphabet: DIGITS, length: 5, needle: (a) => `The pass key is: ${a}. Remember it.`, question: 'What is the pass key? The pass key is: ' },
  number: { alphabet: DIGITS, length: 7, needle: (a) => `The magic number is: ${a}.`, question: 'What is the magic number? The magic number is: ' },
  uuid: { alphabet: HEX, length: 8, needle: (a) => `The magic uuid is: ${a}.`, question: 'What is the magic uuid? The magic uuid is: ' },
};

const bytes = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0));

/** Answer tokens (candidates of the argmax) of a needle type. */
export function answerTokens(type: NeedleType): number[] {
  return bytes(SPECS[type].alphabet);
}

export interface NeedleExample extends Example {
  answer: string;
  /** Token index where the needle sentence starts. */
  needleAt: number;
}

/**
 * One sequence of exactly `length` tokens: BOS, filler sentences (space-separated) with the needle
 * inserted at a random sentence boundary, padded with further filler characters to length, then the
 * question and the answer. Throws when `length` cannot hold the needle and the question.
 */
export function needleSequence(r: () => number, type: NeedleType, length: number): NeedleExample {
  const spec = SPECS[type];
  const answer = Array.from({ length: spec.length }, () => spec.alphabet[randInt(r, 0, spec.alphabet.length - 1)]).join('');
  const needle = spec.needle(answer);
  const tail = ` ${spec.question}${answer}`;
  const hay = length - 1 - tail.length; // characters for filler + needle (BOS excluded)
  if (hay < needle.length + 1) throw new Error(`needle: length ${length} too short for a ${type} needle and question (need > ${1 + tail.length + needle.length})`);
  // Filler of exactly F = hay - needle - 1 characters (sentences joined by spaces, the last one cut), then
  // the needle (+ one space) inserted at a random sentence start within it (or at its end).
  const F = hay - needle.length - 1;
  let filler = '';
  const starts: number[] = [];
  while (filler.length < F) {
    starts.push(filler.length);
    filler += FILLER[randInt(r, 0, FILLER.length - 1)] + ' ';
  }
  filler = filler.slice(0, F);
  starts.push(F);
  const start = starts[randInt(r, 0, starts.length - 1)];
  const text = start === F ? `${filler} ${needle}` : `${filler.slice(0, start)}${needle} ${filler.slice(start)}`;
  const ids = [BOS, ...bytes(text), ...bytes(tail)];
  if (ids.length !== length) throw new Error(`needle: built ${ids.length} tokens, wanted ${length}`);
  const labels: Example['labels'] = [];
  const a0 = length - spec.length;
  for (let i = 0; i < spec.length; i++) labels.push({ pos: a0 + i - 1, label: ids[a0 + i] });
  return { ids, labels, answer, needleAt: 1 + start + (start === F ? 1 : 0) };
}

export interface NeedleConfig {
  kinds: ModelKind[];
  types: NeedleType[];
  sizes: ConvModelSizes;
  learningRate: number;
  steps: number;
  batchSize: number;
  /** Training context lengths (tokens), drawn uniformly per batch from [min, max]. */
  trainMin: number;
  trainMax: number;
  /** Test context lengths (tokens). */
  testLengths: number[];
  /** Test sequences per (type, length). */
  testSequences: number;
  /** Test batch: tokens per batch (sequences = max(1, floor(tokens / length))). */
  evalTokens: number;
  /** Segment length of the trainer (state carried between segments; KV cache for attention). */
  segmentLength: number;
  seeds: number[];
}

const FULL: NeedleConfig = {
  kinds: ['hope', 'transformer', 'deltanet', 'titans', 'linear-attention'],
  types: [...NEEDLE_TYPES],
  sizes: { dModel: 32, numHeads: 2, numBlocks: 1, chunkSize: 16, shortConv: 4, cmsLevels: [{ period: 128, learningRate: 0.01 }, { period: 0 }] },
  learningRate: 1e-2,
  steps: 150,
  batchSize: 8,
  trainMin: 90,
  trainMax: 128,
  testLengths: [128, 1024, 2048, 4096],
  testSequences: 8,
  evalTokens: 8192,
  segmentLength: 128,
  seeds: [1],
};

const SMOKE: NeedleConfig = {
  ...FULL,
  sizes: { ...FULL.sizes, dModel: 8, chunkSize: 8, cmsLevels: [{ period: 128, learningRate: 0.01 }, { period: 0 }] },
  steps: 2,
  batchSize: 2,
  trainMin: 100,
  trainMax: 112,
  testLengths: [112, 160],
  testSequences: 2,
  evalTokens: 512,
  segmentLength: 128,
};

/** Trains one kind on mixed needle types at short lengths and measures exact-match retrieval per (type, length). */
export async function runNeedle(kind: ModelKind, cfg: NeedleConfig, seed: number, log?: (l: string) => void): Promise<Row[]> {
  const tr = rng(seed * 15485863 + 7);
  const tests = cfg.types.flatMap((type) => cfg.testLengths.map((len) => ({ type, len, seqs: Array.from({ length: cfg.testSequences }, () => needleSequence(tr, type, len)) })));
  const dr = rng(seed * 32452843 + 7); // same training sequences for every kind
  const t0 = Date.now();
  const m = buildConvModel(kind, VOCAB, cfg.sizes, cfg.learningRate, seed, { segmentLength: cfg.segmentLength });
  const rows: Row[] = [];
  let loss = NaN;
  try {
    for (let step = 0; step < cfg.steps; step++) {
      const len = randInt(dr, cfg.trainMin, cfg.trainMax);
      const batch = Array.from({ length: cfg.batchSize }, () => needleSequence(dr, cfg.types[randInt(dr, 0, cfg.types.length - 1)], len));
      loss = trainStep(m, leftPad(batch, PAD), VOCAB);
      if (!Number.isFinite(loss)) throw new Error(`needle: ${kind} diverged at step ${step} (lower learningRate)`);
      if (log && (step + 1) % 25 === 0) log(`needle ${kind} step ${step + 1}: loss ${loss.toFixed(3)}`);
    }
    const trainSeconds = (Date.now() - t0) / 1000;
    for (const t of tests) {
      const t1 = Date.now();
      const bs = Math.max(1, Math.floor(cfg.evalTokens / t.len));
      let exact = 0;
      let chars = 0;
      let total = 0;
      for (let i = 0; i < t.seqs.length; i += bs) {
        const part = t.seqs.slice(i, i + bs);
        const r = await evalNeedles(m, part, answerTokens(t.type));
        exact += r.exact;
        chars += r.correctLabels;
        total += r.labels;
      }
      const row: Row = {
        kind,
        type: t.type,
        length: t.len,
        inTrainRange: t.len <= cfg.trainMax,
        seed,
        params: m.params,
        finalTrainLoss: +loss.toFixed(4),
        exactMatch: +(exact / t.seqs.length).toFixed(3),
        charAccuracy: +(chars / total).toFixed(3),
        trainSeconds: +trainSeconds.toFixed(1),
        testSeconds: +((Date.now() - t1) / 1000).toFixed(1),
      };
      rows.push(row);
      log?.(`needle ${kind}: ${JSON.stringify(row)}`);
    }
  } finally {
    disposeModel(m);
  }
  return rows;
}

/**
 * Exact-match and per-character counts over a batch of equal-length sequences: like models.ts evalBatch
 * (each sequence a fresh context read by trainer.memorize, argmax over the candidates, one sync per
 * batch) but keeping the per-sequence flags that exact match needs.
 */
export async function evalNeedles(m: ModelRun, seqs: NeedleExample[], candidates: readonly number[]): Promise<{ exact: number; correctLabels: number; labels: number }> {
  const { x, y } = batchTensors(leftPad(seqs, PAD), VOCAB);
  const T = x.shape[1];
  const b = leftPad(seqs, PAD);
  try {
    const r = m.trainer.memorize(x, y, { newContext: true, collect: true });
    const logits = r.outputs!; // [B, T, V]
    const picked = tf.tidy(() => tf.argMax(tf.gather(logits, tf.tensor1d(Int32Array.from(candidates), 'int32'), 2), -1)); // [B, T]
    const arg = await picked.data();
    tf.dispose([logits, r.tokenLosses ?? [], picked]);
    let exact = 0;
    let correctLabels = 0;
    let labels = 0;
    b.labels.forEach((ls, i) => {
      const ok = ls.map(({ pos, label }) => candidates[arg[i * T + pos]] === label);
      labels += ok.length;
      correctLabels += ok.filter(Boolean).length;
      if (ok.every(Boolean)) exact++;
    });
    return { exact, correctLabels, labels };
  } finally {
    m.trainer.resetMemory();
    tf.dispose([x, y]);
  }
}

function mean(rows: Row[], kind: string, type: string, len: number, key: string): number {
  const v = rows.filter((r) => r.kind === kind && r.type === type && r.length === len).map((r) => Number(r[key]));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
}

export const needle: Experiment<NeedleConfig> = {
  name: 'needle',
  title: 'Needle in a haystack: passkey, number and uuid retrieval at 1K, 2K, 4K bytes (paper Table 1)',
  claim: 'Needle in a haystack (Table 1): Hope 100% passkey at 4K/8K/16K (and high on number / uuid retrieval).',
  config: (size: SizeName) => (size === 'smoke' ? SMOKE : FULL),
  plot: { x: 'length', y: 'exactMatch', color: 'kind', facet: 'type', xType: 'ordinal', mark: 'line', title: 'Needle retrieval exact match vs context length (bytes)' },
  async run(opts: RunOpts): Promise<ExperimentResult> {
    const cfg = this.config(opts.smoke ? 'smoke' : 'full');
    const rows: Row[] = [];
    for (const seed of cfg.seeds.map((s) => s + opts.seed - 1)) for (const kind of cfg.kinds) rows.push(...(await runNeedle(kind, cfg, seed, opts.log)));
    const head = `| type | length | ${cfg.kinds.join(' | ')} |\n|---|---|${cfg.kinds.map(() => '---').join('|')}|\n`;
    const summary =
      `Exact-match retrieval (all answer characters right; per-character accuracy in brackets). Trained on ${cfg.trainMin}-${cfg.trainMax} tokens; longer lengths are extrapolation.\n\n` +
      head +
      cfg.types
        .flatMap((ty) => cfg.testLengths.map((len) => `| ${ty} | ${len} | ${cfg.kinds.map((k) => `${mean(rows, k, ty, len, 'exactMatch').toFixed(2)} (${mean(rows, k, ty, len, 'charAccuracy').toFixed(2)})`).join(' | ')} |`))
        .join('\n');
    const inLen = cfg.testLengths.filter((l) => l <= cfg.trainMax);
    const longLen = cfg.testLengths.filter((l) => l > cfg.trainMax);
    const fitted = cfg.kinds.filter((k) => cfg.types.every((ty) => inLen.every((l) => mean(rows, k, ty, l, 'exactMatch') >= 0.5)));
    const hopeLong = cfg.types.map((ty) => `${ty} ${longLen.map((l) => mean(rows, 'hope', ty, l, 'exactMatch').toFixed(2)).join('/')}`).join(', ');
    const bestLong = (ty: string, l: number): string => cfg.kinds.reduce((a, k) => (mean(rows, k, ty, l, 'exactMatch') > mean(rows, a, ty, l, 'exactMatch') ? k : a), cfg.kinds[0]);
    const maxL = longLen[longLen.length - 1];
    const hopePasskeyMax = maxL === undefined ? NaN : mean(rows, 'hope', 'passkey', maxL, 'exactMatch');
    const bestTxt = maxL === undefined ? '' : cfg.types.map((ty) => `${ty} ${bestLong(ty, maxL)} ${mean(rows, bestLong(ty, maxL), ty, maxL, 'exactMatch').toFixed(2)}`).join(', ');
    const verdict =
      fitted.length === 0
        ? `inconclusive: no model retrieves the needle even at the training length (exact match >= 0.5 for every type); hope at ${longLen.join('/')}: ${hopeLong}`
        : `${hopePasskeyMax >= 0.99 ? 'holds for passkey' : 'does not hold'} at this scale: hope exact match at ${longLen.join('/')} tokens: ${hopeLong}; fit the training length (>= 0.5 exact on every type): ${fitted.join(', ')}; best at ${maxL}: ${bestTxt}`;
    const s = cfg.sizes;
    return {
      rows,
      columns: ['kind', 'type', 'length', 'inTrainRange', 'seed', 'params', 'finalTrainLoss', 'exactMatch', 'charAccuracy', 'trainSeconds', 'testSeconds'],
      summary,
      notes: [
        'Byte-level (ASCII, vocabulary 128). Haystack: random sentences from a list of 10 filler sentences (no digits, no colon), one needle sentence at a random sentence boundary, then the question; the answer characters are labelled (predicted at the byte before each, teacher forced; masked loss elsewhere), argmax over the answer alphabet (digits; hex digits for uuid). Exact match = all characters right = greedy decoding over the answer alphabet reproduces the needle.',
        `Training: one model per kind on the three needle types mixed, context lengths uniform in ${cfg.trainMin}-${cfg.trainMax} tokens (one length per batch), ${cfg.steps} steps of ${cfg.batchSize} sequences, Adam lr ${cfg.learningRate}, clip 1; test on fresh sequences at ${cfg.testLengths.join(', ')} tokens (${cfg.testSequences} per cell, so exact match moves in steps of ${(1 / cfg.testSequences).toFixed(3)}). Training at 1K-4K is not affordable for HOPE on this machine (the self-modifying Titans runs at ~1K tokens/s forward+backward at width 32), so lengths above ${cfg.trainMax} test length extrapolation, which the paper's models (trained at 4K+ on 30B+ tokens) do not need.`,
        `Models: ${s.numBlocks} block, width ${s.dModel}, ${s.numHeads} heads, short causal conv window ${s.shortConv} on every block (HOPE's default, added to the baselines), same embedding / norms / head; HOPE CMS levels [period ${s.cmsLevels?.[0].period}, static]. Contexts are run in segments of ${cfg.segmentLength} tokens with the state carried (the attention KV cache is exact across segments); training contexts fit one segment.`,
        'Evaluation through NestedTrainer.memorize (each test sequence a fresh context; HOPE\'s CMS levels learn in context as in training).',
      ],
      verdict,
    };
  },
};
