/**
 * Faults (issue 16): a kill at every step of the save sequence, a real SIGTERM, and the divergence guard
 * end to end.
 *
 * Kill points: the save of a run goes through core/io's atomic writers; `train`'s onSaveStep hook is
 * called after every file-system operation (temp file written, backup linked, rename, directory sync,
 * prune). After each, the run directory is copied: the copy is exactly what a SIGKILL at that point
 * leaves on disk (every operation before it has completed; nothing after it has started). Each copy is
 * then resumed (or, when no checkpoint was published yet, restarted) and must finish with: no *.tmp /
 * *.bak files, metrics.jsonl holding each step once, latest.json loadable, and losses bit-identical to
 * an uninterrupted run.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { baseConfigs, corpusText } from './fuzz/cases';
import { strayTemps } from './fuzz/harness';
import { createRun, datasetFor, disposeRun, loadRun, train, type MetricsRow } from '../run/run';
import { saveTrainerCheckpoint } from '../plugins/scheduler';
import { DivergenceError } from '../plugins/scheduler';

const rowsOf = (dir: string): MetricsRow[] =>
  fs.existsSync(path.join(dir, 'metrics.jsonl'))
    ? fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as MetricsRow)
    : [];

describe('faults: kill at every save step, SIGTERM, divergence guard (issue 16)', function () {
  this.timeout(600000);
  let root = '';
  let corpus = '';
  let cfg: Record<string, unknown> = {};
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-fault-'));
    corpus = path.join(root, 'corpus.txt');
    fs.writeFileSync(corpus, corpusText(24000));
    const hope = baseConfigs(corpus).hope as Record<string, Record<string, unknown>>;
    // BPE, so the save sequence includes the tokenizer file; 3 steps with a checkpoint at 2 and at the end
    cfg = { ...hope, model: { ...hope.model, vocabSize: 300 }, data: { ...hope.data, tokenizer: 'bpe', vocabSize: 300 }, training: { ...hope.training, steps: 3, checkpointEvery: 2, evalEvery: 100 } };
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('a kill after any file-system step of any save leaves a run that resumes (or restarts) cleanly and bit-identically', async () => {
    const data = { corpus: 'files' as const, paths: [corpus] };
    // uninterrupted reference
    const refDir = path.join(root, 'ref');
    const ref = createRun(cfg);
    await train(ref, datasetFor(ref), { steps: 3, out: refDir, plot: false });
    disposeRun(ref);
    const refRows = rowsOf(refDir);
    expect(refRows.map((r) => r.step)).to.deep.equal([1, 2, 3]);
    // the same run, snapshotted after every file-system step of its saves
    const runDir = path.join(root, 'run');
    const snaps: Array<{ label: string; dir: string }> = [];
    const r = createRun(cfg);
    await train(r, datasetFor(r), {
      steps: 3,
      out: runDir,
      plot: false,
      onSaveStep: (label) => {
        const dir = path.join(root, `kill-${snaps.length}`);
        fs.cpSync(runDir, dir, { recursive: true });
        snaps.push({ label, dir });
      },
    });
    disposeRun(r);
    const labels = snaps.map((s) => s.label);
    for (const l of ['write tokenizer.json.tmp', 'write tensors.bin.tmp', 'write checkpoint.json.tmp', 'rename tensors.bin.tmp -> tensors.bin', 'rename checkpoint.json.tmp -> checkpoint.json', 'rename latest.json.tmp -> latest.json']) {
      expect(labels.some((x) => x.startsWith(l.split(' -> ')[0]) && x.includes(l.split(' ').pop()!)), `${l} in ${labels.join(' | ')}`).to.equal(true);
    }
    expect(snaps.length).to.be.greaterThan(15);
    let resumed = 0;
    let restarted = 0;
    for (const s of snaps) {
      const what = `kill after '${s.label}' (${s.dir})`;
      let run;
      if (fs.existsSync(path.join(s.dir, 'latest.json'))) {
        run = await loadRun(s.dir); // a published checkpoint always loads
        resumed++;
        expect(run.step, what).to.be.oneOf([2, 3]);
      } else {
        let msg = '';
        await loadRun(s.dir).catch((e: Error) => (msg = e.message));
        expect(msg, what).to.match(/no checkpoint in/);
        run = createRun(cfg);
        restarted++;
      }
      await train(run, datasetFor(run, run.loaded ? data : undefined), { steps: 3, out: s.dir, plot: false });
      disposeRun(run);
      expect(strayTemps(s.dir), what).to.deep.equal([]);
      const rows = rowsOf(s.dir);
      expect(rows.map((x) => x.step), what).to.deep.equal([1, 2, 3]);
      expect(rows.map((x) => x.loss), what).to.deep.equal(refRows.map((x) => x.loss)); // bit-identical
      const latest = JSON.parse(fs.readFileSync(path.join(s.dir, 'latest.json'), 'utf8'));
      expect(latest.dir, what).to.equal('ckpt-3');
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
    expect(resumed).to.be.greaterThan(5);
    expect(restarted).to.be.greaterThan(3);
  });

  it('pruning removes only checkpoints this run wrote; a folder named ckpt-<n> of the user stays', async () => {
    const out = path.join(root, 'prune');
    fs.mkdirSync(path.join(out, 'ckpt-7'), { recursive: true });
    fs.writeFileSync(path.join(out, 'ckpt-7', 'mine.txt'), 'the user\'s');
    const c = { ...cfg, data: { corpus: 'files', paths: [corpus] }, model: { ...(cfg.model as object), vocabSize: 256 }, training: { ...(cfg.training as object), steps: 4, checkpointEvery: 1 } };
    const r = createRun(c);
    await train(r, datasetFor(r), { steps: 4, out, plot: false });
    disposeRun(r);
    expect(fs.readdirSync(out).filter((d) => d.startsWith('ckpt-')).sort()).to.deep.equal(['ckpt-3', 'ckpt-4', 'ckpt-7']);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8')).checkpoints).to.deep.equal(['ckpt-3', 'ckpt-4']);
  });

  it('SIGTERM saves a checkpoint after the current step and exits 0, like Ctrl-C', async () => {
    const out = path.join(root, 'sigterm');
    const cfgFile = path.join(root, 'sigterm.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, model: { ...(cfg.model as object), vocabSize: 256 }, data: { corpus: 'files', paths: [corpus] }, training: { ...(cfg.training as object), steps: 100000, checkpointEvery: 100000, evalEvery: 100000 } }));
    const p = spawn(process.execPath, ['--conditions=nl-source', '-r', 'ts-node/register/transpile-only', path.join(__dirname, 'nl.ts'), 'train', '--config', cfgFile, '--out', out, '--no-plot', '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.join(__dirname, '..') });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((res) => p.on('exit', (code) => res(code)));
    for (let i = 0; i < 1200 && rowsOf(out).length < 2; i++) await new Promise((res) => setTimeout(res, 100));
    expect(rowsOf(out).length, stderr).to.be.greaterThanOrEqual(2);
    p.kill('SIGTERM');
    expect(await exit, stderr).to.equal(0);
    expect(stderr).to.match(/SIGTERM: saving a checkpoint/);
    const rows = rowsOf(out);
    const latest = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'));
    expect(latest.step).to.equal(rows[rows.length - 1].step);
    expect(strayTemps(out)).to.deep.equal([]);
  });

  it('divergence: a non-finite step is refused before the optimizer and before saving; the error names step and layer; the last good checkpoint stays latest; skip mode continues', async () => {
    const out = path.join(root, 'diverge');
    const c = { ...cfg, model: { ...(cfg.model as object), vocabSize: 256 }, data: { corpus: 'files', paths: [corpus] }, training: { ...(cfg.training as object), steps: 2, checkpointEvery: 1 } };
    const r = createRun(c);
    const ds = datasetFor(r);
    await train(r, ds, { steps: 2, out, plot: false });
    // poison a weight of the head (the last stage; blocks with a sentinel of their own, as self-modifying
    // Titans, stop on a poisoned input before the trainer sees the loss): its output is the first non-finite one
    const last = r.lm.nested.stages.length - 1;
    const w = r.lm.nested.stages[last].layer.weights[0];
    const good = r.lm.nested.stages.map((s) => s.layer.weights.map((x) => x.read().dataSync().slice()));
    const bad = tf.tidy(() => tf.fill(w.shape as number[], NaN));
    w.write(bad);
    bad.dispose();
    const steps = r.trainer.outerSteps;
    let err: unknown = null;
    await train(r, ds, { steps: 3, out, plot: false }).catch((e) => (err = e));
    expect((err as Error).message).to.match(/training diverged at step 3: non-finite loss .*layer 'head' \(stage 2/);
    expect((err as Error).message).to.match(/ckpt-2 stays the latest checkpoint/);
    expect(r.trainer.outerSteps).to.equal(steps); // not applied
    r.lm.nested.stages.forEach((s, i) => s.layer.weights.forEach((x, j) => (i === last && j === 0) || expect(Array.from(x.read().dataSync())).to.deep.equal(Array.from(good[i][j]))));
    expect(JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8')).dir).to.equal('ckpt-2');
    expect(fs.existsSync(path.join(out, 'ckpt-3'))).to.equal(false);
    expect(rowsOf(out).map((x) => x.step)).to.deep.equal([1, 2]);
    // a checkpoint with a non-finite weight is never written
    let msg = '';
    await saveTrainerCheckpoint(r.trainer, path.join(root, 'nan-ckpt')).catch((e: Error) => (msg = e.message));
    expect(msg).to.match(new RegExp(`refusing to save .*tensor 'var/s${last}/w0' holds a non-finite value`));
    expect(fs.existsSync(path.join(root, 'nan-ckpt', 'checkpoint.json'))).to.equal(false);
    // the trainer guard directly: DivergenceError with the info; skip mode returns it and goes on
    const b = { x: tf.tensor2d([Array.from({ length: 32 }, (_, i) => 97 + (i % 26))], [1, 32], 'int32'), y: tf.tensor2d([Array.from({ length: 32 }, (_, i) => 97 + ((i + 1) % 26))], [1, 32], 'int32') };
    expect(() => r.trainer.train(b.x, b.y)).to.throw(DivergenceError);
    (r.trainer.options.divergence as { onDivergence?: string }).onDivergence = 'skip';
    const res = r.trainer.train(b.x, b.y);
    expect(res.skipped?.kind).to.equal('non-finite loss');
    expect(res.outerStep).to.equal(false);
    const restore = tf.tensor(good[last][0], w.shape as number[]);
    w.write(restore);
    restore.dispose();
    expect(Number.isFinite(r.trainer.train(b.x, b.y).loss)).to.equal(true); // continues with the next batch
    expect(r.trainer.outerSteps).to.equal(steps + 1);
    // exploding gradient norm: refused, the largest parameter named
    (r.trainer.options.divergence as { maxGradNorm?: number }).maxGradNorm = 1e-9;
    const res2 = r.trainer.train(b.x, b.y);
    expect(res2.skipped?.kind).to.equal('exploding gradient');
    expect(res2.skipped?.where).to.match(/the gradient of '.*' in layer '.*' \(stage \d+\) \(largest, norm/);
    expect(r.trainer.outerSteps).to.equal(steps + 1);
    tf.dispose([b.x, b.y]);
    disposeRun(r);
  });
});
