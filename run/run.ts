/**
 * What `nlearn` does, as functions (the commander wiring is in nl.ts): build a run from a config, train
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
import { randomBytes } from 'node:crypto';
import { NODE_FS_OPS, writeFileAtomic, type AtomicFsOps } from '../core/io';
import { describeFsError, readJsonFile } from '../core/io/read';
import { LanguageModel } from '../plugins/hope';
import { loadTrainerCheckpoint, saveTrainerCheckpoint } from '../plugins/scheduler';
import { tokenCrossEntropy } from '../plugins/scheduler';
import { DivergenceError, NestedTrainer, type DivergenceInfo, type ProgressEvent } from '../plugins/scheduler';
import { languageModelConfig, validateRunConfig, type RunConfig } from './config';
import { createLmRun, nlRuntime, runOptimizer } from './recipe';
import { checkModelConfig } from './model-check';
import { ByteTokenizer, bitsPerByte, loadDataset, tokenizerFromJson, trainBatch, validationBatches, type CorpusSpec, type Dataset, type Tokenizer } from './data';

export { nlRuntime };

export interface Run {
  config: RunConfig;
  lm: LanguageModel;
  trainer: NestedTrainer;
  /** The outer optimizer (owned by the run: disposeRun disposes its state). */
  optimizer: tf.Optimizer;
  step: number;
  /** The run's tokenizer; null for a new BPE run until datasetFor trains it on the training split. */
  tokenizer: Tokenizer | null;
  /** Identifies the run in latest.json: pruning touches only checkpoints listed by this run. */
  runId: string;
  /** Loaded from a checkpoint: its config's data.paths are never read unless the caller names the data. */
  loaded: boolean;
}

/** The run's tokenizer (a BPE run gets its tokenizer from datasetFor or from its checkpoint). */
export function runTokenizer(r: Run): Tokenizer {
  if (!r.tokenizer) throw new Error("data.tokenizer 'bpe': the tokenizer is not trained yet (call datasetFor first, or load a checkpoint)");
  return r.tokenizer;
}

/**
 * Builds model + trainer from a validated config (block classes are checked against the runtime).
 * The weights are initialised from training.seed (LanguageModel option seed), so two new runs of the
 * same config are identical.
 */
export function createRun(raw: unknown, onProgress?: (e: ProgressEvent) => void, where = 'config'): Run {
  const rt = nlRuntime();
  const config = validateRunConfig(raw, { knownClasses: rt.layers().keys(), where });
  checkModelConfig(config, where); // memory estimate, unknown keys in block configs, chunk constraints: before any weight exists
  const t = config.training;
  const { lm, trainer, optimizer } = createLmRun(
    {
      model: languageModelConfig(config),
      optimizer: () => runOptimizer(t), // built after the model (nothing to free if a layer refuses its config)
      seed: t.seed,
      trainer: {
        loss: tokenCrossEntropy,
        clipNorm: t.clipNorm,
        gradientMode: t.gradientMode,
        partialChunk: t.partialChunk,
        ...(t.segmentLength ? { segmentLength: t.segmentLength } : {}),
        ...(onProgress ? { onProgress } : {}),
        divergence: { maxLoss: t.maxLoss ?? 3 * Math.log(config.model.vocabSize), maxGradNorm: t.maxGradNorm, onDivergence: t.onDivergence === 'skip' ? 'skip' : 'throw' },
      },
    },
    where,
  );
  return { config, lm, trainer, optimizer, step: 0, tokenizer: config.data.tokenizer === 'byte' ? new ByteTokenizer() : null, runId: randomBytes(8).toString('hex'), loaded: false };
}

export function disposeRun(r: Run): void {
  r.trainer.dispose();
  r.optimizer.dispose();
  r.lm.dispose();
}

/** The BPE merges inside each checkpoint directory (bpe runs only). */
export const TOKENIZER_FILE = 'tokenizer.json';

