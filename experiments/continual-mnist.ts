/**
 * Class-incremental split MNIST (issue 7 item 6; paper claim "Hope forgets less than ICL and EWC"):
 * 5 tasks of 2 digits ({0,1}, {2,3}, ..., {8,9}) trained in sequence, one shared 10-way head, no task id
 * at test time. After each task i the accuracy on every task j's test digits is measured: the accuracy
 * matrix A[i][j]; average final accuracy = mean_j A[T-1][j]; average forgetting =
 * mean_{j < T-1} (max_{i < T-1} A[i][j] - A[T-1][j]) (Chaudhry et al. 2018).
 *
 * Every model is the same network, x [784] -> Dense(D, relu) -> CMS (k residual MLP levels D -> H -> D,
 * gelu, plugins/cms) -> Dense(10), run by NestedTrainer. What differs is who updates the hidden levels:
 * - `cms`: the stream of training examples IS the context (one sequence, B = 1; each example a token,
 *   fed in pieces of `batch` examples). Level l learns in context (Eq. 71) at its period C_l (in
 *   examples) with eta_l = lr / C_l, i.e. each boundary update is a step of size lr on the mean gradient
 *   of the level's chunk: the fastest level (C_0 = batch) moves like SGD, slower levels change C_l / C_0
 *   times less per example and integrate longer windows (the paper's continual-learning reading of
 *   CMS: fast levels adapt, slow levels keep). gradientMode 'stop': the hidden levels are updated only
 *   by their in-context rule. The input projection and the head are trained by the outer optimizer,
 *   SGD(lr) on the piece's mean loss, as in the baselines.
 * - `mlp`: the same levels with period 0 (frozen in context) and trained by the outer SGD(lr) every
 *   piece: a plain residual MLP, same parameters. (CMS with every level at period `batch` and eta
 *   lr / batch is exactly this; a test checks it.)
 * - `ewc`: `mlp` plus Elastic Weight Consolidation (Kirkpatrick et al. 2017), implemented here: after
 *   each task t the diagonal empirical Fisher F_t (mean over `fisherSamples` training examples of task t
 *   of the squared per-example gradient of log p(y|x), true labels) and the weights theta*_t are stored;
 *   the loss of later tasks adds lambda / 2 sum_t sum_i F_t,i (theta_i - theta*_t,i)^2, applied as the
 *   gradient lambda (sum_t F_t theta - sum_t F_t theta*_t) added before the SGD step. lambda is picked
 *   from `ewcLambdas` by the average final accuracy on held-out VALIDATION digits (not the test digits).
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedTensor } from '../core';
import { NlContinuumMemorySystem } from '../plugins/cms';
import type { CmsVariant } from '../plugins/cms';
import { NestedModel } from '../core';
import { tokenCrossEntropy } from '../plugins/scheduler';
import { NestedTrainer } from '../plugins/scheduler';
import { digitExamples, permutation, take, type DigitSplit, type MnistRanges } from './mnist-data';
import { rng, withSeededRandom } from './models';
import type { Experiment, ExperimentResult, Row, RunOpts, SizeName } from './types';

export interface ContinualMnistConfig {
  /** The tasks, in training order: digits of each. */
  tasks: number[][];
  /** Per-class example indices (see mnist-data.ts). */
  perClass: MnistRanges;
  epochsPerTask: number;
  /** Examples per piece (one outer SGD step) = the fastest CMS period. */
  batch: number;
  /** SGD learning rate on the piece's mean loss (per example: lr / batch). */
  learningRate: number;
  /** Width D of the input projection and of the CMS stream; hidden width H of every level. */
  dModel: number;
  hidden: number;
  /** The main CMS model: k levels, periods geometric from `batch` to `slowestPeriod` (multiples of batch). */
  levels: number;
  slowestPeriod: number;
  ewcLambdas: number[];
  fisherSamples: number;
  /** Sweeps of the CMS model: number of levels (at slowestPeriod) and slowest period (at `levels`). */
  sweepLevels: number[];
  sweepSlowest: number[];
  /** Also run the 'nested' CMS variant (Eq. 72) at the main k and P, levels ordered slowest first. */
  nested: boolean;
  seeds: number[];
}

