/**
 * Prints the fuzz counts per category (tried / clear / unclear / crash / silent) of the generated `nl`
 * cases (cli/fuzz/cases.ts), running them in a child process that is restarted after a case kills or
 * hangs it (counted as a crash): usable on code that still crashes.
 *
 *   node -r ts-node/register/transpile-only --conditions=nl-source cli/fuzz/report.ts [--timeout=60] [--list] [--only=REGEX] [--in-process]
 *
 * --list prints every case with its outcome and line. The mocha suite (fuzz.test.ts) runs the same cases
 * in process and asserts that all are clear.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CaseResult } from './harness';

async function child(root: string, start: number, resultsFile: string, only: string | undefined): Promise<void> {
  require('reflect-metadata');
  const { selectBackend } = require('../../core/backend') as typeof import('../../core/backend');
  const { makeFixtures, generateCases } = require('./cases') as typeof import('./cases');
  const { runCase } = require('./harness') as typeof import('./harness');
  await selectBackend(process.env.NL_BACKEND ?? 'wasm');
  const fx = await makeFixtures(root);
  const all = generateCases(fx);
  const cases = only ? all.filter((c) => new RegExp(only).test(c.id)) : all;
  for (let i = start; i < cases.length; i++) {
    fs.appendFileSync(resultsFile, `${JSON.stringify({ begin: i, id: cases[i].id, category: cases[i].category, total: cases.length })}\n`);
    let r: CaseResult;
    try {
      r = await runCase(cases[i]);
    } catch (e) {
      r = { id: cases[i].id, category: cases[i].category, outcome: 'crash', line: String((e as Error)?.message ?? e), why: 'harness error' };
    }
    fs.appendFileSync(resultsFile, `${JSON.stringify({ done: i, ...r })}\n`);
  }
  fs.appendFileSync(resultsFile, `${JSON.stringify({ end: true })}\n`);
}

/** --in-process: run every case in this process (fast; only for code that no longer crashes). */
async function inProcess(argv: string[], only: string | undefined): Promise<void> {
  require('reflect-metadata');
  const { selectBackend } = require('../../core/backend') as typeof import('../../core/backend');
  const { makeFixtures, generateCases } = require('./cases') as typeof import('./cases');
  const { runCase, countOutcomes, formatCounts } = require('./harness') as typeof import('./harness');
  await selectBackend(process.env.NL_BACKEND ?? 'wasm');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-fuzz-report-'));
  const all = generateCases(await makeFixtures(root));
  const list: CaseResult[] = [];
  for (const c of all.filter((x) => !only || new RegExp(only).test(x.id))) list.push(await runCase(c));
  if (argv.includes('--list')) for (const r of list) console.log(`${r.outcome.padEnd(7)} ${r.id} :: ${r.line.slice(0, 300)}${r.why ? ` [${r.why}]` : ''}`);
  console.log(formatCounts(countOutcomes(list)));
  fs.rmSync(root, { recursive: true, force: true });
}

async function parent(argv: string[]): Promise<void> {
  const opt = (k: string): string | undefined => argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);
  if (argv.includes('--in-process')) return inProcess(argv, opt('only'));
  const timeout = Number(opt('timeout') ?? 60) * 1000;
  const only = opt('only');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-fuzz-report-'));
  const resultsFile = path.join(root, 'results.jsonl');
  fs.writeFileSync(resultsFile, '');
  const results = new Map<number, CaseResult>();
  let start = 0;
  let total = Infinity;
  while (start < total) {
    const args = ['--max-old-space-size=3072', '--conditions=nl-source', '-r', 'ts-node/register/transpile-only', __filename, '--child', root, String(start), resultsFile, ...(only ? [only] : [])];
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: path.join(__dirname, '..', '..') });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    let current = -1;
    let currentInfo: { id: string; category: CaseResult['category'] } | null = null;
    let lastChange = Date.now();
    let seen = 0;
    const exited = new Promise<number | null>((res) => p.on('exit', (code, sig) => res(sig ? -1 : code)));
    let ended = false;
    let code: number | null = null;
    for (;;) {
      const done = await Promise.race([exited.then((c) => ({ c })), new Promise<null>((r) => setTimeout(() => r(null), 250))]);
      const lines = fs.readFileSync(resultsFile, 'utf8').split('\n').filter(Boolean);
      for (const l of lines.slice(seen)) {
        const j = JSON.parse(l);
        if (j.end) ended = true;
        else if (j.begin !== undefined) {
          current = j.begin;
          currentInfo = { id: j.id, category: j.category };
          total = j.total;
          lastChange = Date.now();
        } else if (j.done !== undefined) {
          results.set(j.done, j as CaseResult);
          process.stderr.write(`\r${results.size}/${total} `);
          current = -1;
          lastChange = Date.now();
        }
      }
      seen = lines.length;
      if (done) {
        code = done.c;
        break;
      }
      if (current >= 0 && Date.now() - lastChange > timeout) {
        p.kill('SIGKILL');
        await exited;
        code = -2;
        break;
      }
    }
    if (ended) break;
    if (current < 0) {
      if (total === Infinity) throw new Error(`fuzz report: the child failed before running a case (exit ${code}):\n${stderr}`);
      start = results.size ? Math.max(...results.keys()) + 1 : 0;
      continue;
    }
    const why = code === -2 ? `hung (no result in ${timeout / 1000} s)` : `child died (exit ${code}): ${stderr.split('\n').filter(Boolean).slice(-1)[0] ?? ''}`;
    results.set(current, { id: currentInfo!.id, category: currentInfo!.category, outcome: 'crash', line: '', why });
    start = current + 1;
  }
  process.stderr.write('\n');
  const { countOutcomes, formatCounts } = require('./harness') as typeof import('./harness');
  const list = [...results.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  if (argv.includes('--list')) for (const r of list) console.log(`${r.outcome.padEnd(7)} ${r.id} :: ${r.line.replace(/\n/g, ' | ').slice(0, 300)}${r.why ? ` [${r.why}]` : ''}`);
  console.log(formatCounts(countOutcomes(list)));
  fs.rmSync(root, { recursive: true, force: true });
}

if (require.main === module) {
  const a = process.argv.slice(2);
  if (a[0] === '--child') {
    child(a[1], Number(a[2]), a[3], a[4]).then(
      () => process.exit(0),
      (e) => {
        console.error(e);
        process.exit(3);
      },
    );
  } else {
    parent(a).catch((e) => {
      console.error(e);
      process.exit(1);
    });
  }
}