/** DIR/latest.json: the published checkpoint. */
interface Latest {
  step: number;
  /** 'ckpt-<step>', a folder directly inside the run directory. */
  dir: string;
  config: RunConfig;
  /** The run that wrote it (absent in files of older versions). */
  runId?: string;
  /** Checkpoint folders this run wrote that are still on disk (its prune manifest). */
  checkpoints?: string[];
}

export const LATEST_FILE = 'latest.json';
const MAX_LATEST_BYTES = 4 << 20;
const MAX_TOKENIZER_BYTES = 16 << 20;
const CKPT_NAME = /^ckpt-(0|[1-9]\d{0,14})$/;

/**
 * Reads and validates DIR/latest.json: known keys only, step an integer >= 0, dir exactly 'ckpt-<step>'
 * and a real folder directly inside DIR (no '..', absolute paths or symbolic links out of the run
 * directory). The config is validated by createRun. Errors name latest.json and the field.
 */
export function readLatest(out: string, what = '--checkpoint'): Latest & { path: string } {
  if (typeof out !== 'string' || out === '') throw new Error(`${what}: the path is empty`);
  const lp = path.join(out, LATEST_FILE);
  const ost = fs.statSync(out, { throwIfNoEntry: false });
  if (!ost) throw new Error(`${what}: no checkpoint: '${out}' does not exist (missing ${LATEST_FILE})`);
  if (!ost.isDirectory()) throw new Error(`${what}: '${out}' is not a run directory (a file; expected a folder with ${LATEST_FILE})`);
  if (!fs.lstatSync(lp, { throwIfNoEntry: false })) throw new Error(`${what}: no checkpoint in '${out}' (missing ${LATEST_FILE})`);
  const j = readJsonFile(lp, { maxBytes: MAX_LATEST_BYTES, label: lp }) as Record<string, unknown>;
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error(`${lp}: must be a JSON object {step, dir, config}`);
  for (const k of Object.keys(j)) if (!['step', 'dir', 'config', 'runId', 'checkpoints'].includes(k)) throw new Error(`${lp}: unknown key '${k}'`);
  if (typeof j.step !== 'number' || !Number.isSafeInteger(j.step) || j.step < 0) throw new Error(`${lp}: step must be an integer >= 0, got ${JSON.stringify(j.step)}`);
  if (j.dir !== `ckpt-${j.step}`) throw new Error(`${lp}: dir must be 'ckpt-${j.step}' (the checkpoint of step ${j.step}, inside the run directory), got ${JSON.stringify(j.dir)}`);
  if (typeof j.config !== 'object' || j.config === null || Array.isArray(j.config)) throw new Error(`${lp}: config must be an object, got ${JSON.stringify(j.config)}`);
  if (j.runId !== undefined && (typeof j.runId !== 'string' || !/^[0-9a-f]{1,64}$/.test(j.runId))) throw new Error(`${lp}: runId must be a hex string, got ${JSON.stringify(j.runId)}`);
  if (j.checkpoints !== undefined && (!Array.isArray(j.checkpoints) || j.checkpoints.length > 1000 || !j.checkpoints.every((c) => typeof c === 'string' && CKPT_NAME.test(c)))) {
    throw new Error(`${lp}: checkpoints must be a list of 'ckpt-<step>' names, got ${JSON.stringify(j.checkpoints)?.slice(0, 80)}`);
  }
  const cdir = path.join(out, j.dir);
  const cst = fs.lstatSync(cdir, { throwIfNoEntry: false });
  if (!cst) throw new Error(`${lp}: dir '${j.dir}' does not exist in '${out}'`);
  if (cst.isSymbolicLink()) throw new Error(`${lp}: dir '${j.dir}' is a symbolic link; a checkpoint must be a folder inside the run directory`);
  if (!cst.isDirectory()) throw new Error(`${lp}: dir '${j.dir}' is not a folder`);
  if (path.dirname(fs.realpathSync(cdir)) !== fs.realpathSync(out)) throw new Error(`${lp}: dir '${j.dir}' resolves outside the run directory`);
  return { ...(j as unknown as Latest), path: lp };
}

