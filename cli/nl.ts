#!/usr/bin/env node
/**
 * `nlearn` (also `nested-learning`; from a source checkout `npm run nl -- <command>`): train, evaluate,
 * generate, memorize (test-time learning) and check the setup, from a preset or a JSON/YAML config
 * (run/config.ts). Backend: --backend or NL_BACKEND (wasm default).
 *
 * Start-up: only commander and Node built-ins load with the program; tfjs, the run library and the
 * experiments load inside the action of the command that needs them, so `--help` and `--version` are fast.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { MAX_DATA_BYTES, PRESET_NAMES } from '../run/constants';
import type { RunConfig } from '../run/config';
import type { CorpusSpec, Tokenizer } from '../run/data';
import type { Run } from '../run/run';
import { registerExp } from './exp';

/** Loaded on first use (not at start-up). */
const lazy = {
  tf: (): typeof import('@tensorflow/tfjs') => require('@tensorflow/tfjs') as typeof import('@tensorflow/tfjs'),
  run: (): typeof import('../run/run') => require('../run/run') as typeof import('../run/run'),
  config: (): typeof import('../run/config') => require('../run/config') as typeof import('../run/config'),
  data: (): typeof import('../run/data') => require('../run/data') as typeof import('../run/data'),
  parallel: (): typeof import('../run/parallel') => require('../run/parallel') as typeof import('../run/parallel'),
  backend: (): typeof import('../core/backend') => require('../core/backend') as typeof import('../core/backend'),
};

/** The package version (package.json next to cli/ in the source tree, two levels up from dist/cli/). */
export function packageVersion(): string {
  const file = [path.join(__dirname, '..', 'package.json'), path.join(__dirname, '..', '..', 'package.json')].find((f) => fs.existsSync(f));
  if (!file) throw new Error(`package.json not found next to ${__dirname}`);
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
}

const intArg = (name: string, max = 1e9) => (v: string): number => {
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${name} must be an integer in [1, ${max}]`);
  return n;
};
/** An integer >= 0 (no silent rounding of 2.5). */
const countArg = (name: string, max: number) => (v: string): number => {
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new InvalidArgumentError(`${name} must be an integer in [0, ${max}]`);
  return n;
};
const numArg = (name: string, max: number) => (v: string): number => {
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n) || n < 0 || n > max) throw new InvalidArgumentError(`${name} must be a number in [0, ${max}]`);
  return n;
};

/** --data: moby-dick | sotu | comma-separated paths (none of them empty). */
function dataSpec(data: string | undefined): CorpusSpec | undefined {
  if (data === undefined) return undefined;
  if (data === 'moby-dick' || data === 'sotu') return { corpus: data };
  const paths = data.split(',');
  if (paths.some((p) => p.trim() === '')) throw new Error(`--data: ${data === '' ? 'is empty' : `has an empty path in '${data}'`} (give moby-dick, sotu, or comma-separated files/folders)`);
  return { corpus: 'files', paths };
}

async function backend(opts: { backend?: string }, quiet = false): Promise<void> {
  const info = await lazy.backend().selectBackend(opts.backend ?? process.env.NL_BACKEND ?? 'wasm');
  if (!quiet) console.error(`backend: ${info.active} (${info.reason})`);
}

function loadConfig(opts: { preset?: string; config?: string }): RunConfig {
  const { loadPreset, loadRunConfig } = lazy.config();
  const known = lazy.run().nlRuntime().layers().keys();
  if (opts.config !== undefined) return loadRunConfig(opts.config, { knownClasses: known });
  return loadPreset(opts.preset ?? 'hope-tiny', { knownClasses: known });
}

/** Streams generated tokens as UTF-8 text (a multi-byte character split across tokens is held until complete). */
function tokenWriter(tok: Tokenizer): { onToken: (id: number) => void; end: () => void } {
  const dec = new TextDecoder('utf-8');
  return { onToken: (id) => process.stdout.write(dec.decode(tok.tokenBytes(id), { stream: true })), end: () => process.stdout.write(dec.decode()) };
}

function fmtEta(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${Math.round(s % 60)}s` : `${Math.round(s)}s`;
}

