/**
 * Optimizers (issue 7 item 7; paper claim "M3 beats AdamW and Muon on ViT training loss", and the
 * Figure 4 toy "delta momentum reaches the minimum where momentum does not / faster"): M3 vs AdamW vs
 * Muon vs DMGD vs delta momentum (plugins/optimizers, each run as NlTransformOptimizer; M3 as printed in
 * Algorithm 1 plus its EMA variant m3Ema) on
 * 1. the MNIST MLP of plugins/optimizers/mnist.test.ts (784-32-10 tanh, 200 train / 50 test digits per
 *    class interleaved, batch 50, no shuffling, seeded initialisers): training-loss curve and test
 *    accuracy; learning rate per optimizer from the grid base x {1/3, 1, 3, 9}, picked by the mean training
 *    loss of the last epoch (training data only), every learning rate of the spec scaled together;
 * 2. hope-tiny (presets/hope-tiny.yaml, 49,960 parameters) on Moby Dick: training loss over a short fixed
 *    budget (same batches and initial weights for every optimizer), clip-norm 1; no grid (budget): each
 *    optimizer uses the learning rate it was picked with on MNIST;
 * 3. the Figure 4 toy psi(r, theta) = r^2 + k (r - theta + a sin(w r))^2 from (-3.5, 2) with the
 *    constants of plugins/optimizers/toy.test.ts (k 10, a 0.5, w 3, lr 0.01, alpha 0.9): log10 psi per
 *    step and steps to psi < 1e-4 for momentum (Eq. 33) and delta momentum (Eq. 49).
 */
import * as tf from '@tensorflow/tfjs';
import { NlTransformOptimizer, type TransformSpec } from '../core';
import { bitsPerByte, createLmRun, disposeLmRun, languageModelConfig, loadDataset, loadPreset, nlRuntime, trainBatch, validationBatches } from '../run';
import { assocMomentum } from '../plugins/optimizers';
import { deltaMomentum } from '../plugins/optimizers';
import { registerOptimizerTransforms } from '../plugins/optimizers';
import { tokenCrossEntropy } from '../plugins/scheduler';
import { NestedTrainer } from '../plugins/scheduler';
import { digitExamples } from './mnist-data';
import { withSeededRandom } from './models';
import type { Experiment, ExperimentResult, Row, RunOpts, SizeName } from './types';
import { type Toy64Optimizer, toyRun, toyRunFloat64 } from '../plugins/optimizers';

export interface OptimizersConfig {
  /** Optimizer label -> base spec (learning rates get multiplied by the grid). */
  optimizers: Record<string, TransformSpec>;
  lrMultipliers: number[];
  mnist: { trainPerClass: number; testPerClass: number; hidden: number; epochs: number; batchSize: number; curveEvery: number };
  hope: { preset: string; steps: number; batchSize: number; seqLength: number; clipNorm: number; curveEvery: number; valBatches: number } | null;
  toy: { k: number; a: number; w: number; learningRate: number; alpha: number; maxSteps: number; curveEvery: number; variants: Record<string, { kind: 'momentum' | 'delta'; keyNorm?: 'none' | 'frobenius'; beta?: number | 'lr^2' }> };
  seed: number;
}

const OPTIMIZERS: Record<string, TransformSpec> = {
  m3: { transform: 'm3', config: { learningRate: 0.001, frequency: 4, adamLearningRate: 0.003 } },
  // Not Algorithm 1: EMAs instead of sums (V bias-corrected), the plugin's 'ema' option, to see whether M3's
  // accumulating V (Adagrad-like shrinking steps) is what costs it.
  m3Ema: { transform: 'm3', config: { learningRate: 0.0003, momentum: 'ema', frequency: 4, adamLearningRate: 0.003 } },
  // Not Algorithm 1: sqrt(V) divides the momenta BEFORE Newton-Schulz (precondition 'beforeNs'), a scale-free step;
  // Algorithm 1's NS(M) / sqrt(V) scales like 1/|g| (plugins/optimizers/README.md).
  m3BeforeNs: { transform: 'm3', config: { learningRate: 0.01, frequency: 4, adamLearningRate: 0.003, precondition: 'beforeNs' } },
  adamw: { transform: 'adamw', config: { learningRate: 0.003, weightDecay: 0.01 } },
  muon: { transform: 'muon', config: { learningRate: 0.003 } },
  dmgd: { transform: 'dmgd', config: { learningRate: 0.1, innerLoss: 'dot', hidden: 8 } },
  deltaMomentum: { transform: 'deltaMomentum', config: { learningRate: 0.05, alpha: 0.9 } },
};

