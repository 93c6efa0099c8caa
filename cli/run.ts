/**
 * What `nl` does, as functions (the commander wiring is in nl.ts): build a run from a config, train
 * with progress / validation / atomic checkpoints / metrics, evaluate, memorize, generate.
 *
 * Checkpoint layout in --out DIR:
 *   DIR/ckpt-<step>/checkpoint.json + tensors.bin   NestedTrainer checkpoint (plugin scheduler), one atomic commit
 *   DIR/latest.json                                  {step, dir, config}: written atomically AFTER the checkpoint,
 *                                                    so an interrupted write leaves the previous checkpoint current
 *   DIR/metrics.jsonl, DIR/learning-curve.svg
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from '../core/io';
import { LanguageModel } from '../plugins/hope/lm';
import { hopePlugin } from '../plugins/hope/plugin';
import { adamwOptimizer } from '../plugins/optimizers/factories';
import { loadTrainerCheckpoint, saveTrainerCheckpoint } from '../plugins/scheduler/checkpoint';
import { tokenCrossEntropy } from '../plugins/scheduler/losses';
import { NestedTrainer, type ProgressEvent } from '../plugins/scheduler/trainer';
import { builtinPlugins, createDefaultRuntime, type Runtime } from '../registry';
import { languageModelConfig, validateRunConfig, type RunConfig } from './config';
import { bitsPerByte, loadDataset, trainBatch, validationBatches, type CorpusSpec, type Dataset } from './data';

let runtime: Runtime | null = null;
/** The default runtime plus the hope plugin (registers every layer class for configs and checkpoints). */
export function nlRuntime(): Runtime {
  if (!runtime) runtime = createDefaultRuntime(builtinPlugins().some((p) => p.name === 'hope') ? [] : [hopePlugin]);
  return runtime;
}

export interface Run {
  config: RunConfig;
  lm: LanguageModel;
  trainer: NestedTrainer;
  /** The outer optimizer (owned by the run: disposeRun disposes its state). */
  optimizer: tf.Optimizer;
  step: number;
}

function makeOptimizer(c: RunConfig): tf.Optimizer {
  const t = c.training;
  switch (t.optimizer) {
    case 'adam':
      return tf.train.adam(t.learningRate);
    case 'sgd':
      return tf.train.sgd(t.learningRate);
    case 'adamw':
      return adamwOptimizer({ learningRate: t.learningRate, weightDecay: t.weightDecay });
  }
}

/** Builds model + trainer from a validated config (block classes are checked against the runtime). */
export function createRun(raw: unknown, onProgress?: (e: ProgressEvent) => void): Run {
  const rt = nlRuntime();
  const config = validateRunConfig(raw, { knownClasses: rt.layers().keys() });
  const lm = new LanguageModel(languageModelConfig(config));
  const t = config.training;
  const optimizer = makeOptimizer(config);
  const trainer = new NestedTrainer(lm.nested, {
    loss: tokenCrossEntropy,
    optimizer,
    clipNorm: t.clipNorm,
    gradientMode: t.gradientMode,
    partialChunk: t.partialChunk,
    ...(t.segmentLength ? { segmentLength: t.segmentLength } : {}),
    ...(onProgress ? { onProgress } : {}),
  });
  return { config, lm, trainer, optimizer, step: 0 };
}

export function disposeRun(r: Run): void {
  r.trainer.dispose();
  r.optimizer.dispose();
  r.lm.dispose();
}

interface Latest {
  step: number;
  dir: string;
  config: RunConfig;
}

/** Writes DIR/ckpt-<step> then publishes it in DIR/latest.json (atomic); keeps the previous checkpoint. */
export async function saveRun(r: Run, out: string): Promise<string> {
  const name = `ckpt-${r.step}`;
  const dir = path.join(out, name);
  await saveTrainerCheckpoint(r.trainer, dir);
  let prev: Latest | null = null;
  try {
    prev = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8')) as Latest;
  } catch {
    prev = null;
  }
  await writeFileAtomic(path.join(out, 'latest.json'), JSON.stringify({ step: r.step, dir: name, config: r.config } satisfies Latest, null, 1));
  // keep the current and the previous checkpoint only
  for (const d of fs.readdirSync(out)) {
    if (/^ckpt-\d+$/.test(d) && d !== name && d !== prev?.dir) fs.rmSync(path.join(out, d), { recursive: true, force: true });
  }
  return dir;
}