/** The one line `nlearn` prints for an error (no stack trace). */
export function cliErrorLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^at .*(:\d+:\d+\)?|\(native\))$/.test(l)) // never a stack trace
    .join('; ');
}

/** The command's name (package.json "bin": `nlearn`, also `nested-learning`; coreutils owns `nl`). */
export const CLI_NAME = 'nlearn';

/** `train`: fresh run, --resume or --force; progress bar, Ctrl-C saves a checkpoint. */
function addTrainCommand(cmd: Command, be: () => { backend?: string }): void {
  cmd
    .command('train')
    .description('train a model (progress, validation bpb, atomic checkpoints, metrics.jsonl, learning-curve.svg + .png)')
    .addOption(new Option('--preset <name>', 'preset').choices([...PRESET_NAMES]))
    .option('--config <file>', 'JSON or YAML run config')
    .option('--data <src>', "moby-dick | sotu | comma-separated text files/folders (overrides the config's data)")
    .option('--steps <n>', 'total training steps (overrides training.steps)', intArg('--steps', 1e9))
    .option('--out <dir>', 'run directory (must be empty or new, unless --resume or --force)', 'runs/latest')
    .option('--resume', "continue the run in --out from its latest checkpoint, with the checkpoint's config")
    .option('--force', 'start a fresh run in a non-empty --out: the files of the run there are first moved into --out/replaced-<date>/ (nothing is deleted)')
    .option('--no-plot', 'skip the learning curve (SVG and PNG)')
    .option('--sample <n>', 'tokens to generate at the end (bytes with the byte tokenizer)', intArg('--sample', 1e6))
    .option('--workers <n>', 'data-parallel workers, this thread included, each a backend instance training a slice of the batch (default: NL_WORKERS, else all cores; 1 = none)', intArg('--workers'))
    .action((o: TrainOpts) => trainAction(o, be));
}

/** The options of `train`, as commander parses them. */
interface TrainOpts {
  preset?: string;
  config?: string;
  data?: string;
  steps?: number;
  out: string;
  resume?: boolean;
  force?: boolean;
  plot: boolean;
  sample?: number;
  workers?: number;
}

type RunLib = typeof import('../run/run');
type Dataset = ReturnType<RunLib['datasetFor']>;
type WorkerPool = Awaited<ReturnType<typeof import('../run/parallel')['startRunWorkers']>>;

/** `train`: the run (resumed or new), its data and workers, then the training loop with progress. */
async function trainAction(o: TrainOpts, be: () => { backend?: string }): Promise<void> {
  if (o.resume && o.force) throw new Error('give --resume (continue the run in --out) or --force (start a fresh run there), not both');
  if (o.preset && o.config) throw new Error('give --preset or --config, not both');
  const R = lazy.run();
  if (!o.resume) R.checkFreshOut(o.out, !!o.force); // before the backend starts or a weight exists
  await backend(be());
  const r = o.resume ? await resumeRun(R, o) : R.createRun(loadConfig(o));
  if (!r) return;
  const { ds, dp, workers } = await startDataAndWorkers(R, r, o);
  if (o.force) moveAsideReport(R, o.out);
  if (dp) console.error(`data parallel: ${workers} workers (this thread + ${workers - 1} worker thread${workers > 2 ? 's' : ''}), each batch split by sequence`);
  await trainWithProgress(R, r, ds, dp, o);
}