const TOY_VARIANTS: OptimizersConfig['toy']['variants'] = {
  momentum: { kind: 'momentum' },
  'delta momentum (normalised key, beta 1)': { kind: 'delta' },
  'delta momentum (beta 0.1)': { kind: 'delta', beta: 0.1 },
  'delta momentum (raw key, Eq. 49 as printed)': { kind: 'delta', keyNorm: 'none' },
  // key = the value momentum writes, lr g (Eq. 33 writes -lr g): with the raw gradient as key that is beta = lr^2
  'delta momentum (key = lr g, beta lr^2)': { kind: 'delta', keyNorm: 'none', beta: 'lr^2' },
};

const FULL: OptimizersConfig = {
  optimizers: OPTIMIZERS,
  lrMultipliers: [1 / 3, 1, 3, 9],
  mnist: { trainPerClass: 200, testPerClass: 50, hidden: 32, epochs: 3, batchSize: 50, curveEvery: 5 },
  hope: { preset: 'hope-tiny', steps: 40, batchSize: 4, seqLength: 64, clipNorm: 1, curveEvery: 4, valBatches: 2 },
  toy: { k: 10, a: 0.5, w: 3, learningRate: 0.01, alpha: 0.9, maxSteps: 2000, curveEvery: 20, variants: TOY_VARIANTS },
  seed: 1,
};

const SMOKE: OptimizersConfig = {
  ...FULL,
  lrMultipliers: [1, 3],
  mnist: { trainPerClass: 10, testPerClass: 5, hidden: 8, epochs: 1, batchSize: 20, curveEvery: 1 },
  hope: { preset: 'hope-tiny', steps: 1, batchSize: 1, seqLength: 16, clipNorm: 1, curveEvery: 1, valBatches: 1 },
  toy: { ...FULL.toy, maxSteps: 30, curveEvery: 10 },
};

/** The spec with every learning rate (learningRate, adamLearningRate) multiplied by m. */
export function scaleSpec(spec: TransformSpec, m: number): TransformSpec {
  const c = { ...(spec.config ?? {}) } as Record<string, unknown>;
  for (const k of ['learningRate', 'adamLearningRate']) if (typeof c[k] === 'number') c[k] = +((c[k] as number) * m).toPrecision(4);
  return { transform: spec.transform, config: c } as TransformSpec;
}

function lrOf(spec: TransformSpec): number {
  return Number((spec.config as Record<string, unknown>).learningRate);
}

/** MNIST subset interleaved by class (digit 0, 1, ..., 9, 0, 1, ...), as in mnist.test.ts. */
function mnistTensors(start: number, perClass: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const d = digitExamples([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], start, perClass); // grouped by class
  const n = 10 * perClass;
  const x = new Float32Array(n * 784);
  const y = new Float32Array(n * 10);
  for (let i = 0; i < perClass; i++) {
    for (let c = 0; c < 10; c++) {
      const src = c * perClass + i;
      const dst = i * 10 + c;
      x.set(d.x.subarray(src * 784, (src + 1) * 784), dst * 784);
      y[dst * 10 + c] = 1;
    }
  }
  return { x: tf.tensor2d(x, [n, 784]), y: tf.tensor2d(y, [n, 10]) };
}

export interface MnistRun {
  /** Training loss per batch. */
  losses: number[];
  testAccuracy: number;
  lastEpochLoss: number;
}