const FULL: ContinualMnistConfig = {
  tasks: [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]],
  perClass: { train: 500, val: 50, testStart: 600, test: 200 },
  epochsPerTask: 2,
  batch: 10,
  learningRate: 0.1,
  dModel: 64,
  hidden: 64,
  levels: 3,
  slowestPeriod: 1000,
  ewcLambdas: [1, 10, 100, 1000],
  fisherSamples: 200,
  sweepLevels: [1, 2, 3, 4],
  sweepSlowest: [100, 1000, 10000],
  nested: true,
  seeds: [1, 2],
};

const SMOKE: ContinualMnistConfig = {
  ...FULL,
  tasks: [[0, 1], [2, 3], [4, 5]],
  perClass: { train: 10, val: 5, testStart: 600, test: 5 },
  epochsPerTask: 1,
  batch: 5,
  dModel: 8,
  hidden: 8,
  levels: 2,
  slowestPeriod: 10,
  ewcLambdas: [10, 100],
  fisherSamples: 8,
  sweepLevels: [],
  sweepSlowest: [],
  nested: true,
  seeds: [1],
};

export type ContinualMethod = 'cms' | 'mlp' | 'ewc';

/** One trained model of the experiment. */
export interface MethodSpec {
  run: string;
  group: 'main' | 'ewc-grid' | 'sweep-levels' | 'sweep-slowest' | 'variant';
  method: ContinualMethod;
  /** Periods of the levels in chain order (0 = frozen in context; mlp / ewc). */
  periods: number[];
  variant: CmsVariant;
  lambda: number | null;
}

/** k periods, geometric from `fast` to `slowest`, rounded to multiples of `fast` (k = 1: [fast]). */
export function geometricPeriods(k: number, fast: number, slowest: number): number[] {
  if (k === 1) return [fast];
  return Array.from({ length: k }, (_, l) => Math.max(fast, Math.round((fast * Math.pow(slowest / fast, l / (k - 1))) / fast) * fast));
}

/**
 * SGD with an EWC penalty: before each step, adds lambda * (Fsum * theta - FthetaSum) to every gradient,
 * the exact gradient of lambda / 2 sum_t F_t (theta - theta*_t)^2 summed over the consolidated tasks.
 */
export class EwcSgd extends tf.SGDOptimizer {
  readonly lambda: number;
  private fsum = new Map<string, tf.Tensor>();
  private fth = new Map<string, tf.Tensor>();

  constructor(learningRate: number, lambda: number) {
    super(learningRate);
    if (!(lambda >= 0) || !Number.isFinite(lambda)) throw new Error(`EwcSgd.lambda: must be a finite number >= 0, got ${lambda}`);
    this.lambda = lambda;
  }

  /** Tasks consolidated so far contribute F (by variable name) at the current weights of `vars`. */
  consolidate(vars: readonly tf.Variable[], fisher: ReadonlyMap<string, tf.Tensor>): void {
    for (const v of vars) {
      const f = fisher.get(v.name);
      if (!f) continue;
      const prevF = this.fsum.get(v.name);
      const prevT = this.fth.get(v.name);
      this.fsum.set(v.name, tf.tidy(() => (prevF ? prevF.add(f) : f.clone())));
      this.fth.set(v.name, tf.tidy(() => (prevT ? prevT.add(f.mul(v)) : f.mul(v))));
      tf.dispose([prevF ?? [], prevT ?? []]);
    }
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    if (this.fsum.size === 0 || this.lambda === 0) return super.applyGradients(variableGradients);
    const map: tf.NamedTensorMap = Array.isArray(variableGradients) ? Object.fromEntries(variableGradients.map((v) => [v.name, v.tensor])) : variableGradients;
    const withPenalty = tf.tidy(() => {
      const out: tf.NamedTensorMap = {};
      for (const [name, g] of Object.entries(map)) {
        const f = this.fsum.get(name);
        const v = tf.engine().registeredVariables[name];
        out[name] = f && v ? g.add(f.mul(v).sub(this.fth.get(name)!).mul(this.lambda)) : g.clone();
      }
      return out;
    });
    try {
      super.applyGradients(withPenalty);
    } finally {
      tf.dispose(Object.values(withPenalty));
    }
  }

