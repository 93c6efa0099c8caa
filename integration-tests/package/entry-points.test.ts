/**
 * Issue 15, tfjs conventions and entry points:
 * - importing a plugin registers its classes with tfjs serialisation: a model with library layers,
 *   saved in one process through nested-learning/node (file://), loads in a fresh process that imports
 *   only the plugins and core/io, with identical outputs (plain tf.loadLayersModel and LanguageModel.load);
 * - the registry still refuses a class name held by a different class;
 * - the main entry, the registry, core, core/io (its browser variant) and every plugin bundle for a page
 *   (esbuild, platform browser): no Node built-in is imported at load.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { definePlugin } from '../../core';
import { createRuntime } from '../../registry';
import { NlTitansMemory } from '../../plugins/titans';

const ROOT = path.resolve(__dirname, '../..');
const FIXTURES = path.join(__dirname, 'fixtures');

function runFixture(file: string, dir: string): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '--conditions=nl-source', path.join(FIXTURES, file), dir], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
  });
  const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`${file} printed no JSON:\n${out}`);
  return JSON.parse(line) as Record<string, unknown>;
}

export const BROWSER_ENTRIES = [
  '',
  '/core',
  '/core/io',
  '/registry',
  '/plugins/associative-memory',
  '/plugins/linear-attention',
  '/plugins/cms',
  '/plugins/scheduler',
  '/plugins/optimizers',
  '/plugins/self-modifying-titans',
  '/plugins/titans',
  '/plugins/hope',
];

describe('package entry points (issue 15)', () => {
  it('a model with library layers saved through nested-learning/node loads in a fresh process that only imports the plugins (identical outputs)', function () {
    this.timeout(120_000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-entry-'));
    try {
      const a = runFixture('save-models.ts', dir);
      expect(fs.existsSync(path.join(dir, 'lm', 'model.json')) && fs.existsSync(path.join(dir, 'lm', 'weights.bin'))).to.equal(true);
      const b = runFixture('load-models.ts', dir);
      expect(b.seq).to.deep.equal(a.seq);
      expect(b.lm).to.deep.equal(a.lm); // LanguageModel.load
      expect(b.plain).to.deep.equal(a.lm); // plain tf.loadLayersModel (tied head found in the graph)
      expect(b.meta).to.deep.equal({ tokenizer: { kind: 'bytes' } });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('importing a plugin registered its classes (idempotent); a clashing class is left alone by import and refused by createRuntime', () => {
    const map = tf.serialization.SerializationMap.getMap().classNameMap;
    expect(map.NlTitansMemory?.[0]).to.equal(NlTitansMemory);
    class Impostor extends tf.layers.Layer {
      static className = 'NlTitansMemory';
    }
    const impostor = definePlugin({ name: 'impostor', version: '1.0.0', layers: [Impostor] }); // no throw at import time
    expect(map.NlTitansMemory?.[0]).to.equal(NlTitansMemory);
    // (with tfjs: no runtime loaded titans yet in this process; else the catalogue names the same owner first)
    expect(() => createRuntime({ plugins: [impostor] })).to.throw(/class name 'NlTitansMemory' of plugin 'impostor' is already registered (with tfjs )?by plugin 'titans'/);
  });

  it('the main entry, core, core/io, the registry and every plugin bundle for a page (esbuild, platform browser)', async function () {
    this.timeout(120_000);
    const esbuild = await import('esbuild');
    const dir = fs.mkdtempSync(path.join(ROOT, '.bundle-check-'));
    try {
      const entryPoints: Record<string, string> = {};
      BROWSER_ENTRIES.forEach((s, i) => {
        const f = path.join(dir, `entry${i}.ts`);
        fs.writeFileSync(f, `export * from 'nested-learning${s}';\n`);
        entryPoints[`entry${i}`] = f;
      });
      const r = await esbuild.build({
        entryPoints,
        bundle: true,
        platform: 'browser',
        format: 'esm',
        conditions: ['nl-source'],
        outdir: path.join(dir, 'out'),
        write: false,
        logLevel: 'silent',
        metafile: true,
      }).catch((e: { errors?: { text: string; location?: { file: string } }[] }) => {
        throw new Error(`browser bundle failed:\n${(e.errors ?? []).map((x) => `${x.location?.file}: ${x.text}`).join('\n')}`);
      });
      const inputs = Object.keys(r.metafile!.inputs);
      expect(inputs.filter((f) => /^node:|core\/io\/(file-system|atomic-write|read)\.ts$/.test(f))).to.deep.equal([]);
      expect(r.outputFiles!.filter((f) => f.path.endsWith('.js')).length).to.equal(BROWSER_ENTRIES.length);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
