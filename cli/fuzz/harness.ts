/**
 * Fuzz harness of `nl`: runs one generated bad input (cli/fuzz/cases.ts) through the commander program
 * IN PROCESS (output captured, exitOverride) and classifies what happened:
 *   clear   - refused (non-zero exit) with ONE line that names the field / file (the case's needle), no stack
 *             trace, and nothing half-written (no *.tmp / *.bak left, the files the case protects unchanged);
 *   unclear - refused, but the line names neither, is several lines, shows a stack trace, or files were left
 *             half-written / changed;
 *   crash   - a runtime failure (out of memory, allocation failure, stack overflow, non-Error thrown); the
 *             out-of-process runner (report.ts) also counts a dead or hung child here;
 *   silent  - the command finished (exit 0): the bad input was accepted.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CommanderError } from 'commander';
import { cliErrorLine, program } from '../nl';

export type Category = 'config' | 'data' | 'checkpoint' | 'cli';
export type Outcome = 'clear' | 'unclear' | 'crash' | 'silent';

export interface FuzzCase {
  /** Unique, stable id (category/what). */
  id: string;
  category: Category;
  /** `nl` arguments (without 'node nl'). */
  args: string[];
  /** The refusal line must contain one of these (field path, option or file name). */
  needles: string[];
  /** ... and must also contain all of these (e.g. the byte offset of invalid UTF-8). */
  also?: string[];
  /** Files / directories that must be byte-identical after the case (nothing half-written over them). */
  protect?: string[];
  /** Directories that must not contain *.tmp / *.bak files after the case. */
  clean?: string[];
  /** Prepares the case's files (run just before the case). */
  setup?: () => void;
}

export interface CaseResult {
  id: string;
  category: Category;
  outcome: Outcome;
  /** What nl printed as its error (or why the case counts as silent / crash). */
  line: string;
  why?: string;
}

/** Hash of a file or of a directory tree (names, sizes, contents); missing = 'missing'. */
export function treeHash(p: string): string {
  const h = crypto.createHash('sha256');
  const walk = (q: string, rel: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(q);
    } catch {
      h.update(`${rel}:missing;`);
      return;
    }
    if (st.isSymbolicLink()) h.update(`${rel}:link:${fs.readlinkSync(q)};`);
    else if (st.isDirectory()) {
      h.update(`${rel}:dir;`);
      for (const n of fs.readdirSync(q).sort()) walk(path.join(q, n), `${rel}/${n}`);
    } else if (st.isFile()) {
      h.update(`${rel}:file:${st.size};`);
      h.update(fs.readFileSync(q));
    } else h.update(`${rel}:special;`);
  };
  walk(p, '.');
  return h.digest('hex');
}

/** *.tmp / *.bak files (the atomic writers' temp names) under `dir`. */
export function strayTemps(dir: string): string[] {
  const out: string[] = [];
  const walk = (q: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(q);
    } catch {
      return;
    }
    if (st.isDirectory()) for (const n of fs.readdirSync(q)) walk(path.join(q, n));
    else if (/\.(tmp|bak)$/.test(q)) out.push(q);
  };
  walk(dir);
  return out;
}