  override dispose(): void {
    super.dispose();
    tf.dispose([...this.fsum.values(), ...this.fth.values()]);
    this.fsum.clear();
    this.fth.clear();
  }
}

export interface ContinualNet {
  nested: NestedModel;
  trainer: NestedTrainer;
  optimizer: tf.Optimizer;
  params: number;
}

/** The network of every method (see the file comment); weights seeded by `seed` (same for every method). */
export function buildContinualNet(spec: Pick<MethodSpec, 'method' | 'periods' | 'variant' | 'lambda'>, cfg: Pick<ContinualMnistConfig, 'dModel' | 'hidden' | 'learningRate'>, seed: number): ContinualNet {
  const nested = withSeededRandom(seed, () => {
    const proj = tf.layers.dense({ units: cfg.dModel, activation: 'relu', inputShape: [784] });
    const cms = new NlContinuumMemorySystem({
      levels: spec.periods.map((p) => ({ period: p, learningRate: p > 0 ? cfg.learningRate / p : 0, hiddenDim: cfg.hidden })),
      variant: spec.variant,
      activation: 'gelu',
      residual: true,
    });
    const head = tf.layers.dense({ units: 10 });
    const m = new NestedModel([proj, cms, head]);
    const probe = tf.zeros([1, 1, 784]);
    m.build(probe); // weights are created here, inside the seeded scope
    probe.dispose();
    return m;
  });
  const optimizer = spec.method === 'ewc' ? new EwcSgd(cfg.learningRate, spec.lambda ?? 0) : tf.train.sgd(cfg.learningRate);
  const trainer = new NestedTrainer(nested, { loss: tokenCrossEntropy, optimizer, gradientMode: 'stop', partialChunk: 'carry' });
  const params = nested.trainableVariables().reduce((a, v) => a + v.size, 0);
  return { nested, trainer, optimizer, params };
}

export function disposeContinualNet(n: ContinualNet): void {
  n.trainer.dispose();
  n.optimizer.dispose();
  for (const s of n.nested.stages) if (s.layer.built) for (const w of s.layer.weights) w.dispose(); // (stateful layers are never 'applied', so Layer.dispose refuses)
}

/** One piece of the stream: examples `idx` of `s` as a context piece [1, n, 784] / labels [1, n]. */
export function trainPiece(n: ContinualNet, s: DigitSplit, idx: readonly number[], newContext: boolean): number {
  const p = take(s, idx);
  const x = tf.tensor3d(p.x, [1, p.n, 784]);
  const y = tf.tensor2d(p.y, [1, p.n], 'int32');
  try {
    return n.trainer.train(x, y, { newContext }).loss;
  } finally {
    tf.dispose([x, y]);
  }
}

/**
 * Accuracy per split, read from the current memory (no update). One sync. Class-incremental: argmax over
 * all 10 digits. With `within` (the digits of each split), also task-incremental: argmax over that
 * split's digits only (the task id given at test time) -> `taskIL`.
 */
export async function accuracies(n: ContinualNet, splits: readonly DigitSplit[], within?: readonly number[][]): Promise<number[] & { taskIL?: number[] }> {
  const total = splits.reduce((a, s) => a + s.n, 0);
  const x = new Float32Array(total * 784);
  let o = 0;
  for (const s of splits) {
    x.set(s.x, o * 784);
    o += s.n;
  }
  const xt = tf.tensor3d(x, [1, total, 784]);
  const logits = n.trainer.predict(xt); // [1, N, 10]
  const lg = await logits.data(); // [N * 10]
  tf.dispose([xt, logits]);
  const out: number[] & { taskIL?: number[] } = [];
  const til: number[] = [];
  const argmaxOver = (row: number, digits: readonly number[]): number => digits.reduce((a, d) => (lg[row * 10 + d] > lg[row * 10 + a] ? d : a), digits[0]);
  const all = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  o = 0;
  splits.forEach((s, k) => {
    let c = 0;
    let ct = 0;
    for (let i = 0; i < s.n; i++) {
      if (argmaxOver(o + i, all) === s.y[i]) c++;
      if (within && argmaxOver(o + i, within[k]) === s.y[i]) ct++;
    }
    out.push(c / s.n);
    til.push(ct / s.n);
    o += s.n;
  });
  if (within) out.taskIL = til;
  return out;
}