/** --resume: the run in --out with its checkpoint's config (a differing --preset/--config is reported); null when it is already at --steps. */
async function resumeRun(R: RunLib, o: TrainOpts): Promise<Run | null> {
  const r = await R.loadRun(o.out, undefined, '--out');
  const steps = o.steps ?? r.config.training.steps;
  console.error(`resumed ${o.out} at step ${r.step} with the config in its checkpoint (${path.join(o.out, R.LATEST_FILE)})`);
  if (o.preset || o.config) {
    const flag = o.config ? `--config ${o.config}` : `--preset ${o.preset}`;
    let diff: string[];
    try {
      diff = R.configDifferences(r.config, loadConfig(o));
    } catch (e) {
      R.disposeRun(r);
      throw e;
    }
    if (diff.length) console.error(`warning: ${flag} is ignored with --resume: the run continues with its checkpoint's config, which differs in ${diff.join(', ')} (to train that config, start a fresh run: another --out, or --force)`);
    else console.error(`${flag}: the same config as the checkpoint's`);
  }
  if (r.step >= steps) {
    const ckpt = path.join(o.out, `ckpt-${r.step}`);
    console.log(r.step === steps ? `nothing to do: run already at step ${r.step} of ${steps} (${ckpt}); give --steps N > ${steps} to train further` : `nothing to do: run already at step ${r.step}, past --steps ${steps} (${ckpt})`);
    R.disposeRun(r);
    return null;
  }
  return r;
}

/** Starts the data-parallel workers (they start while the data loads) and loads the dataset; on an error nothing stays allocated. */
async function startDataAndWorkers(R: RunLib, r: Run, o: TrainOpts): Promise<{ ds: Dataset; dp: WorkerPool | null; workers: number }> {
  const tf = lazy.tf();
  const { defaultWorkers, startRunWorkers } = lazy.parallel();
  const workers = Math.min(o.workers ?? defaultWorkers(tf.getBackend()), r.config.training.batchSize);
  const pool = workers > 1 ? startRunWorkers(r, workers, tf.getBackend()) : null; // the worker threads start while the data loads
  let ds: Dataset;
  try {
    ds = R.datasetFor(r, dataSpec(o.data));
  } catch (e) {
    await pool?.then((p) => p.close(), () => {});
    R.disposeRun(r); // nothing of a refused run stays allocated
    throw e;
  }
  const dp = pool ? await pool : null;
  return { ds, dp, workers };
}

/** --force: moves the previous run's files aside and says what moved and what stayed. */
function moveAsideReport(R: RunLib, out: string): void {
  const m = R.moveRunAside(out);
  if (m.dir) console.error(`--force: moved the previous run's ${m.moved.length} entr${m.moved.length === 1 ? 'y' : 'ies'} (${m.moved.join(', ')}) into ${m.dir}`);
  if (m.kept.length) console.error(`--force: left in ${out}: ${m.kept.join(', ')} (not written by ${CLI_NAME} train)`);
}