/** Removes the atomic writers' leftover temp / backup files (`.<name>.<pid>-<hex>.tmp|bak`, from a killed save) in `dir`. */
export function removeStaleTemps(dir: string): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const n of names) {
    if (/^\..+\.\d+-[0-9a-f]{12}\.(tmp|bak)$/.test(n)) {
      fs.rmSync(path.join(dir, n), { force: true });
      removed.push(n);
    }
  }
  return removed;
}

export interface SaveRunOptions {
  /** Fault injection (tests): called after every file-system step of the save with a label ('rename tensors.bin', ...). */
  onStep?: (label: string) => void;
}

/** File-system primitives of the atomic writes, each followed by opts.onStep(label). */
function hookedOps(onStep: ((label: string) => void) | undefined): Partial<AtomicFsOps> | undefined {
  if (!onStep) return undefined;
  const b = (f: string): string => path.basename(f).replace(/\.\d+-[0-9a-f]{12}\.(tmp|bak)$/, '.$1').replace(/^\./, '');
  return {
    writeNewFile: async (f, c) => (await NODE_FS_OPS.writeNewFile(f, c), onStep(`write ${b(f)}`)),
    rename: async (x, y) => (await NODE_FS_OPS.rename(x, y), onStep(`rename ${b(x)} -> ${b(y)}`)),
    link: async (x, y) => (await NODE_FS_OPS.link(x, y), onStep(`link ${b(y)}`)),
    unlink: async (f) => (await NODE_FS_OPS.unlink(f), onStep(`unlink ${b(f)}`)),
    syncDir: async (d) => (await NODE_FS_OPS.syncDir(d), onStep(`sync ${path.basename(d)}/`)),
  };
}

/**
 * Writes DIR/ckpt-<step> (tokenizer first, then the trainer checkpoint: one atomic commit), prunes the
 * checkpoints this run wrote earlier (its manifest in latest.json) except the previous one, then
 * publishes the new one in DIR/latest.json (atomic). Folders this run did not write are never touched.
 */
export async function saveRun(r: Run, out: string, opts: SaveRunOptions = {}): Promise<string> {
  const name = `ckpt-${r.step}`;
  const dir = path.join(out, name);
  const fsOps = hookedOps(opts.onStep);
  const aopts = fsOps ? { fsOps } : {};
  removeStaleTemps(out);
  removeStaleTemps(dir);
  let prev: (Latest & { path: string }) | null = null;
  try {
    prev = readLatest(out);
  } catch {
    prev = null; // none, or unreadable: replaced below, nothing of it pruned
  }
  const mine = prev && prev.runId === r.runId ? prev : null;
  if (r.config.data.tokenizer === 'bpe') await writeFileAtomic(path.join(dir, TOKENIZER_FILE), JSON.stringify(runTokenizer(r)), aopts);
  await saveTrainerCheckpoint(r.trainer, dir, fsOps ? { fsOps } : {});
  // keep the new and the previous checkpoint; remove the older ones this run wrote (never anything else)
  const keep = [...new Set([...(mine && mine.dir !== name ? [mine.dir] : []), name])];
  for (const d of mine?.checkpoints ?? []) {
    if (keep.includes(d) || !CKPT_NAME.test(d)) continue;
    const p = path.join(out, d);
    if (fs.lstatSync(p, { throwIfNoEntry: false })?.isDirectory()) {
      fs.rmSync(p, { recursive: true, force: true });
      opts.onStep?.(`prune ${d}`);
    }
  }
  const latest: Latest = { step: r.step, dir: name, config: r.config, runId: r.runId, checkpoints: keep };
  await writeFileAtomic(path.join(out, LATEST_FILE), JSON.stringify(latest, null, 1), aopts);
  return dir;
}

/**
 * Where a checkpoint argument points: a run directory (its latest checkpoint, DIR/latest.json) or one of
 * its checkpoint folders DIR/ckpt-<step> (the run's config from DIR/latest.json). Anything else is
 * refused with the accepted forms.
 */