/** Diagonal empirical Fisher: mean over examples of (d log p(y|x) / d theta)^2, per trainable variable (caller disposes). */
export function diagonalFisher(n: ContinualNet, s: DigitSplit, idx: readonly number[]): Map<string, tf.Tensor> {
  const vars = n.nested.trainableVariables();
  const acc = new Map<string, tf.Tensor>(vars.map((v) => [v.name, tf.zerosLike(v)]));
  for (const k of idx) {
    const x = tf.tensor3d(s.x.subarray(k * 784, (k + 1) * 784), [1, 1, 784]);
    const y = tf.tensor2d([s.y[k]], [1, 1], 'int32');
    tf.tidy(() => {
      const { grads, value } = tf.variableGrads(() => tokenCrossEntropy(n.nested.predict(x), y).sum() as tf.Scalar, vars);
      value.dispose();
      for (const v of vars) {
        const g = grads[v.name];
        if (!g) continue;
        const prev = acc.get(v.name)!;
        acc.set(v.name, tf.keep(prev.add(g.square())));
        prev.dispose();
      }
    });
    tf.dispose([x, y]);
  }
  for (const [name, t] of acc) {
    acc.set(name, tf.tidy(() => t.div(idx.length)));
    t.dispose();
  }
  return acc;
}

export interface ContinualRunResult {
  params: number;
  /** acc[i][j]: accuracy on task j's test digits after training task i (class-incremental: 10-way). */
  acc: number[][];
  /** The same, task-incremental: argmax over task j's two digits only. */
  taskAcc: number[][];
  /** Validation accuracy per task after the last task. */
  valFinal: number[];
  lastLoss: number;
  seconds: number;
  /** Task (1-based) during which the loss became non-finite (the run stopped there), or null. */
  divergedAtTask: number | null;
}

/** Trains one method over the task sequence; the data order is the same for every method (seeded). */
export async function runContinual(spec: MethodSpec, cfg: ContinualMnistConfig, data: { train: DigitSplit[]; val: DigitSplit[]; test: DigitSplit[] }, seed: number): Promise<ContinualRunResult> {
  const t0 = Date.now();
  const net = buildContinualNet(spec, cfg, seed);
  const order = rng(seed * 7919 + 17); // same stream for every method
  const acc: number[][] = [];
  const taskAcc: number[][] = [];
  let lastLoss = NaN;
  let first = true;
  try {
    for (let t = 0; t < cfg.tasks.length; t++) {
      const tr = data.train[t];
      for (let e = 0; e < cfg.epochsPerTask; e++) {
        const perm = permutation(order, tr.n);
        for (let b = 0; b + cfg.batch <= tr.n; b += cfg.batch) {
          lastLoss = trainPiece(net, tr, perm.slice(b, b + cfg.batch), first);
          first = false;
          if (!Number.isFinite(lastLoss)) return { params: net.params, acc, taskAcc, valFinal: [], lastLoss, seconds: (Date.now() - t0) / 1000, divergedAtTask: t + 1 };
        }
      }
      const a = await accuracies(net, data.test, cfg.tasks);
      acc.push([...a]);
      taskAcc.push(a.taskIL!);
      if (spec.method === 'ewc' && t < cfg.tasks.length - 1) {
        const idx = permutation(order, tr.n).slice(0, Math.min(cfg.fisherSamples, tr.n));
        const fisher = diagonalFisher(net, tr, idx);
        (net.optimizer as EwcSgd).consolidate(net.nested.trainableVariables(), fisher);
        tf.dispose([...fisher.values()]);
      }
    }
    const valFinal = await accuracies(net, data.val);
    return { params: net.params, acc, taskAcc, valFinal, lastLoss, seconds: (Date.now() - t0) / 1000, divergedAtTask: null };
  } finally {
    disposeContinualNet(net);
  }
}

export function averageAccuracy(acc: number[][]): number {
  const last = acc[acc.length - 1];
  return last.reduce((a, b) => a + b, 0) / last.length;
}

/** mean over j < T-1 of (max_{i < T-1} A[i][j] - A[T-1][j]); 0 with one task. */
export function averageForgetting(acc: number[][]): number {
  const T = acc.length;
  if (T < 2) return 0;
  let s = 0;
  for (let j = 0; j < T - 1; j++) {
    let best = -Infinity;
    for (let i = j; i < T - 1; i++) best = Math.max(best, acc[i][j]);
    s += best - acc[T - 1][j];
  }
  return s / (T - 1);
}