/** The training loop with a progress bar; Ctrl-C / SIGTERM finish the step and save; the summary line, then --sample. Disposes the run. */
async function trainWithProgress(R: RunLib, r: Run, ds: Dataset, dp: WorkerPool | null, o: TrainOpts): Promise<void> {
  const steps = o.steps ?? r.config.training.steps;
  const tpb = r.config.training.batchSize * r.config.training.seqLength;
  const tokInfo = ds.tokenizer.kind === 'byte' ? '' : ` = ${ds.train.length} / ${ds.validation.length} ${ds.tokenizer.kind} tokens (${(ds.trainBytes / ds.train.length).toFixed(2)} bytes/token)`;
  console.error(`${r.config.name ?? 'model'}: ${r.lm.countParams()} parameters; data ${ds.source}: ${ds.trainBytes} train / ${ds.validationBytes} validation bytes${tokInfo}`);
  const { SingleBar } = require('cli-progress') as typeof import('cli-progress');
  const bar = new SingleBar({
    format: 'step {value}/{total} | {tps} tok/s | loss {loss} ({bpb} bpb) | val {val} bpb | CMS updates {cms} | ETA {eta_s2}',
    hideCursor: true,
  });
  bar.start(steps, r.step, { tps: '-', loss: '-', bpb: '-', val: '-', cms: 0, eta_s2: '?' });
  let stop = false;
  const onSigint = (sig: string): void => {
    stop = true;
    console.error(`\n${sig === 'SIGTERM' ? 'SIGTERM' : 'Ctrl-C'}: saving a checkpoint after this step ...`);
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint); // like Ctrl-C: finish the step, save, exit
  let tpsAvg = 0;
  let val = '-';
  let cmsTotal = 0;
  try {
    const res = await R.train(r, ds, {
      steps,
      out: o.out,
      plot: o.plot,
      shouldStop: () => stop,
      ...(dp ? { parallel: dp } : {}),
      onValidation: (step, bpb) => {
        val = bpb.toFixed(3);
        if (!process.stderr.isTTY) console.error(`step ${step}: validation ${val} bpb`);
      },
      onStep: (row) => {
        tpsAvg = tpsAvg ? 0.9 * tpsAvg + 0.1 * row.tokensPerSecond : row.tokensPerSecond;
        cmsTotal += row.cmsUpdates;
        bar.update(row.step, { tps: tpsAvg.toFixed(0), loss: row.loss.toFixed(3), bpb: row.bpb.toFixed(3), val, cms: cmsTotal, eta_s2: fmtEta(((steps - row.step) * tpb) / tpsAvg) });
      },
    });
    bar.stop();
    const last = res.rows[res.rows.length - 1];
    console.log(JSON.stringify({ step: r.step, loss: last?.loss, valBpb: [...res.rows].reverse().find((x) => x.valBpb !== undefined)?.valBpb, tokensPerSecond: Math.round(tpsAvg), checkpoint: res.checkpoint, stopped: res.stopped }));
    if (o.sample && !res.stopped) {
      const tok = R.runTokenizer(r);
      const w = tokenWriter(tok);
      process.stdout.write('--- sample ---\nCall me ');
      await r.lm.generate(Array.from(tok.encode('Call me ')), { tokens: o.sample, temperature: 0.8, topK: 40, onToken: w.onToken });
      w.end();
      process.stdout.write('\n');
    }
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
    await dp?.close();
    bar.stop();
    R.disposeRun(r);
  }
}

/** `eval`: validation bpb and perplexity of a checkpoint. */
function addEvalCommand(cmd: Command, be: () => { backend?: string }): void {
  cmd
    .command('eval')
    .description('validation bits per byte and perplexity of a checkpoint, on the whole validation split by default')
    .requiredOption('--checkpoint <dir>', 'a train --out directory DIR (its latest checkpoint) or DIR/ckpt-<step>')
    .option('--data <src>', 'moby-dick | sotu | text files/folders (default: the run config data)')
    .option('--batches <n>', 'score only n validation batches, spread over the split (default: all of it)', intArg('--batches', 100000))
    .action(async (o) => {
      await backend(be());
      const R = lazy.run();
      const r = await R.loadRun(o.checkpoint);
      try {
        const ds = R.datasetFor(r, dataSpec(o.data));
        const all = R.validationBatchCount(r, ds);
        const batches = Math.min(o.batches ?? all, all);
        const t = r.config.training;
        console.error(`scoring ${batches} of ${all} validation batches (${t.batchSize} x ${t.seqLength} tokens each) of ${ds.source} ...`);
        const e = R.evaluate(r, ds, batches);
        const share = e.bytes / ds.validationBytes;
        console.error(`scored ${e.bytes} of ${ds.validationBytes} validation bytes (${(100 * share).toFixed(1)}%), ${e.tokens} tokens`);
        console.log(JSON.stringify({ step: r.step, bpb: e.bpb, perplexity: e.perplexity, tokens: e.tokens, bytes: e.bytes, validationBytes: ds.validationBytes, batches }));
      } finally {
        R.disposeRun(r);
      }
    });
}

