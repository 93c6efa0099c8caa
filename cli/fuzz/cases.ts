/**
 * Generated bad inputs for `nl` (configs, data files, checkpoints, command-line arguments), each with the
 * field / option / file name its refusal must name. The cases are generated from field tables and
 * mutation lists (not a hand list), over four model families (HOPE, transformer, Titans, DeltaNet).
 * `makeFixtures(root)` writes the shared inputs once (a small corpus, base configs, a trained run and a
 * BPE run to mutate); every case works on its own copy under root/cases/<n>.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { runNl, type FuzzCase } from './harness';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Key = string | number;

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

function setAt(obj: Json, p: readonly Key[], v: Json | undefined): Json {
  const o = clone(obj) as Record<string | number, Json>;
  let cur = o as Record<string | number, Json>;
  for (const k of p.slice(0, -1)) cur = cur[k] as Record<string | number, Json>;
  const last = p[p.length - 1];
  if (v === undefined) delete cur[last];
  else cur[last] = v;
  return o as Json;
}

/** Text of about `n` bytes (ASCII, word-like, deterministic). */
export function corpusText(n: number): string {
  const words = ['call', 'me', 'ishmael', 'some', 'years', 'ago', 'never', 'mind', 'how', 'long', 'precisely', 'having', 'little', 'or', 'no', 'money', 'in', 'my', 'purse', 'and', 'nothing', 'particular'];
  let s = '';
  let i = 7;
  while (s.length < n) {
    i = (i * 1103515245 + 12345) % 2147483648;
    s += words[i % words.length] + (i % 11 === 0 ? '.\n' : ' ');
  }
  return s.slice(0, n);
}

export interface Fixtures {
  root: string;
  corpus: string;
  /** Base configs (JSON values) by family. */
  bases: Record<'hope' | 'transformer' | 'titans' | 'deltanet', Json>;
  /** A byte-tokenizer run trained 2 steps (ckpt-1, ckpt-2, latest = ckpt-2). */
  run: string;
  /** A BPE run (vocab 300) trained 1 step. */
  bpeRun: string;
}

const TRAINING = { steps: 1, batchSize: 1, seqLength: 32, learningRate: 0.003, clipNorm: 1, checkpointEvery: 1, evalEvery: 1, evalBatches: 1 };

export function baseConfigs(corpus: string): Fixtures['bases'] {
  const data = { corpus: 'files', paths: [corpus], validationFraction: 0.1 };
  const block = (className: string, config: Json): Json => ({ className, config });
  return {
    hope: {
      model: {
        vocabSize: 256,
        dModel: 16,
        blocks: [
          block('NlHopeBlock', {
            mixer: { className: 'NlSelfModifyingTitans', config: { numHeads: 2, chunkSize: 16, memChunkSize: 16 } },
            ffn: { className: 'NlContinuumMemorySystem', config: { variant: 'sequential', expansion: 2, levels: [{ period: 16, learningRate: 0.01 }, { period: 0 }] } },
          }),
        ],
      },
      training: TRAINING,
      data,
    },
    transformer: {
      model: { vocabSize: 256, dModel: 16, blocks: [block('NlResidualBlock', { mixer: { className: 'NlCausalAttention', config: { numHeads: 2 } }, ffn: { className: 'NlGatedMlp', config: { expansion: 2 } } })] },
      training: TRAINING,
      data,
    },
    titans: {
      model: { vocabSize: 256, dModel: 16, blocks: [block('NlResidualBlock', { mixer: { className: 'NlTitansMemory', config: { numHeads: 2, chunkSize: 16 } }, ffn: { className: 'NlGatedMlp', config: { expansion: 2 } } })] },
      training: TRAINING,
      data,
    },
    deltanet: {
      model: { vocabSize: 256, dModel: 16, blocks: [block('NlResidualBlock', { mixer: { className: 'NlLinearAttention', config: { numHeads: 2, rule: 'delta', chunkSize: 16 } }, ffn: { className: 'NlGatedMlp', config: { expansion: 2 } } })] },
      training: TRAINING,
      data,
    },
  };
}

/** Writes the shared fixtures (idempotent: reuses root/fixtures when complete). Trains two tiny runs in process. */
export async function makeFixtures(root: string): Promise<Fixtures> {
  const fx = path.join(root, 'fixtures');
  const corpus = path.join(fx, 'corpus.txt');
  const bases = baseConfigs(corpus);
  const f: Fixtures = { root, corpus, bases, run: path.join(fx, 'run'), bpeRun: path.join(fx, 'bpe-run') };
  if (fs.existsSync(path.join(fx, 'done'))) return f;
  fs.rmSync(fx, { recursive: true, force: true });
  fs.mkdirSync(fx, { recursive: true });
  fs.writeFileSync(corpus, corpusText(24000));
  const hopeCfg = path.join(fx, 'hope.json');
  fs.writeFileSync(hopeCfg, JSON.stringify({ ...(bases.hope as object), training: { ...TRAINING, steps: 2 } }));
  const r1 = await runNl(['train', '--config', hopeCfg, '--out', f.run, '--no-plot']);
  if (r1.error) throw new Error(`fuzz fixtures: training the base run failed: ${(r1.error as Error).message}`);
  const bpe = clone(bases.hope) as Record<string, Record<string, Json>>;
  bpe.model.vocabSize = 300;
  bpe.data = { ...bpe.data, tokenizer: 'bpe', vocabSize: 300 };
  const bpeCfg = path.join(fx, 'bpe.json');
  fs.writeFileSync(bpeCfg, JSON.stringify(bpe));
  const r2 = await runNl(['train', '--config', bpeCfg, '--out', f.bpeRun, '--no-plot']);
  if (r2.error) throw new Error(`fuzz fixtures: training the BPE run failed: ${(r2.error as Error).message}`);
  fs.writeFileSync(path.join(fx, 'done'), '');
  return f;
}

