/**
 * The import rules of docs/architecture.md, checked on the TypeScript sources (no build, no tool beyond
 * the TypeScript compiler's own import scanner). Each rule failure lists every offending import as
 * `file -> specifier (why)`. The same checker runs on small synthetic trees to show that each rule
 * fires on a deliberate violation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');
const SCANNED = ['index.ts', 'core', 'plugins', 'registry', 'run', 'cli', 'experiments', 'bench', 'app', 'integration-tests'];
/** Apps: may use every library layer, only through front doors. */
const APPS = ['cli', 'experiments', 'bench', 'app', 'integration-tests'];

/**
 * Files of the library (core, plugins, registry) that may import Node built-ins: the Node-only entry
 * points. Everything else in the library must run wherever tfjs runs.
 */
export const NODE_ONLY: readonly RegExp[] = [
  /^core\/io\//, // nested-learning/core/io: the file:// IO handler, guarded reads
  /^core\/backend\//, // nested-learning/core/backend: backend selection, wasm kernels and their build script
  /^core\/testing\//, // nested-learning/core/testing: the test kit and mocha root hooks
  /^plugins\/scheduler\/node\.ts$/, // the scheduler's Node door (worker_threads transport)
  /^plugins\/scheduler\/parallel\/node(-worker)?\.ts$/,
];