export function resolveCheckpoint(p: string, what = '--checkpoint'): { out: string; dir: string; step: number; latest: Latest & { path: string } } {
  if (typeof p !== 'string' || p === '') throw new Error(`${what}: the path is empty`);
  const norm = path.normalize(p).replace(/[\\/]+$/, '') || p;
  const base = path.basename(norm);
  const m = CKPT_NAME.exec(base);
  if (m && !fs.existsSync(path.join(norm, LATEST_FILE))) {
    const out = path.dirname(norm);
    const cst = fs.lstatSync(norm, { throwIfNoEntry: false });
    if (!cst) throw new Error(`${what}: '${p}' does not exist`);
    if (!cst.isDirectory()) throw new Error(`${what}: '${p}' is not a folder (expected a run directory DIR, or one of its checkpoints DIR/ckpt-<step>)`);
    if (!fs.existsSync(path.join(out, LATEST_FILE))) {
      throw new Error(`${what}: '${p}' is a checkpoint folder but its run directory '${out}' has no ${LATEST_FILE} (the run's config); give DIR or DIR/ckpt-<step> of a train --out directory DIR`);
    }
    return { out, dir: base, step: Number(m[1]), latest: readLatest(out, what) };
  }
  const st = fs.statSync(norm, { throwIfNoEntry: false });
  if (st?.isDirectory() && !fs.existsSync(path.join(norm, LATEST_FILE)) && fs.existsSync(path.join(norm, 'checkpoint.json'))) {
    throw new Error(`${what}: '${p}' holds a checkpoint but is not named ckpt-<step> inside a run directory; give the run directory DIR (train --out) or DIR/ckpt-<step>`);
  }
  try {
    const latest = readLatest(norm, what);
    return { out: norm, dir: latest.dir, step: latest.step, latest };
  } catch (e) {
    if (st?.isDirectory() && !fs.existsSync(path.join(norm, LATEST_FILE))) throw new Error(`${(e as Error).message}; give a run directory DIR (train --out) or one of its checkpoints DIR/ckpt-<step>`);
    throw e;
  }
}

/**
 * Loads a checkpoint into a fresh run: `p` is a run directory (DIR/latest.json and the checkpoint it
 * names) or DIR/ckpt-<step> (that checkpoint, with the run's config from DIR/latest.json). A truncated,
 * damaged or mismatched checkpoint, or a latest.json pointing outside DIR, is refused with the reason
 * (file and field).
 */
export async function loadRun(p: string, onProgress?: (e: ProgressEvent) => void, what = '--checkpoint'): Promise<Run> {
  const { out, dir, step, latest } = resolveCheckpoint(p, what);
  const r = createRun(latest.config, onProgress, `${latest.path} config`);
  const cdir = path.join(out, dir);
  try {
    if (r.config.data.tokenizer === 'bpe') {
      const tp = path.join(cdir, TOKENIZER_FILE);
      if (!fs.lstatSync(tp, { throwIfNoEntry: false })) throw new Error(`missing ${TOKENIZER_FILE} (a bpe run saves its merges with every checkpoint)`);
      const tok = tokenizerFromJson(readJsonFile(tp, { maxBytes: MAX_TOKENIZER_BYTES, label: tp }), tp);
      if (tok.vocabSize !== r.config.model.vocabSize) throw new Error(`${tp}: vocabSize ${tok.vocabSize} differs from model.vocabSize ${r.config.model.vocabSize}`);
      r.tokenizer = tok;
    }
    await loadTrainerCheckpoint(r.trainer, cdir);
  } catch (e) {
    disposeRun(r);
    throw new Error(`${what}: cannot load '${cdir}' into the model of ${latest.path}: ${(e as Error).message}`);
  }
  r.step = step;
  r.loaded = true;
  if (latest.runId) r.runId = latest.runId;
  return r;
}