/** `generate`: stream text from a checkpoint. */
function addGenerateCommand(cmd: Command, be: () => { backend?: string }): void {
  cmd
    .command('generate')
    .description('stream text from a checkpoint (recurrent states carried: O(1) per token for recurrent blocks)')
    .requiredOption('--checkpoint <dir>', 'a train --out directory DIR (its latest checkpoint) or DIR/ckpt-<step>')
    .option('--prompt <text>', 'prompt', 'Call me ')
    .option('--tokens <n>', 'tokens to generate (bytes with the byte tokenizer)', intArg('--tokens', 1e6), 200)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', numArg('--temperature', 100), 0.8)
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = all; at most the vocabulary size)', countArg('--top-k', 1 << 20), 40)
    .option('--seed <s>', 'sampler seed', countArg('--seed', 2 ** 32 - 1), 1)
    .action(async (o) => {
      await backend(be());
      if (o.prompt === '') throw new Error('--prompt: must not be empty (generation continues a prompt of at least one token)');
      const R = lazy.run();
      const r = await R.loadRun(o.checkpoint);
      try {
        if (o.topK > r.config.model.vocabSize) throw new Error(`--top-k: ${o.topK} is more than the vocabulary (${r.config.model.vocabSize} tokens)`);
        const tok = R.runTokenizer(r);
        const w = tokenWriter(tok);
        process.stdout.write(o.prompt);
        const t0 = Date.now();
        await r.lm.generate(Array.from(tok.encode(o.prompt)), {
          tokens: o.tokens,
          temperature: o.temperature,
          topK: Math.floor(o.topK),
          seed: Math.floor(o.seed),
          onToken: w.onToken,
        });
        w.end();
        process.stdout.write('\n');
        console.error(`${o.tokens} tokens in ${((Date.now() - t0) / 1000).toFixed(2)} s`);
      } finally {
        R.disposeRun(r);
      }
    });
}

/** `memorize`: test-time learning on new text (bpb before and after). */
function addMemorizeCommand(cmd: Command, be: () => { backend?: string }): void {
  cmd
    .command('memorize')
    .description('test-time learning on new text: bpb before and after reading it (in-context updates, no outer step); any text of 2+ tokens, e.g. one short fact')
    .requiredOption('--checkpoint <dir>', 'a train --out directory DIR (its latest checkpoint) or DIR/ckpt-<step>')
    .option('--data <src>', 'text file(s)/folder, or moby-dick / sotu')
    .option('--text <text>', 'the text itself (instead of --data), e.g. --text "The capital of Freedonia is Fredville."')
    .option('--max-bytes <n>', 'use the first n bytes', intArg('--max-bytes', MAX_DATA_BYTES), 2048)
    .action(async (o) => {
      if ((o.data === undefined) === (o.text === undefined)) throw new Error('memorize: give the text with --data <file> or --text "<text>" (one of them)');
      if (o.text === '') throw new Error('--text: must not be empty');
      await backend(be());
      const R = lazy.run();
      const r = await R.loadRun(o.checkpoint);
      try {
        const all = o.text !== undefined ? new Uint8Array(Buffer.from(o.text, 'utf8')) : lazy.data().loadCorpusBytes({ encoding: r.config.data.encoding, ...dataSpec(o.data)! }).bytes;
        const bytes = all.subarray(0, o.maxBytes + 1);
        const m = R.memorizeText(r, bytes, r.config.training.seqLength);
        console.log(JSON.stringify({ bpbBefore: m.before, bpbAfter: m.after, tokens: m.tokens, bytes: m.bytes, pieces: m.pieces, levelUpdates: m.levelUpdates }));
      } finally {
        R.disposeRun(r);
      }
    });
}