/** Bare packages the library may import (besides node: built-ins in NODE_ONLY files). */
const LIBRARY_PACKAGES: ReadonlyArray<[RegExp, RegExp]> = [
  [/.*/, /^@tensorflow\/tfjs$/],
  [/^(core\/plugin\.ts|registry\/|plugins\/[^/]+\/plugin\.ts)/, /^inversify$/],
  [/^(registry\/|core\/testing\/)/, /^reflect-metadata$/],
  [/^core\/backend\//, /^@tensorflow\/tfjs-backend-wasm$/],
];

const NODE_BUILTINS = new Set(require('node:module').builtinModules as string[]);

export interface Violation {
  rule: string;
  file: string;
  specifier: string;
  why: string;
}

type Zone =
  | { kind: 'core' }
  | { kind: 'plugin'; name: string; rest: string }
  | { kind: 'registry' }
  | { kind: 'run' }
  | { kind: 'app'; dir: string }
  | { kind: 'root' }
  | { kind: 'other' };

function zoneOf(file: string): Zone {
  const parts = file.split('/');
  if (parts.length === 1) return parts[0] === 'index.ts' ? { kind: 'root' } : { kind: 'other' };
  if (parts[0] === 'core') return { kind: 'core' };
  if (parts[0] === 'plugins' && parts.length >= 3) return { kind: 'plugin', name: parts[1], rest: parts.slice(2).join('/') };
  if (parts[0] === 'registry') return { kind: 'registry' };
  if (parts[0] === 'run') return { kind: 'run' };
  if (APPS.includes(parts[0])) return { kind: 'app', dir: parts[0] };
  return { kind: 'other' };
}

const isTest = (file: string): boolean => /\.test\.ts$|\.test-data\.ts$|(^|\/)test-helpers\.ts$/.test(file);

/** A plugin's doors: index.ts (public surface), node.ts (its Node-only surface), testing/index.ts (test kit, tests only). */
function doorOf(rest: string): 'index' | 'node' | 'testing' | null {
  if (rest === 'index.ts') return 'index';
  if (rest === 'node.ts') return 'node';
  if (rest === 'testing/index.ts') return 'testing';
  return null;
}

/** Resolve a relative specifier to a repo file ('x' -> 'x.ts' or 'x/index.ts'); null when not a source file here. */
function resolveRelative(from: string, spec: string, exists: (f: string) => boolean): string | null {
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  for (const c of [base, `${base}.ts`, `${base}/index.ts`]) if (c.endsWith('.ts') && exists(c)) return c;
  return null;
}

/** Module specifiers of one file (imports, re-exports, import(), require()), found by the TypeScript scanner. */
export function importsOf(source: string): string[] {
  const info = ts.preProcessFile(source, true, true);
  return info.importedFiles.map((f) => f.fileName);
}

/**
 * Check a tree given as repo-relative path -> source. `requires` maps a plugin name to the plugins its
 * manifest declares in `requires`.
 */
export function findViolations(sources: ReadonlyMap<string, string>, requires: ReadonlyMap<string, readonly string[]>): Violation[] {
  const out: Violation[] = [];
  const exists = (f: string) => sources.has(f);
  for (const [file, source] of sources) {
    const from = zoneOf(file);
    const library = from.kind === 'core' || from.kind === 'plugin' || from.kind === 'registry' || from.kind === 'root';
    for (const spec of importsOf(source)) {
      const add = (rule: string, why: string) => out.push({ rule, file, specifier: spec, why });
      if (!spec.startsWith('.')) {
        const bare = spec.startsWith('node:') ? spec : spec.split('/')[0];
        const builtin = spec.startsWith('node:') || NODE_BUILTINS.has(bare);
        if (library && !isTest(file)) {
          if (builtin) {
            if (!NODE_ONLY.some((r) => r.test(file))) add('library -> node', `${spec} outside the Node-only entry files`);
          } else if (!LIBRARY_PACKAGES.some(([f, p]) => f.test(file) && p.test(spec))) {
            add('library -> package', `library code imports @tensorflow/tfjs (and inversify at the seams) only`);
          }
        }
        continue;
      }
      const target = resolveRelative(file, spec, exists);
      if (target === null) continue; // json files, generated files: not TypeScript sources
      const to = zoneOf(target);
      if (from.kind === 'core' && to.kind !== 'core') add('core -> up', `core imports no plugin, registry, run library or app (${target})`);
      if ((from.kind === 'plugin' || from.kind === 'registry') && (to.kind === 'app' || to.kind === 'run')) {
        add('library -> app', `library code never imports ${to.kind === 'app' ? to.dir + '/' : 'run/'} (${target})`);
      }
      if (from.kind === 'plugin' && to.kind === 'registry') add('plugin -> registry', `plugins never import the registry (${target})`);
      if (from.kind === 'run' && to.kind === 'app') add('run -> app', `the run library never imports ${to.dir}/ (${target})`);
      if (from.kind === 'app' && (from.dir === 'experiments' || from.dir === 'bench') && to.kind === 'app' && to.dir === 'cli') {
        add('app -> cli', `cli/ is a command line, not a library: use run/ (${target})`);
      }
      if (to.kind !== 'plugin') continue;
      const door = doorOf(to.rest);
      if (from.kind === 'plugin' && from.name === to.name) continue;
      if (from.kind === 'plugin') {
        if (door === null || (door === 'testing' && !isTest(file))) {
          add('plugin -> plugin internals', `import plugins/${to.name} through its index.ts, not ${target}`);
        } else if (!isTest(file) && !(requires.get(from.name) ?? []).includes(to.name)) {
          add('plugin -> undeclared plugin', `plugins/${from.name} does not declare '${to.name}' in requires`);
        }
      } else if (door === null || (door === 'testing' && !isTest(file))) {
        const rule = from.kind === 'app' || from.kind === 'run' ? 'apps -> plugin internals' : `${from.kind} -> plugin internals`;
        add(rule, `import plugins/${to.name} through its index.ts, not ${target}`);
      }
    }
  }
  return out;
}

function walk(rel: string, out: Map<string, string>): void {
  const abs = path.join(ROOT, rel);
  if (!fs.existsSync(abs)) return;
  const st = fs.statSync(abs);
  if (st.isFile()) {
    if (rel.endsWith('.ts') && !rel.endsWith('.d.ts')) out.set(rel.split(path.sep).join('/'), fs.readFileSync(abs, 'utf8'));
    return;
  }
  for (const e of fs.readdirSync(abs)) if (e !== 'node_modules' && !e.startsWith('.')) walk(path.join(rel, e), out);
}

/** `requires` of every plugin manifest, read from plugins/<name>/plugin.ts. */
function manifestRequires(sources: ReadonlyMap<string, string>): Map<string, string[]> {
  const req = new Map<string, string[]>();
  for (const [file, src] of sources) {
    const m = /^plugins\/([^/]+)\/plugin\.ts$/.exec(file);
    if (!m) continue;
    const r = /requires:\s*\[([^\]]*)\]/.exec(src);
    req.set(m[1], r ? [...r[1].matchAll(/['"]([^'"]+)['"]/g)].map((x) => x[1]) : []);
  }
  return req;
}

function format(vs: readonly Violation[]): string {
  return vs.map((v) => `  [${v.rule}] ${v.file} -> '${v.specifier}': ${v.why}`).join('\n');
}