/**
 * Validation batches (of the run's batchSize x seqLength) that cover the whole validation split:
 * floor(windows / batchSize) batches of non-overlapping seqLength windows spread evenly over it (at
 * least 1). What is left out: fewer than batchSize + 1 windows' worth of tokens.
 */
export function validationBatchCount(r: Run, ds: Dataset): number {
  const t = r.config.training;
  const windows = Math.floor((ds.validation.length - 1) / t.seqLength);
  return Math.max(1, Math.floor(windows / t.batchSize));
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
  /** The divergence guard skipped this batch (training.onDivergence 'skip'): what it found. */
  skipped?: string;
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
  /** Fault injection (tests): see SaveRunOptions.onStep. */
  onSaveStep?: (label: string) => void;
  /** Data parallelism (`--workers`, run/parallel.ts): trains each batch over rank 0 (r.trainer) and the workers. */
  parallel?: { train(inputs: tf.Tensor, targets: tf.Tensor): Promise<{ loss: number }> };
}

/** Trains `r` up to `opts.steps` total steps; returns the rows written. */
export async function train(r: Run, ds: Dataset, opts: TrainOptions): Promise<{ rows: MetricsRow[]; stopped: boolean; checkpoint: string | null }> {
  prepareOut(opts.out);
  const t = r.config.training;
  const metricsPath = path.join(opts.out, 'metrics.jsonl');
  await truncateMetrics(metricsPath, r.step); // a resumed run rewrites the steps after its checkpoint: no duplicate rows
  for (const d of fs.readdirSync(opts.out)) if (CKPT_NAME.test(d)) removeStaleTemps(path.join(opts.out, d));
  const rows: MetricsRow[] = [];
  const t0 = Date.now();
  let checkpoint: string | null = null;
  let stopped = false;
  let lastSaved = r.step;
  const saveOpts: SaveRunOptions = opts.onSaveStep ? { onStep: opts.onSaveStep } : {};
  while (r.step < opts.steps) {
    const b = trainBatch(ds.train, r.step, t.batchSize, t.seqLength, t.seed, ds.tokenizer.byteLengths);
    const ts = Date.now();
    let res: { loss: number; skipped?: DivergenceInfo };
    try {
      res = opts.parallel ? await opts.parallel.train(b.inputs, b.targets) : r.trainer.train(b.inputs, b.targets); // one piece = one new context
    } catch (e) {
      tf.dispose([b.inputs, b.targets]);
      // nothing of this step is saved: the last good checkpoint stays latest
      const last = `ckpt-${lastSaved}`;
      const kept = lastSaved > 0 && fs.existsSync(path.join(opts.out, last)) ? `; ${path.join(opts.out, last)} stays the latest checkpoint` : '; no checkpoint was written';
      if (e instanceof DivergenceError) throw new Error(`${e.message}${kept} (lower training.learningRate, or set training.onDivergence: skip)`, { cause: e });
      throw new Error(`training step ${r.step + 1} failed: ${(e as Error)?.message ?? e}${kept}`, { cause: e });
    }
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
    if (res.skipped) row.skipped = `${res.skipped.kind} (${res.skipped.value}) at ${res.skipped.where}`;
    else if (!Number.isFinite(res.loss)) throw new Error(`training diverged at step ${r.step}: loss ${res.loss} (lower training.learningRate?)`);
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
      checkpoint = await saveRun(r, opts.out, saveOpts);
      lastSaved = r.step;
    }
    if (stopped) break;
  }
  if (lastSaved !== r.step) checkpoint = await saveRun(r, opts.out, saveOpts);
  if (opts.plot ?? true) {
    const svg = await plotLearningCurve(metricsPath, path.join(opts.out, 'learning-curve.svg'));
    await svgToPng(svg, path.join(opts.out, 'learning-curve.png'));
  }
  return { rows, stopped, checkpoint };
}

/** Files and folders `nlearn train` writes in a run directory (what --force moves aside). */
export function isRunFile(name: string): boolean {
  return name === LATEST_FILE || name === 'metrics.jsonl' || name === 'learning-curve.svg' || name === 'learning-curve.png' || CKPT_NAME.test(name) || /^\..+\.\d+-[0-9a-f]{12}\.(tmp|bak)$/.test(name);
}