function specs(cfg: ContinualMnistConfig): { main: MethodSpec[]; grid: MethodSpec[]; extra: MethodSpec[] } {
  const k = cfg.levels;
  const frozen = Array.from({ length: k }, () => 0);
  const cmsSpec = (kk: number, P: number, group: MethodSpec['group'], variant: CmsVariant = 'sequential'): MethodSpec => {
    const p = geometricPeriods(kk, cfg.batch, P);
    const periods = variant === 'nested' ? [...p].reverse() : p; // nested: level l resets level l+1, so the slowest comes first
    return { run: `cms k${kk} P${Math.max(...p)}${variant === 'nested' ? ' nested' : ''}`, group, method: 'cms', periods, variant, lambda: null };
  };
  const main: MethodSpec[] = [
    { run: `mlp k${k}`, group: 'main', method: 'mlp', periods: frozen, variant: 'sequential', lambda: null },
    cmsSpec(k, cfg.slowestPeriod, 'main'),
  ];
  const grid = cfg.ewcLambdas.map((l): MethodSpec => ({ run: `ewc k${k} lambda ${l}`, group: 'ewc-grid', method: 'ewc', periods: frozen, variant: 'sequential', lambda: l }));
  const extra: MethodSpec[] = [
    ...cfg.sweepLevels.filter((kk) => kk !== k).map((kk) => cmsSpec(kk, cfg.slowestPeriod, 'sweep-levels')),
    ...cfg.sweepSlowest.filter((P) => P !== cfg.slowestPeriod).map((P) => cmsSpec(k, P, 'sweep-slowest')),
    ...(cfg.nested ? [cmsSpec(k, cfg.slowestPeriod, 'variant', 'nested')] : []),
  ];
  return { main, grid, extra };
}