/** Loads DIR/latest.json and its checkpoint into a fresh run. A truncated or mismatched checkpoint is refused with the reason. */
export async function loadRun(out: string, onProgress?: (e: ProgressEvent) => void): Promise<Run> {
  const lp = path.join(out, 'latest.json');
  if (!fs.existsSync(lp)) throw new Error(`--checkpoint: no checkpoint in '${out}' (missing latest.json)`);
  const latest = JSON.parse(fs.readFileSync(lp, 'utf8')) as Latest;
  const r = createRun(latest.config, onProgress);
  try {
    await loadTrainerCheckpoint(r.trainer, path.join(out, latest.dir));
  } catch (e) {
    disposeRun(r);
    throw new Error(`--checkpoint: cannot load '${path.join(out, latest.dir)}': ${(e as Error).message}`);
  }
  r.step = latest.step;
  return r;
}

/** Mean validation loss (nats/byte) over the fixed validation batches, each a fresh context with in-context learning (as in training). */
export function evaluate(r: Run, ds: Dataset, batches: number): { bpb: number; perplexity: number; tokens: number } {
  const t = r.config.training;
  const vb = validationBatches(ds.validation, batches, t.batchSize, t.seqLength);
  let sum = 0;
  let n = 0;
  for (const b of vb) {
    const res = r.trainer.memorize(b.inputs, b.targets, { newContext: true });
    const k = b.inputs.size;
    sum += res.loss * k;
    n += k;
    tf.dispose([b.inputs, b.targets]);
  }
  r.trainer.resetMemory();
  const nats = sum / n;
  return { bpb: bitsPerByte(nats), perplexity: Math.exp(nats), tokens: n };
}

export interface MetricsRow {
  step: number;
  loss: number;
  bpb: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
  cmsUpdates: number;
  valBpb?: number;
}

export interface TrainOptions {
  steps: number;
  out: string;
  data?: CorpusSpec;
  /** Called after every step (progress bar). */
  onStep?: (row: MetricsRow, r: Run) => void;
  onValidation?: (step: number, bpb: number) => void;
  /** Checked after every step; true = save and stop (Ctrl-C). */
  shouldStop?: () => boolean;
  /** Write the SVG learning curve at the end (vega-lite). Default true. */
  plot?: boolean;
}

/** Trains `r` up to `opts.steps` total steps; returns the rows written. */
export async function train(r: Run, ds: Dataset, opts: TrainOptions): Promise<{ rows: MetricsRow[]; stopped: boolean; checkpoint: string | null }> {
  fs.mkdirSync(opts.out, { recursive: true });
  const t = r.config.training;
  const metricsPath = path.join(opts.out, 'metrics.jsonl');
  const rows: MetricsRow[] = [];
  const t0 = Date.now();
  let checkpoint: string | null = null;
  let stopped = false;
  let lastSaved = r.step;
  while (r.step < opts.steps) {
    const b = trainBatch(ds.train, r.step, t.batchSize, t.seqLength, t.seed);
    const ts = Date.now();
    const res = r.trainer.train(b.inputs, b.targets); // one piece = one new context
    const cms = r.trainer.levelClocks().reduce((a, c) => a + c.updatesFired, 0); // CMS level updates in this piece
    tf.dispose([b.inputs, b.targets]);
    r.step++;
    const row: MetricsRow = {
      step: r.step,
      loss: res.loss,
      bpb: bitsPerByte(res.loss),
      tokensPerSecond: (t.batchSize * t.seqLength) / Math.max(1e-3, (Date.now() - ts) / 1000),
      elapsedSeconds: (Date.now() - t0) / 1000,
      cmsUpdates: cms,
    };
    if (!Number.isFinite(res.loss)) throw new Error(`training diverged at step ${r.step}: loss ${res.loss} (lower training.learningRate?)`);
    if (r.step % t.evalEvery === 0 || r.step === opts.steps) {
      row.valBpb = evaluate(r, ds, t.evalBatches).bpb;
      opts.onValidation?.(r.step, row.valBpb);
    }
    rows.push(row);
    fs.appendFileSync(metricsPath, `${JSON.stringify(row)}\n`);
    opts.onStep?.(row, r);
    await new Promise((res) => setImmediate(res)); // let signal handlers (Ctrl-C) and the progress bar run
    stopped = opts.shouldStop?.() ?? false;
    if (stopped || r.step % t.checkpointEvery === 0 || r.step === opts.steps) {
      checkpoint = await saveRun(r, opts.out);
      lastSaved = r.step;
    }
    if (stopped) break;
  }
  if (lastSaved !== r.step) checkpoint = await saveRun(r, opts.out);
  if (opts.plot ?? true) await plotLearningCurve(metricsPath, path.join(opts.out, 'learning-curve.svg'));
  return { rows, stopped, checkpoint };
}