/** One MNIST MLP run (mnist.test.ts setup) with `spec`. */
export async function mnistRun(spec: TransformSpec, cfg: OptimizersConfig['mnist'], data: { train: { x: tf.Tensor2D; y: tf.Tensor2D }; test: { x: tf.Tensor2D; y: tf.Tensor2D } }): Promise<MnistRun> {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: cfg.hidden, inputShape: [784], activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  const opt = new NlTransformOptimizer(spec);
  try {
    model.compile({ optimizer: opt, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const losses: number[] = [];
    const h = await model.fit(data.train.x, data.train.y, {
      epochs: cfg.epochs, batchSize: cfg.batchSize, shuffle: false, verbose: 0,
      callbacks: { onBatchEnd: async (_b, logs) => void losses.push(Number(logs?.loss)) },
    });
    const ev = model.evaluate(data.test.x, data.test.y, { batchSize: data.test.x.shape[0] }) as tf.Scalar[];
    const acc = (await ev[1].data())[0];
    tf.dispose(ev);
    const hist = h.history.loss as number[];
    return { losses, testAccuracy: acc, lastEpochLoss: Number(hist[hist.length - 1]) };
  } finally {
    model.dispose();
    opt.dispose();
  }
}

export interface HopeRun {
  losses: number[];
  valBpb: number;
  params: number;
  secondsPerStep: number;
}

/** hope-tiny trained `steps` steps with `spec` (same seeded weights and batches for every spec). */
export function hopeRun(spec: TransformSpec, cfg: NonNullable<OptimizersConfig['hope']>, seed: number): HopeRun {
  const rt = nlRuntime();
  const c = loadPreset(cfg.preset, { knownClasses: rt.layers().keys() });
  const ds = loadDataset({ corpus: c.data.corpus, validationFraction: c.data.validationFraction }, cfg.seqLength);
  const run = createLmRun({
    model: languageModelConfig(c),
    optimizer: spec,
    seed,
    trainer: { loss: tokenCrossEntropy, clipNorm: cfg.clipNorm, gradientMode: c.training.gradientMode, partialChunk: c.training.partialChunk },
  });
  const { lm, trainer } = run;
  const t0 = Date.now();
  try {
    const losses: number[] = [];
    for (let s = 0; s < cfg.steps; s++) {
      const b = trainBatch(ds.train, s, cfg.batchSize, cfg.seqLength, seed);
      try {
        losses.push(trainer.train(b.inputs, b.targets).loss);
      } finally {
        tf.dispose([b.inputs, b.targets]);
      }
    }
    const secondsPerStep = (Date.now() - t0) / 1000 / cfg.steps;
    let sum = 0;
    let n = 0;
    for (const b of validationBatches(ds.validation, cfg.valBatches, cfg.batchSize, cfg.seqLength)) {
      const r = trainer.memorize(b.inputs, b.targets, { newContext: true });
      sum += r.loss * b.inputs.size;
      n += b.inputs.size;
      tf.dispose([b.inputs, b.targets]);
    }
    trainer.resetMemory();
    return { losses, valBpb: bitsPerByte(sum / n), params: lm.countParams(), secondsPerStep };
  } finally {
    disposeLmRun(run);
  }
}

/** Mean of consecutive windows of `every` values: [{step (last index + 1), value}]. */
function windows(v: number[], every: number): Array<{ step: number; value: number }> {
  const out: Array<{ step: number; value: number }> = [];
  for (let i = 0; i < v.length; i += every) {
    const w = v.slice(i, i + every);
    out.push({ step: i + w.length, value: w.reduce((a, b) => a + b, 0) / w.length });
  }
  return out;
}

export const optimizers: Experiment<OptimizersConfig> = {
  name: 'optimizers',
  title: 'Optimizers: M3 vs AdamW vs Muon vs DMGD vs delta momentum (MNIST MLP, hope-tiny, Figure 4 toy)',
  claim: 'M3 beats AdamW and Muon (ViT training loss); Figure 4: delta momentum reaches the toy minimum where momentum struggles.',
  config: (size: SizeName) => (size === 'smoke' ? SMOKE : FULL),
  plot: { x: 'step', y: 'value', color: 'optimizer', facet: 'part', xType: 'quantitative', mark: 'line', yScale: 'auto', title: 'Training loss (MNIST MLP, hope-tiny; nats) and log10 psi (Figure 4 toy) per step' },
  async run(opts: RunOpts): Promise<ExperimentResult> {
    const cfg = this.config(opts.smoke ? 'smoke' : 'full');
    registerOptimizerTransforms();
    const rows: Row[] = [];
    const f = (v: number, d = 3): string => v.toFixed(d);
    // 1. MNIST MLP with an lr grid.
    const data = { train: mnistTensors(0, cfg.mnist.trainPerClass), test: mnistTensors(cfg.mnist.trainPerClass, cfg.mnist.testPerClass) };
    const grid: Array<{ opt: string; lr: number; res: MnistRun; selected: boolean }> = [];
    const picked: Record<string, { m: number; spec: TransformSpec; res: MnistRun }> = {};
    try {
      for (const [name, base] of Object.entries(cfg.optimizers)) {
        for (const m of cfg.lrMultipliers) {
          const spec = scaleSpec(base, m);
          const res = await mnistRun(spec, cfg.mnist, data);
          grid.push({ opt: name, lr: lrOf(spec), res, selected: false });
          opts.log?.(`optimizers mnist ${name} lr ${lrOf(spec)}: last-epoch loss ${f(res.lastEpochLoss)}, test accuracy ${f(res.testAccuracy)}`);
          const ok = Number.isFinite(res.lastEpochLoss);
          if (ok && (!picked[name] || res.lastEpochLoss < picked[name].res.lastEpochLoss)) picked[name] = { m, spec, res };
        }
        if (!picked[name]) throw new Error(`optimizers: ${name} diverged at every learning rate of the grid`);
        grid.find((g) => g.opt === name && g.lr === lrOf(picked[name].spec))!.selected = true;
      }
    } finally {
      tf.dispose([data.train.x, data.train.y, data.test.x, data.test.y]);
    }
    for (const [name, p] of Object.entries(picked)) {
      for (const w of windows(p.res.losses, cfg.mnist.curveEvery)) {
        rows.push({ part: 'mnist-mlp', optimizer: name, learningRate: lrOf(p.spec), step: w.step, metric: 'train loss (nats, window mean)', value: +w.value.toFixed(4), testAccuracy: null, stepsToMinimum: null });
      }
      rows.push({ part: 'mnist-mlp', optimizer: name, learningRate: lrOf(p.spec), step: p.res.losses.length, metric: 'test accuracy', value: +p.res.testAccuracy.toFixed(3), testAccuracy: +p.res.testAccuracy.toFixed(3), stepsToMinimum: null });
    }
    // 2. hope-tiny on Moby Dick, the MNIST-picked learning rate per optimizer.
    const hope: Record<string, HopeRun> = {};
    if (cfg.hope) {
      for (const [name, p] of Object.entries(picked)) {
        const res = hopeRun(p.spec, cfg.hope, cfg.seed + opts.seed - 1);
        hope[name] = res;
        opts.log?.(`optimizers hope-tiny ${name} lr ${lrOf(p.spec)}: loss ${res.losses.map((l) => l.toFixed(2)).join(' ')}; val bpb ${f(res.valBpb)}; ${res.secondsPerStep.toFixed(2)} s/step`);
        for (const w of windows(res.losses.map((l) => (Number.isFinite(l) ? l : 10)), cfg.hope.curveEvery)) {
          rows.push({ part: 'hope-tiny', optimizer: name, learningRate: lrOf(p.spec), step: w.step, metric: 'train loss (nats, window mean)', value: +w.value.toFixed(4), testAccuracy: null, stepsToMinimum: null });
        }
      }
    }
    // 3. Figure 4 toy.
    const toy: Record<string, number> = {};
    const toy64: Record<string, number> = {}; // the same optimizers written out in float64 (toy.ts toyRunFloat64)
    for (const [label, v] of Object.entries(cfg.toy.variants)) {
      const lr = cfg.toy.learningRate;
      const beta = v.beta === 'lr^2' ? lr * lr : v.beta ?? 1;
      const t = v.kind === 'momentum'
        ? assocMomentum({ learningRate: lr, alpha: cfg.toy.alpha })
        : deltaMomentum({ learningRate: lr, alpha: cfg.toy.alpha, keyNorm: v.keyNorm ?? 'frobenius', beta });
      const r = toyRun(t, cfg.toy);
      toy[label] = r.steps;
      const o: Toy64Optimizer = v.kind === 'momentum' ? { kind: 'momentum', learningRate: lr, alpha: cfg.toy.alpha } : { kind: 'delta', learningRate: lr, alpha: cfg.toy.alpha, beta, keyNorm: v.keyNorm ?? 'frobenius' };
      toy64[label] = toyRunFloat64(o, cfg.toy).steps;
      opts.log?.(`optimizers toy ${label}: steps to psi < 1e-4: ${r.steps} (float64 reference ${toy64[label]})`);
      for (const c of r.curve) rows.push({ part: 'figure-4 toy', optimizer: label, learningRate: cfg.toy.learningRate, step: c.step, metric: 'log10 psi', value: +Math.log10(Math.max(c.psi, 1e-12)).toFixed(3), testAccuracy: null, stepsToMinimum: r.steps });
    }
    // Summary and verdict.
    const names = Object.keys(cfg.optimizers);
    const hopeFinal = (n: string): number => {
      const l = hope[n]?.losses ?? [];
      const tail = l.slice(-Math.max(1, Math.floor(l.length / 4)));
      return tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length);
    };
    const stepsTxt = (s: number): string => (s === -1 ? 'diverged' : s > cfg.toy.maxSteps ? `not reached in ${cfg.toy.maxSteps}` : String(s));
    const summary = [
      `MNIST MLP (${cfg.mnist.trainPerClass * 10} train / ${cfg.mnist.testPerClass * 10} test digits, ${cfg.mnist.epochs} epochs, batch ${cfg.mnist.batchSize}): learning-rate grid base x {${cfg.lrMultipliers.map((m) => +m.toFixed(3)).join(', ')}}, picked by last-epoch training loss (bold = picked).`,
      '',
      '| optimizer | learning rate | last-epoch train loss | test accuracy |',
      '|---|---|---|---|',
      ...grid.map((g) => `| ${g.opt} | ${g.selected ? `**${g.lr}**` : g.lr} | ${f(g.res.lastEpochLoss)} | ${f(g.res.testAccuracy)} |`),
      '',
      ...(cfg.hope
        ? [
            `hope-tiny on Moby Dick (${cfg.hope.steps} steps x ${cfg.hope.batchSize} x ${cfg.hope.seqLength} bytes, clip ${cfg.hope.clipNorm}, learning rate = the MNIST pick): mean training loss of the last quarter of the steps and validation bits per byte (${cfg.hope.valBatches} batches) after training. Uniform bytes: 8 bpb.`,
            '',
            '| optimizer | learning rate | train loss, last quarter (nats) | val bpb | s/step |',
            '|---|---|---|---|---|',
            ...names.map((n) => `| ${n} | ${lrOf(picked[n].spec)} | ${f(hopeFinal(n))} | ${f(hope[n].valBpb)} | ${hope[n].secondsPerStep.toFixed(2)} |`),
            '',
          ]
        : []),
      `Figure 4 toy (k ${cfg.toy.k}, a ${cfg.toy.a}, w ${cfg.toy.w}, lr ${cfg.toy.learningRate}, alpha ${cfg.toy.alpha}): steps to psi < 1e-4, with the transforms on ${tf.getBackend()} (float32) and written out in float64.`,
      '',
      '| optimizer | steps (transforms) | steps (float64) |',
      '|---|---|---|',
      ...Object.entries(toy).map(([k, s]) => `| ${k} | ${stepsTxt(s)} | ${stepsTxt(toy64[k])} |`),
    ].join('\n');
    const bestBy = (score: (n: string) => number): string => names.reduce((a, n) => (score(n) < score(a) ? n : a), names[0]);
    const mnistBest = bestBy((n) => picked[n].res.lastEpochLoss);
    const hopeBest = cfg.hope ? bestBy(hopeFinal) : null;
    const m3Wins = (score: (n: string) => number, m3 = 'm3'): boolean => score(m3) <= Math.min(score('adamw'), score('muon'));
    const hasEma = names.includes('m3Ema');
    const hasPre = names.includes('m3BeforeNs');
    const faster = (d: number, m: number): boolean => d > 0 && d <= cfg.toy.maxSteps && (m < 0 || m > cfg.toy.maxSteps || d < m);
    const mom = toy64.momentum;
    const del = toy64['delta momentum (normalised key, beta 1)'];
    const keyLr = toy64['delta momentum (key = lr g, beta lr^2)'];
    const raw = toy64['delta momentum (raw key, Eq. 49 as printed)'];
    const verdict =
      `M3 ${m3Wins((n) => picked[n].res.lastEpochLoss) ? 'beats' : 'does not beat'} AdamW and Muon on MNIST training loss (best: ${mnistBest}` +
      `${hasEma ? `; the EMA variant m3Ema ${m3Wins((n) => picked[n].res.lastEpochLoss, 'm3Ema') ? 'beats' : 'does not beat'} them` : ''}` +
      `${hasPre ? `; m3BeforeNs ${m3Wins((n) => picked[n].res.lastEpochLoss, 'm3BeforeNs') ? 'beats' : 'does not beat'} them` : ''}); ` +
      (cfg.hope ? `on hope-tiny training loss M3 ${m3Wins(hopeFinal) ? 'beats' : 'does not beat'} AdamW and Muon (best: ${hopeBest}${hasEma ? `; m3Ema ${m3Wins(hopeFinal, 'm3Ema') ? 'beats' : 'does not beat'} them` : ''}${hasPre ? `; m3BeforeNs ${m3Wins(hopeFinal, 'm3BeforeNs') ? 'beats' : 'does not beat'} them` : ''}); ` : '') +
      `Figure 4 toy (float64; the reading of Eq. 49 decides): with the key lr g delta momentum ${faster(keyLr, mom) ? 'reaches the minimum first' : 'does not reach the minimum first'} (${stepsTxt(keyLr)} vs momentum ${stepsTxt(mom)} steps); with the normalised key it ${faster(del, mom) ? 'is faster' : 'is slower'} (${stepsTxt(del)}); Eq. 49 as printed (raw key, erase 1): ${stepsTxt(raw)}`;
    return {
      rows,
      columns: ['part', 'optimizer', 'learningRate', 'step', 'metric', 'value', 'testAccuracy', 'stepsToMinimum'],
      summary,
      notes: [
        `Specs (base learning rates are those of plugins/optimizers/specs.test-data.ts, chosen there for stable training): ${Object.entries(cfg.optimizers).map(([k, s]) => `${k} ${JSON.stringify(s.config)}`).join('; ')}. The grid multiplies learningRate and adamLearningRate (M3's and Muon's AdamW fallback for rank < 2) together.`,
        'MNIST: the setup of plugins/optimizers/mnist.test.ts (784-32-10 tanh, seeded glorot initialisers, same data order); the curve is the training loss per batch, averaged over windows. Selection on training loss (the quantity the paper compares), so test accuracy is not used to pick.',
        cfg.hope ? `hope-tiny: presets/hope-tiny.yaml model, seeded weights (same for every optimizer), the same ${cfg.hope.steps} training batches (run/data trainBatch), NestedTrainer with the CMS levels learning in context; the paper's M3 claim is for ViT training at scale, this is a ${cfg.hope.steps}-step probe. No grid on hope-tiny (one run costs ~${cfg.hope.steps} x 1-2 s on this machine).` : 'hope-tiny: skipped.',
        'Figure 4 toy: the computation of plugins/optimizers/toy.test.ts (same constants, fixed before measuring), plus the weak-erase variant beta 0.1 from that README\'s exploratory grid and the reading key = lr g; rows hold log10 psi every few steps (transforms). Steps are also computed in float64 (toyRunFloat64, analytic gradient), which the verdict uses: float32 rounding moves the counts on this curved valley (wasm: momentum 147 vs 174 in float64 and on cpu).',
        'One seed: differences of a few hundredths in loss are noise.',
      ],
      verdict,
    };
  },
};