// ------------------------------------------------------------------------------------------------

interface NumField {
  p: Key[];
  int?: boolean;
  /** Smallest valid value. */
  min: number;
  /** min is exclusive (positive reals). */
  exclusive?: boolean;
  /** An invalid too-large value (needs an upper bound). */
  huge?: number;
}

const NAME = (p: readonly Key[]): string => String([...p].reverse().find((k) => typeof k === 'string'));

/** Invalid values of a numeric field: wrong types, below the minimum, fractional ints, too large. */
function badNumbers(f: NumField): Array<[string, Json]> {
  const out: Array<[string, Json]> = [
    ['string', 'x'],
    ['null', null],
    ['bool', true],
    ['array', [1]],
    ['below-min', f.exclusive ? f.min : f.min - 1],
  ];
  if (f.int) out.push(['fraction', f.min + 1.5]);
  if (f.huge !== undefined) out.push(['huge', f.huge]);
  return out;
}

export function generateCases(fx: Fixtures): FuzzCase[] {
  const cases: FuzzCase[] = [];
  let n = 0;
  const caseDir = (): string => path.join(fx.root, 'cases', String(n++));
  const fresh = (d: string): void => {
    fs.rmSync(d, { recursive: true, force: true });
    fs.mkdirSync(d, { recursive: true });
  };

  // ---------------------------------------------------------------- configs
  const trainWith = (id: string, cfg: Json | string, needles: string[], ext = '.json'): void => {
    const d = caseDir();
    const file = path.join(d, `config${ext}`);
    const out = path.join(d, 'out');
    cases.push({
      id: `config/${id}`,
      category: 'config',
      args: ['train', '--config', file, '--out', out, '--steps', '1', '--no-plot'],
      needles,
      protect: [out],
      clean: [d],
      setup: () => {
        fresh(d);
        fs.writeFileSync(file, typeof cfg === 'string' ? cfg : ext === '.json' ? JSON.stringify(cfg) : YAML.stringify(cfg));
      },
    });
  };
  const hope = fx.bases.hope;
  const trainingFields: NumField[] = [
    { p: ['training', 'steps'], int: true, min: 1, huge: 1e15 },
    { p: ['training', 'batchSize'], int: true, min: 1, huge: 1e9 },
    { p: ['training', 'seqLength'], int: true, min: 2, huge: 1e8 },
    { p: ['training', 'learningRate'], min: 0, exclusive: true, huge: 1e30 },
    { p: ['training', 'weightDecay'], min: 0, huge: 1e30 },
    { p: ['training', 'clipNorm'], min: 0, exclusive: true, huge: 1e300 },
    { p: ['training', 'segmentLength'], int: true, min: 1, huge: 1e9 },
    { p: ['training', 'checkpointEvery'], int: true, min: 1, huge: 1e15 },
    { p: ['training', 'evalEvery'], int: true, min: 1, huge: 1e15 },
    { p: ['training', 'evalBatches'], int: true, min: 1, huge: 1e9 },
    { p: ['training', 'seed'], int: true, min: 0, huge: 1e30 },
    { p: ['model', 'vocabSize'], int: true, min: 256, huge: 1e9 },
    { p: ['model', 'dModel'], int: true, min: 1, huge: 1e7 },
    { p: ['model', 'normEps'], min: 0, exclusive: true, huge: 1e30 },
    { p: ['model', 'embeddingInitStd'], min: 0, exclusive: true, huge: 1e30 },
    { p: ['model', 'blocks', 0, 'repeat'], int: true, min: 1, huge: 100000 },
    { p: ['data', 'validationFraction'], min: 0, exclusive: true, huge: 1 },
  ];
  for (const f of trainingFields) for (const [what, v] of badNumbers(f)) trainWith(`${f.p.join('.')}=${what}`, setAt(hope, f.p, v), [NAME(f.p)]);
  const enums: Array<[Key[], Json[]]> = [
    [['training', 'optimizer'], ['rmsprop', 5]],
    [['training', 'gradientMode'], ['half', null]],
    [['training', 'partialChunk'], ['drop', true]],
    [['data', 'corpus'], ['wiki', 3]],
    [['data', 'tokenizer'], ['word', []]],
    [['model', 'tieEmbeddings'], ['yes', 1]],
    [['model', 'blocks', 0, 'className'], ['NlNoSuchBlock', 'Dense', 5, '']],
    [['model', 'blocks'], ['x', [], [null], [5], {}]],
    [['model', 'blocks', 0, 'config'], ['x', [1], 7]],
    [['data', 'paths'], [[], [''], [5], 'corpus.txt', ['/nonexistent/nl-fuzz/file.txt']]],
  ];
  for (const [p, vals] of enums) vals.forEach((v, i) => trainWith(`${p.join('.')}=#${i}`, setAt(hope, p, v), [NAME(p)]));
  // cross-field constraints of the run config itself
  trainWith('byte-with-vocabSize', setAt(hope, ['data', 'vocabSize'], 300), ['vocabSize']);
  trainWith('bpe-without-vocabSize', setAt(hope, ['data', 'tokenizer'], 'bpe'), ['vocabSize']);
  trainWith('bpe-vocab-mismatch', setAt(setAt(hope, ['data', 'tokenizer'], 'bpe'), ['data', 'vocabSize'], 300), ['vocabSize']);
  trainWith('segmentLength>seqLength', setAt(hope, ['training', 'segmentLength'], 64), ['segmentLength']);
  // per family: unknown keys at every level, the mixer / ffn fields, chunk constraints, sizes
  for (const [fam, base] of Object.entries(fx.bases)) {
    const blk: Key[] = ['model', 'blocks', 0];
    const unknownAt: Key[][] = [[], ['model'], ['training'], ['data'], blk, [...blk, 'config'], [...blk, 'config', 'mixer'], [...blk, 'config', 'mixer', 'config'], [...blk, 'config', 'ffn'], [...blk, 'config', 'ffn', 'config']];
    if (fam === 'hope') unknownAt.push([...blk, 'config', 'ffn', 'config', 'levels', 0]);
    const sel = fam === 'hope' ? unknownAt : unknownAt.slice(4);
    sel.forEach((p, i) => trainWith(`${fam}/unknown-key@${p.join('.') || 'top'}`, setAt(base, [...p, `bogusKey${i}`], 1), [`bogusKey${i}`]));
    const mixer: Key[] = [...blk, 'config', 'mixer', 'config'];
    const ffn: Key[] = [...blk, 'config', 'ffn', 'config'];
    const numHeads: Array<[string, Json]> = [['string', 'x'], ['zero', 0], ['not-dividing-dModel', 3], ['fraction', 1.5], ['huge', 1e6]];
    numHeads.forEach(([w, v]) => trainWith(`${fam}/mixer.numHeads=${w}`, setAt(base, [...mixer, 'numHeads'], v), ['numHeads']));
    const chunkKeys = fam === 'hope' ? ['chunkSize', 'memChunkSize'] : fam === 'transformer' ? [] : ['chunkSize'];
    for (const ck of chunkKeys) {
      const bad: Array<[string, Json]> = [['zero', 0], ['fraction', 1.5], ['string', 'x'], ['gt-seqLength', 64], ['not-dividing-seqLength', 12], ['huge', 1e9]];
      bad.forEach(([w, v]) => trainWith(`${fam}/mixer.${ck}=${w}`, setAt(base, [...mixer, ck], v), [ck]));
      trainWith(`${fam}/seqLength=17-vs-${ck}`, setAt(base, ['training', 'seqLength'], 17), [ck, 'seqLength']);
      trainWith(`${fam}/seqLength=2-vs-${ck}`, setAt(base, ['training', 'seqLength'], 2), [ck, 'seqLength']);
    }
    if (fam === 'hope') {
      const lv: Key[] = [...ffn, 'levels', 0];
      const per: Array<[string, Json]> = [['not-multiple-of-chunk-7', 7], ['not-multiple-of-chunk-24', 24], ['negative', -1], ['fraction', 1.5], ['string', 'x']];
      per.forEach(([w, v]) => trainWith(`${fam}/cms.levels[0].period=${w}`, setAt(base, [...lv, 'period'], v), ['period']));
      const lr: Array<[string, Json]> = [['huge', 1e30], ['negative', -1], ['string', 'x']];
      lr.forEach(([w, v]) => trainWith(`${fam}/cms.levels[0].learningRate=${w}`, setAt(base, [...lv, 'learningRate'], v), ['learningRate']));
      trainWith(`${fam}/cms.levels[0].learningRate=.inf`, YAML.stringify(base).replace('learningRate: 0.01', 'learningRate: .inf'), ['learningRate'], '.yaml');
      trainWith(`${fam}/cms.levels=[]`, setAt(base, [...ffn, 'levels'], []), ['levels']);
      trainWith(`${fam}/cms.levels=x`, setAt(base, [...ffn, 'levels'], 'x'), ['levels']);
      trainWith(`${fam}/cms.variant=x`, setAt(base, [...ffn, 'variant'], 'x'), ['variant']);
    }
    const exp: Array<[string, Json]> = [['zero', 0], ['negative', -1], ['string', 'x'], ['huge', 1e6]];
    exp.forEach(([w, v]) => trainWith(`${fam}/ffn.expansion=${w}`, setAt(base, [...ffn, 'expansion'], v), ['expansion']));
    trainWith(`${fam}/mixer.className=x`, setAt(base, [...blk, 'config', 'mixer', 'className'], 'NlNoSuchMixer'), ['NlNoSuchMixer']);
    trainWith(`${fam}/mixer=null`, setAt(base, [...blk, 'config', 'mixer'], null), ['mixer']);
  }
  // whole-file problems
  const yamlBase = YAML.stringify(hope);
  const fileCases: Array<[string, string, string, string[]]> = [
    ['yaml-syntax', '.yaml', 'model: [1, 2\ntraining: {', ['config.yaml']],
    ['json-syntax', '.json', '{"model": {', ['config.json']],
    ['json-trailing-comma', '.json', JSON.stringify(hope).replace(/}$/, ',}'), ['config.json']],
    ['yaml-js-function-tag', '.yaml', `${yamlBase}name: !!js/function 'function () { return 1 }'\n`, ['config.yaml']],
    ['yaml-custom-tag', '.yaml', `${yamlBase}name: !evil x\n`, ['config.yaml']],
    ['yaml-binary-tag', '.yaml', `${yamlBase}name: !!binary aGVsbG8=\n`, ['config.yaml']],
    ['yaml-duplicate-key', '.yaml', `${yamlBase}model: {}\n`, ['config.yaml']],
    ['yaml-alias-bomb', '.yaml', `a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n`, ['config.yaml']],
    ['empty', '.yaml', '', ['config.yaml']],
    ['top-array', '.yaml', '- 1\n- 2\n', ['config.yaml']],
    ['top-string', '.json', '"hello"', ['config.json']],
    ['top-null', '.json', 'null', ['config.json']],
    ['model-missing', '.json', JSON.stringify({ training: TRAINING }), ['model']],
    ['nan-in-yaml', '.yaml', yamlBase.replace('learningRate: 0.003', 'learningRate: .nan'), ['learningRate']],
  ];
  for (const [id, ext, text, needles] of fileCases) trainWith(id, text, needles, ext);
  {
    // invalid UTF-8 in the config file; a directory, a missing file, /dev/zero, a FIFO, a huge file as the config
    const d = caseDir();
    const specials: Array<[string, string, () => void, string[]]> = [
      ['config-invalid-utf8', path.join(d, 'bad.yaml'), () => fs.writeFileSync(path.join(d, 'bad.yaml'), Buffer.concat([Buffer.from('name: "caf'), Buffer.from([0xc3, 0x28]), Buffer.from('"\n')])), ['bad.yaml']],
      ['config-is-directory', path.join(d, 'dir.yaml'), () => fs.mkdirSync(path.join(d, 'dir.yaml')), ['dir.yaml']],
      ['config-missing', path.join(d, 'missing.yaml'), () => {}, ['missing.yaml']],
      ['config-dev-zero', path.join(d, 'zero.yaml'), () => fs.symlinkSync('/dev/zero', path.join(d, 'zero.yaml')), ['zero.yaml']],
      ['config-fifo', path.join(d, 'fifo.yaml'), () => execFileSync('mkfifo', [path.join(d, 'fifo.yaml')]), ['fifo.yaml']],
      ['config-huge', path.join(d, 'huge.yaml'), () => fs.writeFileSync(path.join(d, 'huge.yaml'), `${yamlBase}#${'x'.repeat(8 << 20)}\n`), ['huge.yaml']],
    ];
    specials.forEach(([id, file, make, needles], i) => {
      const out = path.join(d, `out${i}`);
      cases.push({
        id: `config/${id}`,
        category: 'config',
        args: ['train', '--config', file, '--out', out, '--steps', '1', '--no-plot'],
        needles,
        protect: [out],
        setup: () => {
          if (i === 0) fresh(d);
          make();
        },
      });
    });
  }

  // ---------------------------------------------------------------- data files
  const hopeCfgFile = path.join(fx.root, 'fixtures', 'hope-base.json');
  const dataCase = (id: string, make: (d: string) => string, needles: string[], also: string[] = []): void => {
    const d = caseDir();
    const out = path.join(d, 'out');
    const c: FuzzCase = {
      id: `data/${id}`,
      category: 'data',
      args: [],
      needles,
      ...(also.length ? { also } : {}),
      protect: [out],
      setup: () => {
        fresh(d);
        if (!fs.existsSync(hopeCfgFile)) fs.writeFileSync(hopeCfgFile, JSON.stringify(fx.bases.hope));
        c.args = ['train', '--config', hopeCfgFile, '--data', make(path.join(d, 'data')), '--out', out, '--steps', '1', '--no-plot'];
      },
    };
    cases.push(c);
  };
  const text = Buffer.from(corpusText(12000));
  const invalid: Array<[string, number[]]> = [
    ['lone-continuation', [0x80]],
    ['ff', [0xff]],
    ['overlong', [0xc0, 0xaf]],
    ['surrogate', [0xed, 0xa0, 0x80]],
    ['truncated-3', [0xe2, 0x82]],
    ['five-byte', [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ];
  for (const off of [0, 1, 100, 4095, 4096, 7000, 11999]) {
    for (const [kind, seq] of invalid) {
      dataCase(`invalid-utf8-${kind}@${off}`, (t) => {
        const f = `${t}.txt`;
        fs.writeFileSync(f, Buffer.concat([text.subarray(0, off), Buffer.from(seq), text.subarray(off)]));
        return f;
      }, ['data.txt'], [`byte ${off}`]);
    }
  }
  const dataSpecials: Array<[string, (t: string) => string, string[]]> = [
    ['empty-file', (t) => (fs.writeFileSync(`${t}.txt`, ''), `${t}.txt`), ['data.txt']],
    ['whitespace-only', (t) => (fs.writeFileSync(`${t}.txt`, ' \n\t\n'.repeat(100)), `${t}.txt`), ['data.txt']],
    ['nul-binary', (t) => (fs.writeFileSync(`${t}.bin`, Buffer.concat([text.subarray(0, 500), Buffer.from([0]), text.subarray(500)])), `${t}.bin`), ['data.bin']],
    ['control-bytes', (t) => (fs.writeFileSync(`${t}.txt`, Buffer.from(Array.from({ length: 9000 }, (_, i) => (i % 5 === 0 ? 1 : 97)))), `${t}.txt`), ['data.txt']],
    ['too-short', (t) => (fs.writeFileSync(`${t}.txt`, 'hello world'), `${t}.txt`), ['data']],
    ['empty-folder', (t) => (fs.mkdirSync(t), t), ['data']],
    ['hidden-only-folder', (t) => (fs.mkdirSync(t), fs.writeFileSync(path.join(t, '.hidden.txt'), text), t), ['data']],
    ['missing', (t) => `${t}-missing.txt`, ['data-missing.txt']],
    ['dangling-symlink', (t) => (fs.symlinkSync(`${t}-nowhere`, `${t}.txt`), `${t}.txt`), ['data.txt']],
    ['symlink-loop', (t) => (fs.symlinkSync(`${t}-b.txt`, `${t}-a.txt`), fs.symlinkSync(`${t}-a.txt`, `${t}-b.txt`), `${t}-a.txt`), ['data-a.txt']],
    ['symlink-loop-in-folder', (t) => (fs.mkdirSync(t), fs.writeFileSync(path.join(t, 'ok.txt'), text), fs.symlinkSync(path.join(t, 'y'), path.join(t, 'x')), fs.symlinkSync(path.join(t, 'x'), path.join(t, 'y')), t), ['x']],
    ['folder-cycle', (t) => (fs.mkdirSync(t), fs.writeFileSync(path.join(t, 'ok.txt'), text), fs.symlinkSync(t, path.join(t, 'again')), t), ['again']],
    ['dev-zero', (t) => (fs.symlinkSync('/dev/zero', `${t}.txt`), `${t}.txt`), ['data.txt']],
    ['fifo', (t) => (execFileSync('mkfifo', [`${t}.txt`]), `${t}.txt`), ['data.txt']],
    ['fifo-in-folder', (t) => (fs.mkdirSync(t), fs.writeFileSync(path.join(t, 'ok.txt'), text), execFileSync('mkfifo', [path.join(t, 'pipe.txt')]), t), ['pipe.txt']],
    ['empty-arg', () => '', ['--data']],
    ['commas-only', () => ',,', ['--data']],
    ['one-empty-of-two', (t) => (fs.writeFileSync(`${t}.txt`, text), `${t}.txt,`), ['--data']],
  ];
  for (const [id, make, needles] of dataSpecials) dataCase(id, make, needles);

  // ---------------------------------------------------------------- checkpoints
  const ckptCase = (id: string, mutate: (run: string) => void, needles: string[], opts: { cmd?: 'eval' | 'resume' | 'generate'; bpe?: boolean; noData?: boolean } = {}): void => {
    const d = caseDir();
    const run = path.join(d, 'run');
    const cmd = opts.cmd ?? 'eval';
    const data = opts.noData ? [] : ['--data', fx.corpus];
    const args =
      cmd === 'eval'
        ? ['eval', '--checkpoint', run, ...data, '--batches', '1']
        : cmd === 'generate'
          ? ['generate', '--checkpoint', run, '--tokens', '2']
          : ['train', '--resume', '--out', run, ...data, '--steps', '3', '--no-plot'];
    cases.push({
      id: `checkpoint/${id}${cmd === 'eval' ? '' : `(${cmd})`}`,
      category: 'checkpoint',
      args,
      needles,
      protect: [run],
      clean: [run],
      setup: () => {
        fresh(d);
        fs.cpSync(opts.bpe ? fx.bpeRun : fx.run, run, { recursive: true, verbatimSymlinks: true });
        mutate(run);
      },
    });
  };
  const editJson = (file: string, f: (j: Record<string, Json>) => Json): void => fs.writeFileSync(file, JSON.stringify(f(JSON.parse(fs.readFileSync(file, 'utf8')))));
  const latest = (run: string): string => path.join(run, 'latest.json');
  const cj = (run: string): string => path.join(run, 'ckpt-2', 'checkpoint.json');
  const bin = (run: string): string => path.join(run, 'ckpt-2', 'tensors.bin');
  // latest.json
  const latestVals: Array<[string, Key[], Json | undefined]> = [
    ['step=two', ['step'], 'two'],
    ['step=-5', ['step'], -5],
    ['step=1.5', ['step'], 1.5],
    ['step=null', ['step'], null],
    ['step=99', ['step'], 99],
    ['step-missing', ['step'], undefined],
    ['dir=../elsewhere', ['dir'], '../elsewhere'],
    ['dir=absolute', ['dir'], '/tmp'],
    ['dir=ckpt-999', ['dir'], 'ckpt-999'],
    ['dir=empty', ['dir'], ''],
    ['dir=5', ['dir'], 5],
    ['dir=dotdot-inside', ['dir'], 'ckpt-2/../../run'],
    ['config=null', ['config'], null],
    ['config={}', ['config'], {}],
    ['config-unknown-key', ['config', 'bogusKey'], 1],
    ['config.model.dModel=24', ['config', 'model', 'dModel'], 24],
    ['config.training.seqLength=2', ['config', 'training', 'seqLength'], 2],
    ['unknown-top-key', ['bogusTop'], 1],
  ];
  for (const [id, p, v] of latestVals) {
    ckptCase(`latest.json:${id}`, (run) => editJson(latest(run), (j) => setAt(j, p, v)), ['latest.json', NAME(p)]);
  }
  ckptCase('latest.json:dir=../elsewhere', (run) => {
    fs.cpSync(path.join(run, 'ckpt-2'), path.join(run, '..', 'elsewhere'), { recursive: true });
    editJson(latest(run), (j) => setAt(j, ['dir'], '../elsewhere'));
  }, ['latest.json', 'dir'], { cmd: 'resume' });
  ckptCase('latest.json:dir=symlink-outside', (run) => {
    fs.cpSync(path.join(run, 'ckpt-2'), path.join(run, '..', 'outside'), { recursive: true });
    fs.symlinkSync(path.join(run, '..', 'outside'), path.join(run, 'ckpt-7'));
    editJson(latest(run), (j) => setAt(setAt(j, ['dir'], 'ckpt-7'), ['step'], 7));
  }, ['latest.json', 'ckpt-7']);
  ckptCase('stored-data-paths=/etc/passwd', (run) => editJson(latest(run), (j) => setAt(j, ['config', 'data', 'paths'], ['/etc/passwd'])), ['data.paths', '--data'], { noData: true });
  ckptCase('stored-data-paths=/etc/passwd', (run) => editJson(latest(run), (j) => setAt(j, ['config', 'data', 'paths'], ['/etc/passwd'])), ['data.paths', '--data'], { cmd: 'resume', noData: true });
  for (const cut of [0, 1, 10, 40, -2]) {
    ckptCase(`latest.json:truncated@${cut}`, (run) => {
      const s = fs.readFileSync(latest(run), 'utf8');
      fs.writeFileSync(latest(run), s.slice(0, cut < 0 ? s.length + cut : cut));
    }, ['latest.json']);
  }
  ckptCase('latest.json:array', (run) => fs.writeFileSync(latest(run), '[]'), ['latest.json']);
  ckptCase('latest.json:missing', (run) => fs.rmSync(latest(run)), ['latest.json']);
  ckptCase('latest.json:directory', (run) => (fs.rmSync(latest(run)), fs.mkdirSync(latest(run))), ['latest.json']);
  ckptCase('latest.json:dev-zero', (run) => (fs.rmSync(latest(run)), fs.symlinkSync('/dev/zero', latest(run))), ['latest.json']);
  ckptCase('latest.json:fifo', (run) => (fs.rmSync(latest(run)), execFileSync('mkfifo', [latest(run)])), ['latest.json']);
  ckptCase('latest.json:huge', (run) => fs.writeFileSync(latest(run), `${fs.readFileSync(latest(run), 'utf8').slice(0, -1)},"pad":"${'x'.repeat(40 << 20)}"}`), ['latest.json']);
  ckptCase('checkpoint-dir-missing', (run) => fs.rmSync(path.join(run, 'ckpt-2'), { recursive: true }), ['ckpt-2']);
  ckptCase('checkpoint-dir-is-file', (run) => (fs.rmSync(path.join(run, 'ckpt-2'), { recursive: true }), fs.writeFileSync(path.join(run, 'ckpt-2'), 'x')), ['ckpt-2']);
  // checkpoint.json
  for (const cut of [0, 5, 100, -3]) {
    ckptCase(`checkpoint.json:truncated@${cut}`, (run) => {
      const s = fs.readFileSync(cj(run), 'utf8');
      fs.writeFileSync(cj(run), s.slice(0, cut < 0 ? s.length + cut : cut));
    }, ['checkpoint.json']);
  }
  const cjVals: Array<[string, Key[], Json | undefined, string[]]> = [
    ['format', ['format'], 'other', ['format']],
    ['version', ['version'], 99, ['version']],
    ['tensors=null', ['tensors'], null, ['tensors']],
    ['tensors=object', ['tensors'], {}, ['tensors']],
    ['tensors=string', ['tensors'], 'x', ['tensors']],
    ['tensors[0]=null', ['tensors', 0], null, ['tensors[0]']],
    ['tensors[0].key-missing', ['tensors', 0, 'key'], undefined, ['tensors[0]']],
    ['tensors[0].dtype=float64', ['tensors', 0, 'dtype'], 'float64', ['tensors[0]', 'var/s0/w0']],
    ['tensors[0].dtype=string', ['tensors', 0, 'dtype'], 'string', ['tensors[0]', 'var/s0/w0']],
    ['tensors[0].shape=[-1]', ['tensors', 0, 'shape'], [-1], ['tensors[0]', 'var/s0/w0']],
    ['tensors[0].shape=x', ['tensors', 0, 'shape'], 'x', ['tensors[0]', 'var/s0/w0']],
    ['tensors[0].shape-wrong-size', ['tensors', 0, 'shape'], [3, 3], ['tensors[0]', 'var/s0/w0']],
    ['tensors[1].offset=-4', ['tensors', 1, 'offset'], -4, ['tensors[1]', 'var/s1/w0']],
    ['tensors[1].offset=misaligned', ['tensors', 1, 'offset'], 2, ['tensors[1]', 'var/s1/w0']],
    ['tensors[1].offset=overlap', ['tensors', 1, 'offset'], 0, ['tensors[1]', 'var/s1/w0']],
    ['tensors[1].offset=huge', ['tensors', 1, 'offset'], 1e15, ['tensors[1]', 'var/s1/w0']],
    ['tensors[1].bytes=1e12', ['tensors', 1, 'bytes'], 1e12, ['tensors[1]', 'var/s1/w0']],
    ['tensors[1].bytes=x', ['tensors', 1, 'bytes'], 'x', ['tensors[1]', 'var/s1/w0']],
    ['tensors[0].key=duplicate', ['tensors', 0, 'key'], 'var/s1/w0', ['var/s1/w0']],
    ['tensors[0].key=renamed', ['tensors', 0, 'key'], 'var/s9/w9', ['var/s9/w9', 'var/s0/w0']],
    ['meta=null', ['meta'], null, ['meta']],
    ['meta.gradientMode', ['meta', 'gradientMode'], 'sideways', ['gradientMode']],
    ['meta.outerSteps=-1', ['meta', 'outerSteps'], -1, ['outerSteps']],
    ['meta.outerSteps=x', ['meta', 'outerSteps'], 'x', ['outerSteps']],
    ['meta.pendingOrder=[nope]', ['meta', 'pendingOrder'], ['nope'], ['pendingOrder']],
    ['meta.optimizerWeights=5', ['meta', 'optimizerWeights'], 5, ['optimizerWeights']],
    ['meta.session=x', ['meta', 'session'], 'x', ['session']],
    ['meta.partialChunk', ['meta', 'partialChunk'], 'drop', ['partialChunk']],
    ['meta.accumulationSteps=0', ['meta', 'accumulationSteps'], 0, ['accumulationSteps']],
    ['unknown-top-key', ['bogusTop'], 1, ['bogusTop']],
  ];
  for (const [id, p, v, needles] of cjVals) ckptCase(`checkpoint.json:${id}`, (run) => editJson(cj(run), (j) => setAt(j, p, v)), needles.map((x) => x).concat([]));
  // tensors.bin
  const binMut = (id: string, f: (b: Buffer, run: string) => Buffer | null, needles: string[]): void =>
    ckptCase(`tensors.bin:${id}`, (run) => {
      const b = fs.readFileSync(bin(run));
      const nb = f(b, run);
      if (nb) fs.writeFileSync(bin(run), nb);
    }, needles);
  binMut('truncated-4', (b) => b.subarray(0, b.length - 4), ['tensors.bin']);
  binMut('extended-4', (b) => Buffer.concat([b, Buffer.alloc(4)]), ['tensors.bin']);
  binMut('empty', () => Buffer.alloc(0), ['tensors.bin']);
  const index = (run: string): Array<{ key: string; offset: number; bytes: number; dtype: string }> => JSON.parse(fs.readFileSync(cj(run), 'utf8')).tensors;
  for (const frac of [0, 0.13, 0.31, 0.5, 0.77, 0.999]) {
    binMut(`flip-byte@${frac}`, (b) => {
      const o = Math.min(b.length - 1, Math.floor(frac * b.length));
      const c = Buffer.from(b);
      c[o] ^= 0x10;
      return c;
    }, ['tensors.bin']);
  }
  for (const [kind, val] of [['nan', NaN], ['inf', Infinity], ['-inf', -Infinity]] as const) {
    for (const which of [0, 2, 5]) {
      ckptCase(`tensors.bin:${kind}-in-tensor#${which}`, (run) => {
        const ix = index(run).filter((e) => e.dtype === 'float32' && e.bytes > 0);
        const e = ix[Math.min(which, ix.length - 1)];
        const b = fs.readFileSync(bin(run));
        b.writeFloatLE(val, e.offset + 4 * Math.floor(e.bytes / 8));
        fs.writeFileSync(bin(run), b);
        // a consistent checkpoint.json (as a writer that saved non-finite weights would have produced)
        editJson(cj(run), (j) => j);
      }, ['tensors.bin', 'non-finite', 'NaN', 'Infinity']);
    }
  }
  ckptCase('tensors.bin:dev-zero', (run) => (fs.rmSync(bin(run)), fs.symlinkSync('/dev/zero', bin(run))), ['tensors.bin']);
  ckptCase('tensors.bin:fifo', (run) => (fs.rmSync(bin(run)), execFileSync('mkfifo', [bin(run)])), ['tensors.bin']);
  ckptCase('tensors.bin:directory', (run) => (fs.rmSync(bin(run)), fs.mkdirSync(bin(run))), ['tensors.bin']);
  ckptCase('tensors.bin:missing', (run) => fs.rmSync(bin(run)), ['tensors.bin']);
  ckptCase('checkpoint.json:dev-zero', (run) => (fs.rmSync(cj(run)), fs.symlinkSync('/dev/zero', cj(run))), ['checkpoint.json']);
  // resume with a damaged checkpoint must not write anything either
  ckptCase('tensors.bin:flip-byte', (run) => {
    const b = fs.readFileSync(bin(run));
    b[Math.floor(b.length / 3)] ^= 1;
    fs.writeFileSync(bin(run), b);
  }, ['tensors.bin'], { cmd: 'resume' });
  ckptCase('latest.json:step=-5', (run) => editJson(latest(run), (j) => setAt(j, ['step'], -5)), ['latest.json', 'step'], { cmd: 'resume' });
  // tokenizer.json of a BPE run
  const tj = (run: string): string => path.join(run, 'ckpt-1', 'tokenizer.json');
  const doubling = (): Json => {
    const merges: Json[] = [[97, 97]];
    for (let i = 0; i < 43; i++) merges.push([256 + i, 256 + i]);
    return merges;
  };
  const tokVals: Array<[string, (j: Record<string, Json>) => Json, string[]]> = [
    ['doubling-merges', (j) => setAt(j, ['merges'], doubling()), ['tokenizer.json', 'merges']],
    ['merge-out-of-range', (j) => setAt(j, ['merges', 0], [5000, 1]), ['tokenizer.json', 'merges']],
    ['format', (j) => setAt(j, ['format'], 'x'), ['tokenizer.json', 'format']],
    ['vocabSize', (j) => setAt(j, ['vocabSize'], 400), ['tokenizer.json', 'vocabSize']],
    ['merges=null', (j) => setAt(j, ['merges'], null), ['tokenizer.json', 'merges']],
    ['unknown-key', (j) => setAt(j, ['bogusKey'], 1), ['tokenizer.json', 'bogusKey']],
  ];
  for (const [id, f, needles] of tokVals) ckptCase(`tokenizer.json:${id}`, (run) => editJson(tj(run), f), needles, { bpe: true, cmd: 'generate' });
  ckptCase('tokenizer.json:invalid-json', (run) => fs.writeFileSync(tj(run), '{"merges": ['), ['tokenizer.json'], { bpe: true, cmd: 'generate' });
  ckptCase('tokenizer.json:missing', (run) => fs.rmSync(tj(run)), ['tokenizer.json'], { bpe: true, cmd: 'generate' });

  // ---------------------------------------------------------------- command-line arguments
  const cliCase = (id: string, args: (d: string) => string[], needles: string[], setup?: (d: string) => void): void => {
    const d = caseDir();
    const c: FuzzCase = {
      id: `cli/${id}`,
      category: 'cli',
      args: [],
      needles,
      protect: [fx.run],
      setup: () => {
        fresh(d);
        setup?.(d);
        c.args = args(d);
      },
    };
    cases.push(c);
  };
  const cfgArgs = (d: string): string[] => ['--config', path.join(fx.root, 'fixtures', 'hope.json'), '--out', path.join(d, 'out'), '--no-plot'];
  for (const v of ['0', '-1', '1.5', 'abc', '1e309', '', '1e15']) cliCase(`train --steps ${v}`, (d) => ['train', ...cfgArgs(d), '--steps', v], ['--steps']);
  for (const v of ['0', '-2', 'x', '1e12']) cliCase(`train --sample ${v}`, (d) => ['train', ...cfgArgs(d), '--steps', '1', '--sample', v], ['--sample']);
  const gen = ['generate', '--checkpoint', fx.run];
  for (const v of ['2.5', '-1', 'x', '1e400', '300']) cliCase(`generate --top-k ${v}`, () => [...gen, '--top-k', v, '--tokens', '2'], ['--top-k']);
  for (const v of ['-1', 'NaN', 'Infinity', 'x', '1e6']) cliCase(`generate --temperature ${v}`, () => [...gen, '--temperature', v, '--tokens', '2'], ['--temperature']);
  for (const v of ['0', '1.5', '-3', '1e12']) cliCase(`generate --tokens ${v}`, () => [...gen, '--tokens', v], ['--tokens']);
  for (const v of ['1.5', '-1', 'x', '1e30']) cliCase(`generate --seed ${v}`, () => [...gen, '--seed', v, '--tokens', '2'], ['--seed']);
  cliCase('generate --prompt empty', () => [...gen, '--prompt', '', '--tokens', '2'], ['--prompt']);
  for (const v of ['0', '1e9', '-1']) cliCase(`eval --batches ${v}`, () => ['eval', '--checkpoint', fx.run, '--data', fx.corpus, '--batches', v], ['--batches']);
  for (const v of ['0', 'x', '1e15']) cliCase(`memorize --max-bytes ${v}`, () => ['memorize', '--checkpoint', fx.run, '--data', fx.corpus, '--max-bytes', v], ['--max-bytes']);
  cliCase('train --preset bogus', (d) => ['train', '--preset', 'bogus', '--out', path.join(d, 'o')], ['--preset']);
  cliCase('train --preset and --config', (d) => ['train', '--preset', 'hope-tiny', ...cfgArgs(d)], ['--preset']);
  cliCase('train --config missing', (d) => ['train', '--config', path.join(d, 'nope.yaml'), '--out', path.join(d, 'o')], ['nope.yaml']);
  cliCase('train --config empty', (d) => ['train', '--config', '', '--out', path.join(d, 'o')], ['--config']);
  cliCase('train --out is a file', (d) => ['train', ...cfgArgs(d).slice(0, 2), '--out', path.join(d, 'file'), '--steps', '1', '--no-plot'], ['file'], (d) => fs.writeFileSync(path.join(d, 'file'), 'x'));
  cliCase('train --out empty', () => ['train', '--config', path.join(fx.root, 'fixtures', 'hope.json'), '--out', '', '--steps', '1', '--no-plot'], ['--out']);
  cliCase('train --resume without a run', (d) => ['train', '--resume', '--out', path.join(d, 'none'), '--steps', '1'], ['latest.json']);
  cliCase('eval --checkpoint missing', (d) => ['eval', '--checkpoint', path.join(d, 'none')], ['latest.json']);
  cliCase('eval --checkpoint is a file', (d) => ['eval', '--checkpoint', path.join(d, 'f')], ['f'], (d) => fs.writeFileSync(path.join(d, 'f'), '{}'));
  cliCase('eval without --checkpoint', () => ['eval'], ['--checkpoint']);
  cliCase('memorize without --data', () => ['memorize', '--checkpoint', fx.run], ['--data']);
  cliCase('unknown option', () => ['train', '--bogus-flag'], ['--bogus-flag']);
  cliCase('unknown command', () => ['frobnicate'], ['frobnicate']);
  cliCase('--backend bogus', () => ['--backend', 'bogus', 'eval', '--checkpoint', fx.run], ['bogus']);
  cliCase('generate --checkpoint empty', () => ['generate', '--checkpoint', ''], ['--checkpoint']);
  return cases;
}
