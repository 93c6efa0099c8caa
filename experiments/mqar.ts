/**
 * Multi-query associative recall (MQAR, Arora et al. 2023, "Zoology"; the recall family of the paper's
 * Table 4) at growing numbers of key-value pairs.
 *
 * Sequence: `BOS k_1 v_1 .. k_N v_N q_1 .. q_N` where the queries are the N keys in a random order;
 * at each query position the model predicts that key's value (loss only there; prediction = argmax over
 * the value tokens). Keys and values are drawn without replacement per sequence. One model per kind is
 * trained on a mixture of N in [1, maxTrainPairs] and tested per N, including N above the training range.
 */
import { buildConvModel, lrOf, type ConvModelSizes } from './mad';
import { disposeModel, evalBatch, leftPad, randInt, rng, trainStep, type ModelKind } from './models';
import type { Experiment, ExperimentResult, Row, RunOpts, SizeName } from './types';

const PAD = 0;
const BOS = 1;
const KEY0 = 2;

export interface MqarConfig {
  kinds: ModelKind[];
  sizes: ConvModelSizes;
  /** Distinct key tokens and distinct value tokens. */
  numKeys: number;
  numValues: number;
  learningRate: number;
  /** Adam learning rate of the kinds that do not use `learningRate` (chosen per kind on a calibration grid; stated in the notes). */
  learningRateByKind?: Partial<Record<ModelKind, number>>;
  steps: number;
  batchSize: number;
  maxTrainPairs: number;
  testPairs: number[];
  testSequences: number;
  evalBatch: number;
  /** Test accuracy (mean over the in-range pair counts) also every `evalEvery` steps: the row's `curve`; 0 = only at the end. */
  evalEvery?: number;
  seeds: number[];
  /** Kinds run on the first N seeds only (slow or reference rows; stated in the notes). */
  seedsByKind?: Partial<Record<ModelKind, number>>;
}

const FULL: MqarConfig = {
  kinds: ['hope', 'transformer', 'deltanet', 'titans', 'linear-attention', 'hope-paper'],
  // Training sequences are at most 1 + 3 * 8 = 25 tokens <= the CMS period 32: one segment, full backprop.
  // Same block layout as the MAD runs (short causal conv of window 4 on every kind's mixer input: without it a
  // 1-block DeltaNet / Transformer cannot bind a value to the key before it, the previous null result).
  sizes: { dModel: 32, numHeads: 2, numBlocks: 1, chunkSize: 8, shortConv: 4, cmsLevels: [{ period: 32, learningRate: 0.01 }, { period: 0 }] },
  numKeys: 16,
  numValues: 16,
  // Budget calibrated 2026-12-06 (experiments/probes/mqar-calibrate.ts, seed 1, lr 3e-3, in-range test accuracy
  // every 250 steps up to 3000; docs/results/mad-calibration-2026-12-06.jsonl): DeltaNet 0.71 at 250, 0.99 at 500,
  // 0.998 at 1000 (plateau); the Transformer 0.75 at 250, 1.00 at 500. 1000 steps: both baselines at their plateau.
  learningRate: 3e-3,
  // HOPE at 1e-2: the better of 3e-3 / 1e-2 for it on seeds 1-2 (docs/results/hope-lr-probe-2026-12-06.jsonl); DeltaNet's better is 3e-3.
  learningRateByKind: { hope: 1e-2 },
  steps: 1000,
  batchSize: 16,
  maxTrainPairs: 8,
  testPairs: [2, 4, 8, 12],
  testSequences: 64,
  evalBatch: 64,
  evalEvery: 250,
  seeds: [1, 2, 3],
  // Reference rows on the first seed only (runtime): Titans, plain linear attention, HOPE with the 'paper' self-modifying Titans.
  seedsByKind: { titans: 1, 'linear-attention': 1, 'hope-paper': 1 },
};

const SMOKE: MqarConfig = {
  ...FULL,
  sizes: { ...FULL.sizes, dModel: 8 },
  numKeys: 6,
  numValues: 6,
  steps: 2,
  batchSize: 4,
  maxTrainPairs: 3,
  testPairs: [2, 4],
  testSequences: 8,
  evalBatch: 8,
  evalEvery: 0,
  seeds: [1],
  seedsByKind: {},
};