const CRASH = /out of memory|allocation failed|Invalid array length|Invalid typed array length|Maximum call stack|Cannot allocate|Array buffer allocation|WebAssembly\.Memory|memory access out of bounds|Aborted\(/i;

/** Runs `nl ...args` in this process; returns the thrown error (or null) and what was printed. */
export async function runNl(args: string[]): Promise<{ error: unknown; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const write = process.stdout.write.bind(process.stdout);
  const ewrite = process.stderr.write.bind(process.stderr);
  const log = console.log;
  const err = console.error;
  const warn = console.warn;
  const cap = (into: 'o' | 'e') => (chunk: string | Uint8Array): boolean => {
    const s = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (into === 'o') stdout += s;
    else stderr += s;
    return true;
  };
  process.stdout.write = cap('o') as typeof process.stdout.write;
  process.stderr.write = cap('e') as typeof process.stderr.write;
  console.log = (...a: unknown[]): void => void (stdout += `${a.join(' ')}\n`);
  console.error = (...a: unknown[]): void => void (stderr += `${a.join(' ')}\n`);
  console.warn = (...a: unknown[]): void => void (stderr += `${a.join(' ')}\n`);
  let error: unknown = null;
  try {
    const p = program().exitOverride();
    p.configureOutput({ writeOut: (s) => void (stdout += s), writeErr: (s) => void (stderr += s) });
    for (const c of p.commands) c.exitOverride().configureOutput({ writeOut: (s) => void (stdout += s), writeErr: (s) => void (stderr += s) });
    await p.parseAsync(['node', 'nl', ...args]);
  } catch (e) {
    error = e;
  } finally {
    process.stdout.write = write;
    process.stderr.write = ewrite;
    console.log = log;
    console.error = err;
    console.warn = warn;
  }
  return { error, stdout, stderr };
}

/** Runs one case and classifies it (see the module comment). */
export async function runCase(c: FuzzCase): Promise<CaseResult> {
  c.setup?.();
  const before = new Map((c.protect ?? []).map((p) => [p, treeHash(p)]));
  const { error } = await runNl(c.args);
  const res = (outcome: Outcome, line: string, why?: string): CaseResult => ({ id: c.id, category: c.category, outcome, line, ...(why ? { why } : {}) });
  if (error === null) return res('silent', '', 'exit 0: accepted');
  if (error instanceof CommanderError && error.exitCode === 0) return res('silent', error.message, 'exit 0 (help/version)');
  if (!(error instanceof Error)) return res('crash', String(error), 'non-Error thrown');
  // what `nl` prints for this error: commander's own message, or the main handler's line
  const line = error instanceof CommanderError ? error.message.trim() : `nl: ${cliErrorLine(error)}`;
  if (CRASH.test(error.message) || error instanceof RangeError) return res('crash', line, `${error.name}`);
  const problems: string[] = [];
  if (line.includes('\n')) problems.push('several lines');
  if (/\n\s+at |\bat .*\(.*:\d+:\d+\)/.test(line)) problems.push('stack trace');
  if (!c.needles.some((n) => line.toLowerCase().includes(n.toLowerCase()))) problems.push(`names none of ${JSON.stringify(c.needles)}`);
  for (const a of c.also ?? []) if (!line.toLowerCase().includes(a.toLowerCase())) problems.push(`does not say ${JSON.stringify(a)}`);
  for (const [p, h] of before) if (treeHash(p) !== h) problems.push(`changed ${p}`);
  for (const d of c.clean ?? []) {
    const t = strayTemps(d);
    if (t.length) problems.push(`left ${t.map((x) => path.basename(x)).join(', ')}`);
  }
  return problems.length ? res('unclear', line, problems.join('; ')) : res('clear', line);
}

export interface Counts {
  tried: number;
  clear: number;
  unclear: number;
  crash: number;
  silent: number;
}

/** Counts per category (and 'all'). */
export function countOutcomes(results: readonly CaseResult[]): Record<string, Counts> {
  const out: Record<string, Counts> = {};
  const add = (k: string, o: Outcome): void => {
    out[k] ??= { tried: 0, clear: 0, unclear: 0, crash: 0, silent: 0 };
    out[k].tried++;
    out[k][o]++;
  };
  for (const r of results) {
    add(r.category, r.outcome);
    add('all', r.outcome);
  }
  return out;
}

export function formatCounts(counts: Record<string, Counts>): string {
  const cats = ['config', 'data', 'checkpoint', 'cli', 'all'].filter((k) => counts[k]);
  const rows = cats.map((k) => `| ${k} | ${counts[k].tried} | ${counts[k].clear} | ${counts[k].unclear} | ${counts[k].crash} | ${counts[k].silent} |`);
  return ['| category | tried | clear | unclear | crash | silent |', '|---|---|---|---|---|---|', ...rows].join('\n');
}