/** The entries of `out` (sorted; [] when it does not exist). An error names --out when it is not a readable folder. */
export function outEntries(out: string): string[] {
  if (typeof out !== 'string' || out === '') throw new Error('--out: the path is empty');
  const st = fs.statSync(out, { throwIfNoEntry: false });
  if (!st) return [];
  if (!st.isDirectory()) throw new Error(`--out: '${out}' is not a folder`);
  try {
    return fs.readdirSync(out).sort();
  } catch (e) {
    throw new Error(`--out: cannot read '${out}': ${describeFsError(e)}`);
  }
}

/**
 * A fresh run must not mix with what is in --out (metrics appended, latest.json repointed, checkpoints
 * pruned): refuses a non-empty `out` unless `force`. Nothing is changed here (see moveRunAside).
 */
export function checkFreshOut(out: string, force: boolean): void {
  const names = outEntries(out);
  if (names.length === 0 || force) return;
  const shown = names.slice(0, 4).join(', ') + (names.length > 4 ? `, ... (${names.length} entries)` : '');
  throw new Error(
    `--out: '${out}' is not empty (${shown}); continue the run there with --resume, or start a fresh run there with --force ` +
      `(moves the files of the previous run into '${path.join(out, 'replaced-<date>')}', deletes nothing), or give another --out`,
  );
}

/**
 * --force: moves the files a previous `nl train` wrote in `out` (latest.json, metrics.jsonl, the learning
 * curve, ckpt-<step> folders, temp files of a killed save) into a new folder `out/replaced-<date>/`, one
 * rename each; deletes nothing and leaves every other entry where it is. Returns where they went (null
 * when there was nothing to move) and what was left in place.
 */
export function moveRunAside(out: string, now = new Date()): { dir: string | null; moved: string[]; kept: string[] } {
  const names = outEntries(out);
  const moved = names.filter(isRunFile);
  const kept = names.filter((n) => !isRunFile(n));
  if (moved.length === 0) return { dir: null, moved, kept };
  const stamp = now.toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
  let dir = path.join(out, `replaced-${stamp}`);
  for (let i = 2; fs.existsSync(dir); i++) dir = path.join(out, `replaced-${stamp}-${i}`);
  fs.mkdirSync(dir);
  for (const n of moved) fs.renameSync(path.join(out, n), path.join(dir, n));
  return { dir, moved, kept };
}

/** Field paths where two JSON values differ ('model.dModel', 'training.batchSize', ...), at most `max`. */
export function configDifferences(a: unknown, b: unknown, max = 8, at = ''): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, p: string): void => {
    if (out.length >= max) return;
    if (x !== null && y !== null && typeof x === 'object' && typeof y === 'object' && Array.isArray(x) === Array.isArray(y)) {
      if (Array.isArray(x) && Array.isArray(y) && x.length !== y.length) {
        out.push(p || '(root)');
        return;
      }
      const keys = [...new Set([...Object.keys(x as object), ...Object.keys(y as object)])].sort();
      for (const k of keys) walk((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k], Array.isArray(x) ? `${p}[${k}]` : p ? `${p}.${k}` : k);
      return;
    }
    if (JSON.stringify(x) !== JSON.stringify(y)) out.push(p || '(root)');
  };
  walk(a, b, at);
  return out;
}

