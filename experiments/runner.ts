/**
 * Runs an experiment and writes its results: OUT/<name>.json (config, rows, command, date, runtime),
 * OUT/<name>.md (table + notes + how it was produced) and OUT/<name>.svg (vega-lite plot of the rows).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from '../core/io';
import type { Experiment, ExperimentResult, Row, RunOpts } from './types';

export interface ResultFile {
  name: string;
  title: string;
  claim: string;
  size: 'smoke' | 'full';
  command: string;
  date: string;
  runtimeSeconds: number;
  backend: string;
  seed: number;
  config: unknown;
  columns: string[];
  rows: Row[];
  summary: string;
  notes: string[];
  verdict: string;
}

export interface Written {
  json: string;
  md: string;
  svg: string;
  result: ResultFile;
}

function cell(v: Row[string]): string {
  if (v === null) return '';
  return String(v).replace(/\|/g, '\\|');
}

export function markdownTable(columns: string[], rows: Row[]): string {
  const head = `| ${columns.join(' | ')} |\n|${columns.map(() => '---').join('|')}|\n`;
  return head + rows.map((r) => `| ${columns.map((c) => cell(r[c] ?? null)).join(' | ')} |`).join('\n') + '\n';
}

/** SVG of the rows with vega-lite (ESM packages: dynamic import). */
export async function plotRows(exp: Experiment, rows: Row[]): Promise<string> {
  const p = exp.plot;
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const encoding = {
    x: { field: p.x, type: p.xType ?? 'quantitative', title: p.x },
    y: { field: p.y, type: 'quantitative', title: p.y, scale: p.yScale === 'auto' ? { zero: false } : { domain: [0, 1] } },
    color: { field: p.color, type: 'nominal' },
  };
  const unit = { mark: p.mark === 'bar' ? { type: 'bar' } : { type: 'line', point: true }, encoding, width: 120, height: 160 };
  const spec = p.facet
    ? { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title: p.title, data: { values: rows }, facet: { field: p.facet, type: 'nominal', title: p.facet }, columns: 3, spec: unit }
    : { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title: p.title, data: { values: rows }, ...unit, width: 480, height: 280 };
  const compiled = vl.compile(spec as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function runExperiment(exp: Experiment, opts: RunOpts & { command?: string }): Promise<Written> {
  const t0 = Date.now();
  const res: ExperimentResult = await exp.run(opts);
  if (opts.smoke) res.verdict = `smoke size (pipeline check, not evidence on the claim); computed verdict would read: ${res.verdict}`;
  const runtimeSeconds = +((Date.now() - t0) / 1000).toFixed(1);
  const size = opts.smoke ? 'smoke' : 'full';
  const columns = res.columns ?? Object.keys(res.rows[0] ?? {});
  const result: ResultFile = {
    name: exp.name,
    title: exp.title,
    claim: exp.claim,
    size,
    command: opts.command ?? `nl exp ${exp.name}${opts.smoke ? ' --smoke' : ''} --out ${opts.out}`,
    date: new Date().toISOString(),
    runtimeSeconds,
    backend: tf.getBackend(),
    seed: opts.seed,
    config: exp.config(size),
    columns,
    rows: res.rows,
    summary: res.summary ?? '',
    notes: res.notes,
    verdict: res.verdict,
  };
  fs.mkdirSync(opts.out, { recursive: true });
  const base = path.join(opts.out, exp.name);
  const md = [
    `# ${exp.title}`,
    '',
    `Paper claim: ${exp.claim}`,
    '',
    `- Command: \`${result.command}\``,
    `- Date: ${result.date}; runtime ${runtimeSeconds} s on backend ${result.backend}; size: ${size}; seed ${opts.seed}`,
    `- Verdict at this scale: ${res.verdict || '(none)'}`,
    '',
    ...(res.summary ? [res.summary, '', '### All rows', ''] : []),
    markdownTable(columns, res.rows),
    `![${exp.plot.title}](${exp.name}.svg)`,
    '',
    ...res.notes.map((n) => `- ${n}`),
    '',
    '## Config',
    '```json',
    JSON.stringify(result.config, null, 1),
    '```',
    '',
  ].join('\n');
  const svg = await plotRows(exp, res.rows);
  await writeFileAtomic(`${base}.json`, JSON.stringify(result, null, 1));
  await writeFileAtomic(`${base}.md`, md);
  await writeFileAtomic(`${base}.svg`, svg);
  return { json: `${base}.json`, md: `${base}.md`, svg: `${base}.svg`, result };
}
