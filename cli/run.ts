/**
 * What `nl` does, as functions (the commander wiring is in nl.ts): build a run from a config, train
 * with progress / validation / atomic checkpoints / metrics, evaluate, memorize, generate.
 *
 * Checkpoint layout in --out DIR:
 *   DIR/ckpt-<step>/checkpoint.json + tensors.bin   NestedTrainer checkpoint (plugin scheduler), one atomic commit
 *   DIR/ckpt-<step>/tokenizer.json                   the BPE merges (data.tokenizer 'bpe' only), written before the above
 *   DIR/latest.json                                  {step, dir, config}: written atomically AFTER the checkpoint,
 *                                                    so an interrupted write leaves the previous checkpoint current
 *   DIR/metrics.jsonl, DIR/learning-curve.svg, DIR/learning-curve.png
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
import { ByteTokenizer, bitsPerByte, loadDataset, tokenizerFromJson, trainBatch, validationBatches, type CorpusSpec, type Dataset, type Tokenizer } from './data';

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
  /** The run's tokenizer; null for a new BPE run until datasetFor trains it on the training split. */
  tokenizer: Tokenizer | null;
}

/** The run's tokenizer (a BPE run gets its tokenizer from datasetFor or from its checkpoint). */
export function runTokenizer(r: Run): Tokenizer {
  if (!r.tokenizer) throw new Error("data.tokenizer 'bpe': the tokenizer is not trained yet (call datasetFor first, or load a checkpoint)");
  return r.tokenizer;
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

/**
 * Builds model + trainer from a validated config (block classes are checked against the runtime).
 * The weights are initialised from training.seed (LanguageModel option seed), so two new runs of the
 * same config are identical.
 */
export function createRun(raw: unknown, onProgress?: (e: ProgressEvent) => void): Run {
  const rt = nlRuntime();
  const config = validateRunConfig(raw, { knownClasses: rt.layers().keys() });
  const t = config.training;
  const lm = new LanguageModel(languageModelConfig(config), { seed: t.seed });
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
  return { config, lm, trainer, optimizer, step: 0, tokenizer: config.data.tokenizer === 'byte' ? new ByteTokenizer() : null };
}

export function disposeRun(r: Run): void {
  r.trainer.dispose();
  r.optimizer.dispose();
  r.lm.dispose();
}

/** The BPE merges inside each checkpoint directory (bpe runs only). */
export const TOKENIZER_FILE = 'tokenizer.json';

interface Latest {
  step: number;
  dir: string;
  config: RunConfig;
}

/** Writes DIR/ckpt-<step> then publishes it in DIR/latest.json (atomic); keeps the previous checkpoint. */
export async function saveRun(r: Run, out: string): Promise<string> {
  const name = `ckpt-${r.step}`;
  const dir = path.join(out, name);
  if (r.config.data.tokenizer === 'bpe') await writeFileAtomic(path.join(dir, TOKENIZER_FILE), JSON.stringify(runTokenizer(r)));
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
    if (r.config.data.tokenizer === 'bpe') {
      const tp = path.join(out, latest.dir, TOKENIZER_FILE);
      if (!fs.existsSync(tp)) throw new Error(`missing ${TOKENIZER_FILE} (a bpe run saves its merges with every checkpoint)`);
      const tok = tokenizerFromJson(JSON.parse(fs.readFileSync(tp, 'utf8')));
      if (tok.vocabSize !== r.config.model.vocabSize) throw new Error(`${TOKENIZER_FILE}: vocabSize ${tok.vocabSize} differs from model.vocabSize ${r.config.model.vocabSize}`);
      r.tokenizer = tok;
    }
    await loadTrainerCheckpoint(r.trainer, path.join(out, latest.dir));
  } catch (e) {
    disposeRun(r);
    throw new Error(`--checkpoint: cannot load '${path.join(out, latest.dir)}': ${(e as Error).message}`);
  }
  r.step = latest.step;
  return r;
}

/**
 * Validation over the fixed validation batches, each a fresh context with in-context learning (as in
 * training): bits per byte = total nats / (ln 2 * bytes of the scored target tokens), whatever the
 * tokenizer; perplexity per byte = 2^bpb. `tokens` / `bytes`: what was scored.
 */