export const continualMnist: Experiment<ContinualMnistConfig> = {
  name: 'continual-mnist',
  title: 'Class-incremental split MNIST: CMS levels vs a plain MLP vs EWC (accuracy matrix, forgetting)',
  claim: 'Continual learning (class-incremental): Hope / CMS forgets less than ICL and EWC.',
  config: (size: SizeName) => (size === 'smoke' ? SMOKE : FULL),
  plot: { x: 'afterTask', y: 'accuracy', color: 'evalTask', facet: 'run', xType: 'ordinal', mark: 'line', title: 'Split MNIST: accuracy on each task (color) after training task i (x), per model' },
  async run(opts: RunOpts): Promise<ExperimentResult> {
    const cfg = this.config(opts.smoke ? 'smoke' : 'full');
    const pc = cfg.perClass;
    const data = {
      train: cfg.tasks.map((d) => digitExamples(d, 0, pc.train)),
      val: cfg.tasks.map((d) => digitExamples(d, pc.train, pc.val)),
      test: cfg.tasks.map((d) => digitExamples(d, pc.testStart, pc.test)),
    };
    const { main, grid, extra } = specs(cfg);
    const rows: Row[] = [];
    interface Summary { spec: MethodSpec; seed: number; res: ContinualRunResult }
    const done: Summary[] = [];
    const diverged: string[] = [];
    const record = (spec: MethodSpec, seed: number, res: ContinualRunResult, selected: boolean): void => {
      if (res.divergedAtTask !== null) {
        diverged.push(`${spec.run} (seed ${seed}) diverged during task ${res.divergedAtTask}`);
        opts.log?.(`continual-mnist ${spec.run} seed ${seed}: diverged during task ${res.divergedAtTask}`);
        return;
      }
      done.push({ spec, seed, res });
      res.acc.forEach((row, i) =>
        row.forEach((a, j) =>
          rows.push({
            run: spec.run, group: spec.group, method: spec.method, selected, levels: spec.periods.length, periods: spec.periods.join('/'),
            lambda: spec.lambda, seed, params: res.params, afterTask: i + 1, evalTask: `${j + 1} (${cfg.tasks[j].join(',')})`, accuracy: +a.toFixed(3), taskIlAccuracy: +res.taskAcc[i][j].toFixed(3),
          }),
        ),
      );
      opts.log?.(`continual-mnist ${spec.run} seed ${seed}: final ${averageAccuracy(res.acc).toFixed(3)}, forgetting ${averageForgetting(res.acc).toFixed(3)}, val ${(res.valFinal.reduce((a, b) => a + b, 0) / res.valFinal.length).toFixed(3)}, ${res.seconds.toFixed(1)} s`);
    };
    const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
    const ewcPicked: Array<{ seed: number; lambda: number }> = [];
    for (const seed of cfg.seeds.map((s) => s + opts.seed - 1)) {
      for (const spec of main) record(spec, seed, await runContinual(spec, cfg, data, seed), true);
      let best: { spec: MethodSpec; res: ContinualRunResult; val: number } | null = null;
      const gridRes: Array<{ spec: MethodSpec; res: ContinualRunResult }> = [];
      for (const spec of grid) {
        const res = await runContinual(spec, cfg, data, seed);
        gridRes.push({ spec, res });
        if (res.divergedAtTask !== null) continue;
        const val = mean(res.valFinal);
        if (!best || val > best.val) best = { spec, res, val };
      }
      if (!best) throw new Error(`continual-mnist: every EWC lambda of ${cfg.ewcLambdas.join(', ')} diverged (seed ${seed}); add smaller values to ewcLambdas`);
      for (const g of gridRes) record(g.spec, seed, g.res, g.spec === best.spec);
      ewcPicked.push({ seed, lambda: best.spec.lambda! });
      for (const spec of extra) record(spec, seed, await runContinual(spec, cfg, data, seed), false);
    }
    // Summary per run label (mean over seeds).
    const labels = [...new Set(done.map((d) => d.spec.run))];
    const stat = (label: string): { spec: MethodSpec; params: number; final: number; forget: number; val: number; tFinal: number; tForget: number; acc: number[][]; secs: number } => {
      const ds = done.filter((d) => d.spec.run === label);
      const T = ds[0].res.acc.length;
      const acc = Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => mean(ds.map((d) => d.res.acc[i][j]))));
      return {
        spec: ds[0].spec, params: ds[0].res.params, acc, secs: mean(ds.map((d) => d.res.seconds)),
        final: mean(ds.map((d) => averageAccuracy(d.res.acc))), forget: mean(ds.map((d) => averageForgetting(d.res.acc))), val: mean(ds.map((d) => mean(d.res.valFinal))),
        tFinal: mean(ds.map((d) => averageAccuracy(d.res.taskAcc))), tForget: mean(ds.map((d) => averageForgetting(d.res.taskAcc))),
      };
    };
    const stats = labels.map(stat);
    const pickedLambda = ewcPicked[0].lambda;
    const ewcMain = stats.find((s) => s.spec.method === 'ewc' && s.spec.lambda === pickedLambda)!;
    const mlp = stats.find((s) => s.spec.run === main[0].run)!;
    const cms = stats.find((s) => s.spec.run === main[1].run)!;
    const f3 = (v: number): string => v.toFixed(3);
    const matrix = (s: ReturnType<typeof stat>): string =>
      `| after task | ${cfg.tasks.map((d, j) => `task ${j + 1} (${d.join(',')})`).join(' | ')} |\n|---|${cfg.tasks.map(() => '---').join('|')}|\n` +
      s.acc.map((r, i) => `| ${i + 1} | ${r.map(f3).join(' | ')} |`).join('\n');
    const summary = [
      `Average final accuracy (mean over tasks of the accuracy after the last task; chance 0.1, a model that only knows the last task: ${f3(1 / cfg.tasks.length)}) and average forgetting. EWC lambda picked on validation digits: ${ewcPicked.map((p) => `seed ${p.seed}: ${p.lambda}`).join(', ')}.`,
      '',
      '| run | group | periods (examples) | params | avg final accuracy | avg forgetting | val final accuracy | task-IL avg final accuracy | task-IL avg forgetting | seconds |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...stats.map((s) => `| ${s.spec.run}${s === ewcMain ? ' (selected)' : ''} | ${s.spec.group} | ${s.spec.periods.join('/')} | ${s.params} | ${f3(s.final)} | ${f3(s.forget)} | ${f3(s.val)} | ${f3(s.tFinal)} | ${f3(s.tForget)} | ${s.secs.toFixed(1)} |`),
      '',
      'Task-IL columns: the same models read task-incrementally (argmax over the two digits of the evaluated task, i.e. the task id is given at test time); training is unchanged.',
      '',
      `Accuracy matrix, ${mlp.spec.run}:`,
      '',
      matrix(mlp),
      '',
      `Accuracy matrix, ${cms.spec.run}:`,
      '',
      matrix(cms),
      '',
      `Accuracy matrix, ${ewcMain.spec.run}:`,
      '',
      matrix(ewcMain),
      ...(diverged.length ? ['', `Diverged (loss not finite; no rows): ${diverged.join('; ')}.`] : []),
    ].join('\n');
    const cmsBest = cms.forget < mlp.forget - 0.02 && cms.forget < ewcMain.forget - 0.02;
    const cmsSweep = stats.filter((s) => s.spec.method === 'cms');
    const bestCms = cmsSweep.reduce((a, s) => (s.final > a.final ? s : a), cmsSweep[0]);
    const verdict =
      `${cmsBest ? 'CMS forgets less than both baselines' : 'CMS does not forget less than both baselines'}: avg forgetting / final accuracy ` +
      `mlp ${f3(mlp.forget)} / ${f3(mlp.final)}, ewc (lambda ${pickedLambda}) ${f3(ewcMain.forget)} / ${f3(ewcMain.final)}, ${cms.spec.run} ${f3(cms.forget)} / ${f3(cms.final)}; ` +
      `best CMS config by final accuracy: ${bestCms.spec.run} (${f3(bestCms.final)}, forgetting ${f3(bestCms.forget)}); ` +
      `task-incremental reading, avg forgetting: mlp ${f3(mlp.tForget)}, ewc ${f3(ewcMain.tForget)}, cms ${f3(cms.tForget)}`;
    return {
      rows,
      columns: ['run', 'group', 'method', 'selected', 'levels', 'periods', 'lambda', 'seed', 'params', 'afterTask', 'evalTask', 'accuracy', 'taskIlAccuracy'],
      summary,
      notes: [
        `Data: the \`mnist\` package, per class indices 0-${pc.train - 1} train, ${pc.train}-${pc.train + pc.val - 1} validation (EWC lambda selection only), ${pc.testStart}-${pc.testStart + pc.test - 1} test. Tasks ${cfg.tasks.map((t) => `{${t.join(',')}}`).join(' -> ')}, ${cfg.epochsPerTask} epochs each, pieces of ${cfg.batch} examples in a seeded order that is the same for every model; class-incremental: one 10-way head, no task id, accuracy = argmax over all 10 digits.`,
        `Network (all models): Dense(784 -> ${cfg.dModel}, relu) -> CMS of k residual levels (${cfg.dModel} -> ${cfg.hidden} -> ${cfg.dModel}, gelu) -> Dense(10); same seeded initial weights for every model of a seed. SGD lr ${cfg.learningRate} on the mean loss of each piece (no tuning per model).`,
        `CMS (how the levels are used for a classifier): the training stream is one context (B = 1, each example a token); level l updates in context (Eq. 71) every C_l examples with eta_l = lr / C_l (a step of size lr on the chunk-mean gradient), so slower levels change less per example; the hidden levels are never touched by the outer optimizer (gradientMode 'stop'); projection and head: outer SGD. Periods: geometric from ${cfg.batch} to the slowest period P, rounded to multiples of ${cfg.batch}. Test accuracy is read from the current fast weights (NestedTrainer.predict: no update at test time). The 'nested' variant (Eq. 72) orders levels slowest first (level l re-initialises level l+1 at its boundaries).`,
        `EWC: implemented in experiments/continual-mnist.ts (EwcSgd): diagonal empirical Fisher from ${cfg.fisherSamples} training examples of each finished task (true labels), one quadratic penalty per finished task, lambda grid ${cfg.ewcLambdas.join(', ')} picked by final validation accuracy.`,
        'Reading: a class-incremental learner that retains nothing scores 1/T average final accuracy and forgetting near the old tasks\' peak accuracy. One seed per cell: differences of a few points are noise.',
      ],
      verdict,
    };
  },
};