/** Learning curve (training and validation bits per byte vs step) as SVG with vega-lite. */
export async function plotLearningCurve(metricsPath: string, svgPath: string): Promise<string> {
  const rows = fs
    .readFileSync(metricsPath, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as MetricsRow);
  const values = rows.flatMap((r) => [{ step: r.step, bpb: r.bpb, series: 'train' }, ...(r.valBpb !== undefined ? [{ step: r.step, bpb: r.valBpb, series: 'validation' }] : [])]);
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const spec = vl.compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: 560,
    height: 300,
    title: 'Learning curve',
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'bpb', type: 'quantitative', title: 'bits per byte', scale: { zero: false } },
      color: { field: 'series', type: 'nominal' },
    },
  } as never).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  await writeFileAtomic(svgPath, svg);
  return svgPath;
}

/**
 * Test-time learning on new text: bpb of each piece from a fresh memory ("before"), then the text is
 * read as one context with in-context updates (memorize), then bpb of the same pieces from the
 * memorized state ("after"). No outer step.
 */
export function memorizeText(r: Run, bytes: Uint8Array, seqLength: number): { before: number; after: number; tokens: number; pieces: number } {
  const n = Math.floor((bytes.length - 1) / seqLength);
  if (n < 1) throw new Error(`--data: too short for memorize: ${bytes.length} bytes, need at least seqLength + 1 = ${seqLength + 1}`);
  const piece = (i: number): { x: tf.Tensor2D; y: tf.Tensor2D } => {
    const x = Int32Array.from(bytes.subarray(i * seqLength, (i + 1) * seqLength));
    const y = Int32Array.from(bytes.subarray(i * seqLength + 1, (i + 1) * seqLength + 1));
    return { x: tf.tensor2d(x, [1, seqLength], 'int32'), y: tf.tensor2d(y, [1, seqLength], 'int32') };
  };
  const ce = (logits: tf.Tensor, y: tf.Tensor): number => tf.tidy(() => tokenCrossEntropy(logits, y).mean().dataSync()[0]);
  let before = 0;
  let after = 0;
  r.trainer.resetMemory();
  for (let i = 0; i < n; i++) {
    const { x, y } = piece(i);
    const lg = r.trainer.predict(x); // fresh memory (no context open)
    before += ce(lg, y);
    tf.dispose([lg, x, y]);
  }
  for (let i = 0; i < n; i++) {
    const { x, y } = piece(i);
    r.trainer.memorize(x, y, { newContext: i === 0 });
    tf.dispose([x, y]);
  }
  for (let i = 0; i < n; i++) {
    const { x, y } = piece(i);
    const lg = r.trainer.predict(x); // from the memorized state
    after += ce(lg, y);
    tf.dispose([lg, x, y]);
  }
  r.trainer.resetMemory();
  return { before: bitsPerByte(before / n), after: bitsPerByte(after / n), tokens: n * seqLength, pieces: n };
}

export function datasetFor(r: Run, data?: CorpusSpec): Dataset {
  const d = r.config.data;
  return loadDataset({ ...(data ?? { corpus: d.corpus, paths: d.paths }), validationFraction: d.validationFraction }, r.config.training.seqLength);
}