describe('architecture: import rules', () => {
  it('the tree has no forbidden import (apps and plugins use front doors, core imports nothing above it, Node built-ins only in Node entries)', () => {
    const sources = new Map<string, string>();
    for (const s of SCANNED) walk(s, sources);
    expect(sources.size).to.be.greaterThan(100);
    const vs = findViolations(sources, manifestRequires(sources));
    expect(vs, `${vs.length} forbidden import(s):\n${format(vs)}`).to.deep.equal([]);
  });

  const req = new Map<string, string[]>([['a', ['b']], ['b', []], ['c', []]]);
  const tree = (files: Record<string, string>) =>
    new Map(Object.entries({ 'plugins/a/index.ts': '', 'plugins/a/layer.ts': '', 'plugins/b/index.ts': '', 'plugins/b/layer.ts': '',
      'plugins/b/node.ts': '', 'plugins/b/testing/index.ts': '', 'plugins/c/index.ts': '', 'core/index.ts': '', 'registry/index.ts': '',
      'cli/run.ts': '', ...files }));
  const rules = (files: Record<string, string>) => findViolations(tree(files), req).map((v) => `${v.rule}: ${v.file}`);

  it('fails on an app importing a plugin internal, and names it', () => {
    expect(rules({ 'bench/x.ts': "import { y } from '../plugins/b/layer';" })).to.deep.equal(['apps -> plugin internals: bench/x.ts']);
    expect(rules({ 'cli/x.ts': "export { y } from '../plugins/b';\nimport '../plugins/b/node';" })).to.deep.equal([]);
    expect(rules({ 'experiments/x.ts': "const m = require('../plugins/b/layer');" })).to.deep.equal(['apps -> plugin internals: experiments/x.ts']);
    expect(rules({ 'app/x.ts': "import type { Y } from '../plugins/b/testing';" })).to.deep.equal(['apps -> plugin internals: app/x.ts']);
  });

  it('fails on a plugin importing another plugin internal or an undeclared plugin', () => {
    expect(rules({ 'plugins/a/x.ts': "import { y } from '../b/layer';" })).to.deep.equal(['plugin -> plugin internals: plugins/a/x.ts']);
    expect(rules({ 'plugins/a/x.ts': "import { y } from '../b';" })).to.deep.equal([]);
    expect(rules({ 'plugins/a/x.ts': "import { y } from '../c';" })).to.deep.equal(['plugin -> undeclared plugin: plugins/a/x.ts']);
    // tests may use any plugin (and its test kit), through its doors
    expect(rules({ 'plugins/a/x.test.ts': "import { y } from '../c';\nimport { z } from '../b/testing';" })).to.deep.equal([]);
    expect(rules({ 'plugins/a/x.test.ts': "import { y } from '../c/index.ts/../layer';" })).to.deep.equal([]); // unresolved: ignored
  });

  it('fails on core importing upward, a plugin importing the registry, library code importing an app or Node', () => {
    expect(rules({ 'core/x.ts': "import { a } from '../plugins/a';" })).to.deep.equal(['core -> up: core/x.ts']);
    expect(rules({ 'core/x.ts': "import { r } from '../registry';" })).to.deep.equal(['core -> up: core/x.ts']);
    expect(rules({ 'plugins/a/x.ts': "import { r } from '../../registry';" })).to.deep.equal(['plugin -> registry: plugins/a/x.ts']);
    expect(rules({ 'plugins/a/x.ts': "import { r } from '../../cli/run';" })).to.deep.equal(['library -> app: plugins/a/x.ts']);
    expect(rules({ 'plugins/a/x.ts': "import * as fs from 'node:fs';" })).to.deep.equal(['library -> node: plugins/a/x.ts']);
    expect(rules({ 'core/x.ts': "import * as fs from 'fs';" })).to.deep.equal(['library -> node: core/x.ts']);
    expect(rules({ 'core/io/x.ts': "import * as fs from 'node:fs';" })).to.deep.equal([]);
    expect(rules({ 'plugins/a/x.ts': "import { z } from 'zod';" })).to.deep.equal(['library -> package: plugins/a/x.ts']);
    expect(rules({ 'plugins/a/x.test.ts': "import * as fs from 'node:fs';" })).to.deep.equal([]);
  });

  it('fails on experiments or benchmarks using cli/ as a library', () => {
    expect(rules({ 'experiments/x.ts': "import { a } from '../cli/run';" })).to.deep.equal(['app -> cli: experiments/x.ts']);
    expect(rules({ 'cli/exp.ts': "import { a } from '../experiments/x';", 'experiments/x.ts': '' })).to.deep.equal([]);
  });
});