/** Creates the run directory; an error names --out (a file in the way, a read-only or missing parent). */
function prepareOut(out: string): void {
  if (typeof out !== 'string' || out === '') throw new Error('--out: the path is empty');
  const st = fs.statSync(out, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw new Error(`--out: '${out}' is not a folder`);
  try {
    fs.mkdirSync(out, { recursive: true });
    fs.accessSync(out, fs.constants.W_OK);
  } catch (e) {
    throw new Error(`--out: cannot write to '${out}': ${describeFsError(e)}`);
  }
}

/** Keeps the rows of metrics.jsonl with step <= `step` (a resumed run continues after its checkpoint). */
async function truncateMetrics(file: string, step: number): Promise<void> {
  if (!fs.existsSync(file)) return;
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim());
  const keep = lines.filter((l) => {
    try {
      const s = (JSON.parse(l) as MetricsRow).step;
      return typeof s === 'number' && s <= step;
    } catch {
      return false;
    }
  });
  if (keep.length !== lines.length) await writeFileAtomic(file, keep.map((l) => `${l}\n`).join(''));
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
 * are seqLength tokens (the tokens after the last whole piece are not used); a text shorter than
 * seqLength + 1 tokens (a short fact) is one piece of all its tokens. The last piece is memorized with
 * `flush`: every in-context level's pending partial period is applied when the text ends, so a text shorter
 * than a CMS period still updates that level (`levelUpdates`: level updates fired while reading the text).
 * bpb is per byte of the scored targets.
 */
export function memorizeText(r: Run, bytes: Uint8Array, seqLength: number): { before: number; after: number; tokens: number; bytes: number; pieces: number; levelUpdates: number } {
  const tok = runTokenizer(r);
  const ids = tok.encodeBytes(bytes);
  if (ids.length < 2) throw new Error(`--data: too short for memorize: ${bytes.length} byte${bytes.length === 1 ? '' : 's'} = ${ids.length} token${ids.length === 1 ? '' : 's'}; need at least 2 tokens (one to read, one to predict)`);
  const n = Math.max(1, Math.floor((ids.length - 1) / seqLength));
  const len = Math.min(seqLength, ids.length - 1); // tokens per piece
  let scored = 0; // bytes of the target tokens of the n pieces
  for (let j = 1; j <= n * len; j++) scored += tok.byteLengths[ids[j]];
  const bytesPerToken = scored / (n * len);
  const piece = (i: number): { x: tf.Tensor2D; y: tf.Tensor2D } => {
    const x = Int32Array.from(ids.subarray(i * len, (i + 1) * len));
    const y = Int32Array.from(ids.subarray(i * len + 1, (i + 1) * len + 1));
    return { x: tf.tensor2d(x, [1, len], 'int32'), y: tf.tensor2d(y, [1, len], 'int32') };
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
    r.trainer.memorize(x, y, { newContext: i === 0, flush: i === n - 1 }); // the text ends: pending partial periods are applied
    tf.dispose([x, y]);
  }
  const levelUpdates = r.trainer.levelClocks().reduce((a, c) => a + c.updatesFired, 0);
  for (let i = 0; i < n; i++) {
    const { x, y } = piece(i);
    const lg = r.trainer.predict(x); // from the memorized state
    after += ce(lg, y);
    tf.dispose([lg, x, y]);
  }
  r.trainer.resetMemory();
  return { before: bitsPerByte(before / n, bytesPerToken), after: bitsPerByte(after / n, bytesPerToken), tokens: n * len, bytes: scored, pieces: n, levelUpdates };
}

/**
 * The run's data (the config's corpus, or `data`), tokenized with the run's tokenizer. A new BPE run
 * trains its tokenizer here on the training split of its corpus and keeps it (saved with every
 * checkpoint); a loaded run uses the checkpoint's merges, also on other data.
 */
export function datasetFor(r: Run, data?: CorpusSpec): Dataset {
  const d = r.config.data;
  if (!data && r.loaded && d.corpus === 'files') {
    throw new Error(`--data: this run's checkpoint config reads data.paths (${(d.paths ?? []).join(', ')}); name the data with --data (paths stored in a checkpoint are never read unless you give them)`);
  }
  const ds = loadDataset({ encoding: d.encoding, ...(data ?? { corpus: d.corpus, paths: d.paths }), validationFraction: d.validationFraction, tokenizer: d.tokenizer, vocabSize: d.vocabSize }, r.config.training.seqLength, r.tokenizer ?? undefined);
  r.tokenizer = ds.tokenizer;
  return ds;
}