/** `doctor`: backend, versions, kernels, classes and a 1-second training sanity run. */
function addDoctorCommand(cmd: Command, be: () => { backend?: string }): void {
  cmd
    .command('doctor')
    .description('backend, versions, kernels, registered classes, and a 1-second training sanity run')
    .action(async () => {
      const info = await lazy.backend().selectBackend(be().backend ?? process.env.NL_BACKEND ?? 'wasm');
      const tf = lazy.tf();
      const R = lazy.run();
      console.log(`nested-learning ${packageVersion()}, @tensorflow/tfjs ${tf.version.tfjs}, node ${process.version}`);
      console.log(`backend: ${info.active} (${info.reason})`);
      console.log(`project kernels: ${info.kernels.join(', ') || 'none'}`);
      const rt = R.nlRuntime();
      console.log(`plugins: ${rt.plugins().map((p) => `${p.name}@${p.version}`).join(', ')}`);
      console.log(`layers: ${[...rt.layers().keys()].join(', ')}`);
      const cfg = lazy.config().loadPreset('hope-tiny');
      const r = R.createRun({ ...cfg, training: { ...cfg.training, batchSize: 1, seqLength: 16 } });
      try {
        const t0 = Date.now();
        let steps = 0;
        let loss = NaN;
        const x = tf.tensor2d([Array.from({ length: 16 }, (_, i) => 97 + (i % 26))], [1, 16], 'int32');
        const y = tf.tensor2d([Array.from({ length: 16 }, (_, i) => 97 + ((i + 1) % 26))], [1, 16], 'int32');
        while (Date.now() - t0 < 1000 || steps < 2) {
          loss = r.trainer.train(x, y).loss;
          steps++;
        }
        tf.dispose([x, y]);
        const ok = Number.isFinite(loss);
        console.log(`sanity: hope-tiny ${steps} training steps of 16 bytes in ${((Date.now() - t0) / 1000).toFixed(2)} s, loss ${loss.toFixed(4)}: ${ok ? 'OK' : 'FAILED'}`);
        if (!ok) process.exitCode = 1;
      } finally {
        R.disposeRun(r);
      }
    });
}

/** `bench`: the bench/ suites (source checkout only). */
function addBenchCommand(cmd: Command): void {
  cmd
    .command('bench')
    .description(`run benchmark suites from bench/ (source checkout only; same as npm run bench -- <suite>), e.g. ${CLI_NAME} bench lm --T=128`)
    .argument('<suites...>', 'suite names (bench/<suite>.ts); an unknown name lists the suites')
    .allowUnknownOption()
    .action(async (suites: string[], _o: unknown, c: Command) => {
      const runner = path.join(__dirname, '..', 'bench', 'run.ts');
      if (!fs.existsSync(runner)) throw new Error(`bench: ${runner} not found; benchmarks run from a source checkout (npm run nl -- bench ...)`);
      const { runBench } = require(runner) as { runBench: (args: string[]) => Promise<void> };
      await runBench([...suites, ...c.args.filter((a) => a.startsWith('-') && !suites.includes(a))]);
    });
}

/** `schema`: the JSON Schema of run configs. */
function addSchemaCommand(cmd: Command): void {
  cmd
    .command('schema')
    .description('print the JSON Schema of run configs (presets/schema.json)')
    .action(() => {
      process.stdout.write((require('./schema') as typeof import('./schema')).schemaText());
    });
}

/** The `nlearn` program: global options, then one function per subcommand (add<Name>Command) and `exp` (cli/exp.ts). */
export function program(): Command {
  const cmd = new Command(CLI_NAME)
    .description('Nested Learning / HOPE on TensorFlow.js')
    .version(packageVersion(), '-V, --version', 'print the nested-learning version')
    .option('--backend <name>', 'wasm | cpu | tensorflow (default: NL_BACKEND or wasm)');
  const be = (): { backend?: string } => cmd.opts();

  addTrainCommand(cmd, be);
  addEvalCommand(cmd, be);
  addGenerateCommand(cmd, be);
  addMemorizeCommand(cmd, be);
  addDoctorCommand(cmd, be);
  addBenchCommand(cmd);
  addSchemaCommand(cmd);
  registerExp(cmd);
  return cmd;
}

/** Runs the command line (`nlearn`, cli/bin.js; `npm run nl`): an error is printed as one line, exit code 1. */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  try {
    await program().parseAsync([...argv]);
  } catch (e) {
    console.error(`${CLI_NAME}: ${cliErrorLine(e)}`);
    process.exit(1);
  }
}

if (require.main === module) void main();