function shuffled(r: () => number, n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = randInt(r, 0, i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** One MQAR sequence with `pairs` pairs; labels at the query positions. */
export function mqarSequence(r: () => number, pairs: number, numKeys: number, numValues: number): { ids: number[]; labels: Array<{ pos: number; label: number }> } {
  if (pairs > numKeys || pairs > numValues) throw new Error(`mqar: pairs ${pairs} exceeds numKeys ${numKeys} / numValues ${numValues} (keys and values are drawn without replacement)`);
  const VAL0 = KEY0 + numKeys;
  const keys = shuffled(r, numKeys).slice(0, pairs);
  const vals = shuffled(r, numValues).slice(0, pairs);
  const ids = [BOS];
  keys.forEach((k, i) => ids.push(KEY0 + k, VAL0 + vals[i]));
  const labels: Array<{ pos: number; label: number }> = [];
  for (const i of shuffled(r, pairs)) {
    ids.push(KEY0 + keys[i]);
    labels.push({ pos: ids.length - 1, label: VAL0 + vals[i] });
  }
  return { ids, labels };
}

export const mqar: Experiment<MqarConfig> = {
  name: 'mqar',
  title: 'Multi-query associative recall at growing numbers of pairs (recall family of paper Table 4)',
  claim: 'MAD synthetic (Table 4): in-context recall, fuzzy recall, selective copy, memorisation, compression: Hope best. (MQAR is the issue\'s added recall probe; the paper reports no MQAR number.)',
  config: (size: SizeName) => (size === 'smoke' ? SMOKE : FULL),
  plot: { x: 'pairs', y: 'accuracy', color: 'kind', xType: 'quantitative', mark: 'line', title: 'MQAR accuracy per query vs number of key-value pairs (chance = 1/numValues)' },
  async run(opts: RunOpts): Promise<ExperimentResult> {
    const cfg = this.config(opts.smoke ? 'smoke' : 'full');
    const vocab = KEY0 + cfg.numKeys + cfg.numValues;
    const valueTokens = Array.from({ length: cfg.numValues }, (_, i) => KEY0 + cfg.numKeys + i);
    const rows: Row[] = [];
    for (const [si, seed] of cfg.seeds.map((s) => s + opts.seed - 1).entries()) {
      const tr = rng(seed * 15485863);
      const tests = cfg.testPairs.map((n) => ({ n, seqs: Array.from({ length: cfg.testSequences }, () => mqarSequence(tr, n, cfg.numKeys, cfg.numValues)) }));
      for (const kind of cfg.kinds) {
        if (si >= (cfg.seedsByKind?.[kind] ?? Infinity)) continue;
        const m = buildConvModel(kind, vocab, cfg.sizes, lrOf(cfg, kind), seed);
        const dr = rng(seed * 32452843); // same training sequences for every kind
        const accuracyAt = async (t: (typeof tests)[number]): Promise<number> => {
          let c = 0;
          let n = 0;
          for (let i = 0; i < t.seqs.length; i += cfg.evalBatch) {
            const r = await evalBatch(m, leftPad(t.seqs.slice(i, i + cfg.evalBatch), PAD), vocab, valueTokens);
            c += r.correct;
            n += r.total;
          }
          return c / n;
        };
        const inRangeTests = tests.filter((t) => t.n <= cfg.maxTrainPairs);
        const curve: string[] = [];
        let loss = NaN;
        let trainMs = 0;
        try {
          for (let step = 0; step < cfg.steps; step++) {
            const rowsB = Array.from({ length: cfg.batchSize }, () => mqarSequence(dr, randInt(dr, 1, cfg.maxTrainPairs), cfg.numKeys, cfg.numValues));
            const t0 = Date.now();
            loss = trainStep(m, leftPad(rowsB, PAD), vocab);
            trainMs += Date.now() - t0;
            if (!Number.isFinite(loss)) throw new Error(`mqar: ${kind} diverged at step ${step} (lower learningRate)`);
            if (cfg.evalEvery && (step + 1) % cfg.evalEvery === 0 && step + 1 < cfg.steps) {
              let a = 0;
              for (const t of inRangeTests) a += (await accuracyAt(t)) / inRangeTests.length;
              curve.push(`${step + 1}:${a.toFixed(3)}`);
              opts.log?.(`mqar ${kind} seed ${seed} step ${step + 1}/${cfg.steps}: loss ${loss.toFixed(3)}, in-range test accuracy ${a.toFixed(3)}`);
            }
          }
          const accs: number[] = [];
          for (const t of tests) accs.push(await accuracyAt(t));
          const inRangeMean = tests.reduce((a, t, i) => a + (t.n <= cfg.maxTrainPairs ? accs[i] / inRangeTests.length : 0), 0);
          curve.push(`${cfg.steps}:${inRangeMean.toFixed(3)}`);
          tests.forEach((t, i) => {
            const row: Row = { kind, pairs: t.n, inTrainRange: t.n <= cfg.maxTrainPairs, seed, params: m.params, steps: cfg.steps, lr: lrOf(cfg, kind), finalTrainLoss: +loss.toFixed(4), accuracy: +accs[i].toFixed(3), trainSeconds: +(trainMs / 1000).toFixed(1), curve: curve.join(' ') };
            rows.push(row);
            opts.log?.(`mqar ${kind} seed ${seed}: ${JSON.stringify(row)}`);
          });
        } finally {
          disposeModel(m);
        }
      }
    }
    const acc = (k: string, n: number): number => {
      const v = rows.filter((r) => r.kind === k && r.pairs === n).map((r) => Number(r.accuracy));
      return v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
    };
    const summary =
      `Accuracy per query (chance ${(1 / cfg.numValues).toFixed(3)}); trained on 1-${cfg.maxTrainPairs} pairs.\n\n` +
      `Reference 1/N: the accuracy of answering with a random value among the N present in the context (no key-value binding).\n\n` +
      `| pairs | ${cfg.kinds.join(' | ')} | 1/N |\n|---|${cfg.kinds.map(() => '---').join('|')}|---|\n` +
      cfg.testPairs.map((n) => `| ${n} | ${cfg.kinds.map((k) => acc(k, n).toFixed(2)).join(' | ')} | ${(1 / n).toFixed(2)} |`).join('\n');
    const best = (n: number): string => cfg.kinds.reduce((a, k) => (acc(k, n) > acc(a, n) ? k : a), cfg.kinds[0]);
    const inRange = cfg.testPairs.filter((n) => n <= cfg.maxTrainPairs);
    const hopeBest = inRange.every((n) => acc('hope', n) >= acc(best(n), n) - 1e-9);
    const chance = 1 / cfg.numValues;
    // Recall = clearly above 1/N (a value present in the context picked at random) at N >= 4 pairs.
    const recallers = cfg.kinds.filter((k) => inRange.some((n) => n >= 4 && acc(k, n) > 1.5 / n));
    const anyAboveChance = cfg.kinds.some((k) => inRange.some((n) => acc(k, n) > 2 * chance));
    const bestTxt = cfg.testPairs.map((n) => `${n}: ${best(n)} ${acc(best(n), n).toFixed(2)}`).join(', ');
    const hopeTxt = `hope ${inRange.map((n) => acc('hope', n).toFixed(2)).join('/')} at ${inRange.join('/')} pairs`;
    const verdict = !anyAboveChance
      ? `inconclusive: no model clearly above chance (${chance.toFixed(3)}) at this budget`
      : recallers.length === 0
        ? `inconclusive: no model does associative recall at this budget (accuracy ~1/N = picking a value present in the context); ${hopeTxt}; best per pairs: ${bestTxt}`
        : `${hopeBest ? 'hope best or tied' : 'hope not best'} within the training range; above 1.5/N: ${recallers.join(', ')}; best per pairs: ${bestTxt}${cfg.kinds.includes('deltanet') ? `; hope vs deltanet (mean over seeds) ${cfg.testPairs.map((n) => `${n}: ${acc('hope', n).toFixed(3)} vs ${acc('deltanet', n).toFixed(3)}`).join(', ')}` : ''}`;
    return {
      rows,
      columns: ['kind', 'pairs', 'inTrainRange', 'seed', 'params', 'steps', 'lr', 'finalTrainLoss', 'accuracy', 'trainSeconds', 'curve'],
      summary,
      notes: [
        'Sequence `BOS k1 v1 .. kN vN q1 .. qN`, the queries being the N keys in a random order; the value is predicted at each query position (loss only there); prediction = argmax over the value tokens. Left-padded with PAD in a batch.',
        `Models: ${cfg.sizes.numBlocks} block, width ${cfg.sizes.dModel}, ${cfg.sizes.numHeads} heads, chunk ${cfg.sizes.chunkSize}, short causal conv window ${cfg.sizes.shortConv} on every kind (as in the MAD runs), same embedding / norms / head for every kind; HOPE CMS levels [period ${cfg.sizes.cmsLevels?.[0].period}, static]. Adam lr ${cfg.learningRate}${Object.entries(cfg.learningRateByKind ?? {}).map(([k, v]) => ` (${k} ${v}: the better of 3e-3 and 1e-2 on seeds 1-2, docs/results/hope-lr-probe-2026-12-06.jsonl)`).join('')}, clip 1, ${cfg.steps} steps of ${cfg.batchSize} sequences (calibrated: the budget at which DeltaNet and the Transformer have reached their plateau, experiments/mqar.ts FULL comment), N uniform in 1-${cfg.maxTrainPairs}. The learning rate is the only per-model choice. Seeds ${cfg.seeds.join(', ')}${Object.entries(cfg.seedsByKind ?? {}).map(([k, n]) => `; ${k} on the first ${n} only (runtime)`).join('')}; the table gives the mean over a kind's seeds, the curve column the in-range test accuracy every ${cfg.evalEvery || 'n/a'} steps.`,
        'Evaluation: each sequence a fresh context read by NestedTrainer.memorize (in-context CMS updates, no outer step); CMS gradients come from the query losses only, and fire after the segment that holds them.',
      ],
      verdict,
    };
  },
};