export function evaluate(r: Run, ds: Dataset, batches: number): { bpb: number; perplexity: number; tokens: number; bytes: number } {
  const t = r.config.training;
  const vb = validationBatches(ds.validation, batches, t.batchSize, t.seqLength, ds.tokenizer.byteLengths);
  let nats = 0;
  let n = 0;
  let bytes = 0;
  for (const b of vb) {
    const res = r.trainer.memorize(b.inputs, b.targets, { newContext: true });
    const k = b.inputs.size;
    nats += res.loss * k; // res.loss: mean nats per target token
    n += k;
    bytes += b.targetBytes;
    tf.dispose([b.inputs, b.targets]);
  }
  r.trainer.resetMemory();
  const bpb = bitsPerByte(nats / n, bytes / n);
  return { bpb, perplexity: Math.pow(2, bpb), tokens: n, bytes };
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
  /** Write the learning curve at the end (vega-lite SVG, and PNG rendered from it with resvg). Default true. */
  plot?: boolean;
  /** Data parallelism (`--workers`, cli/parallel.ts): trains each batch over rank 0 (r.trainer) and the workers. */
  parallel?: { train(inputs: tf.Tensor, targets: tf.Tensor): Promise<{ loss: number }> };
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
    const b = trainBatch(ds.train, r.step, t.batchSize, t.seqLength, t.seed, ds.tokenizer.byteLengths);
    const ts = Date.now();
    const res = opts.parallel ? await opts.parallel.train(b.inputs, b.targets) : r.trainer.train(b.inputs, b.targets); // one piece = one new context
    const cms = r.trainer.levelClocks().reduce((a, c) => a + c.updatesFired, 0); // CMS level updates in this piece
    tf.dispose([b.inputs, b.targets]);
    r.step++;
    const row: MetricsRow = {
      step: r.step,
      loss: res.loss,
      bpb: bitsPerByte(res.loss, b.targetBytes / (t.batchSize * t.seqLength)),
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
  if (opts.plot ?? true) {
    const svg = await plotLearningCurve(metricsPath, path.join(opts.out, 'learning-curve.svg'));
    await svgToPng(svg, path.join(opts.out, 'learning-curve.png'));
  }
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
 * Renders an SVG file to PNG (atomic write) with resvg (@resvg/resvg-js: Rust, prebuilt per platform as
 * npm optional dependencies, no build step). Text uses the system fonts (sans-serif); on a machine
 * without fonts the labels are missing but the curves are drawn. White background, 2x scale.
 */
export async function svgToPng(svgPath: string, pngPath: string): Promise<string> {
  const { Resvg } = await import('@resvg/resvg-js');
  const svg = fs.readFileSync(svgPath, 'utf8');
  const resvg = new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, sansSerifFamily: 'DejaVu Sans', defaultFontFamily: 'DejaVu Sans' } });
  const png = resvg.render().asPng();
  await writeFileAtomic(pngPath, new Uint8Array(png.buffer, png.byteOffset, png.byteLength));
  return pngPath;
}

/**
 * Test-time learning on new text: bpb of each piece from a fresh memory ("before"), then the text is
 * read as one context with in-context updates (memorize), then bpb of the same pieces from the
 * memorized state ("after"). No outer step. The bytes are tokenized with the run's tokenizer; pieces
 * are seqLength tokens; bpb is per byte of the scored targets.
 */
export function memorizeText(r: Run, bytes: Uint8Array, seqLength: number): { before: number; after: number; tokens: number; bytes: number; pieces: number } {
  const tok = runTokenizer(r);
  const ids = tok.encodeBytes(bytes);
  const n = Math.floor((ids.length - 1) / seqLength);
  if (n < 1) throw new Error(`--data: too short for memorize: ${bytes.length} bytes = ${ids.length} tokens, need at least seqLength + 1 = ${seqLength + 1} tokens`);
  let scored = 0; // bytes of the target tokens of the n pieces
  for (let j = 1; j <= n * seqLength; j++) scored += tok.byteLengths[ids[j]];
  const bytesPerToken = scored / (n * seqLength);
  const piece = (i: number): { x: tf.Tensor2D; y: tf.Tensor2D } => {
    const x = Int32Array.from(ids.subarray(i * seqLength, (i + 1) * seqLength));
    const y = Int32Array.from(ids.subarray(i * seqLength + 1, (i + 1) * seqLength + 1));
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
  return { before: bitsPerByte(before / n, bytesPerToken), after: bitsPerByte(after / n, bytesPerToken), tokens: n * seqLength, bytes: scored, pieces: n };
}

/**
 * The run's data (the config's corpus, or `data`), tokenized with the run's tokenizer. A new BPE run
 * trains its tokenizer here on the training split of its corpus and keeps it (saved with every
 * checkpoint); a loaded run uses the checkpoint's merges, also on other data.
 */
export function datasetFor(r: Run, data?: CorpusSpec): Dataset {
  const d = r.config.data;
  const ds = loadDataset({ ...(data ?? { corpus: d.corpus, paths: d.paths }), validationFraction: d.validationFraction, tokenizer: d.tokenizer, vocabSize: d.vocabSize }, r.config.training.seqLength, r.tokenizer ?? undefined);
  r.tokenizer = ds.tokenizer;
  return ds;
}
