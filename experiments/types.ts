/**
 * Experiment framework types: an experiment is a config (model kinds, sizes, steps, seeds; a `smoke`
 * and a `full` size) plus `run(opts)` that returns result rows. The runner (runner.ts) times it and
 * writes docs/results/<name>.{json,md,svg}.
 */

/** One result row: JSON scalars only (written to JSON and to the markdown table). */
export type Row = Record<string, string | number | boolean | null>;

export type SizeName = 'smoke' | 'full';

export interface RunOpts {
  /** Smoke size: runs in seconds, checks the pipeline, not the claim. */
  smoke: boolean;
  /** Output directory (results are written there by the runner). */
  out: string;
  /** Base seed (data and weight initialisation). */
  seed: number;
  /** Progress lines (stderr in the CLI; silent in tests). */
  log?: (line: string) => void;
}

/** What the plot shows: a vega-lite encoding over the rows. */
export interface PlotSpec {
  x: string;
  y: string;
  color: string;
  /** Small multiples (one panel per value), optional. */
  facet?: string;
  xType?: 'quantitative' | 'nominal' | 'ordinal';
  mark?: 'line' | 'bar';
  /** y scale: default domain [0, 1] (accuracies); 'auto' fits the data without forcing zero (e.g. bits per byte). */
  yScale?: 'unit' | 'auto';
  title: string;
}

export interface ExperimentResult {
  rows: Row[];
  /** Column order of the markdown table (default: keys of the first row). */
  columns?: string[];
  /** Markdown written above the full table (e.g. a pivot of the main metric). */
  summary?: string;
  /** Free text written under the table: what was measured, how to read it, the verdict. */
  notes: string[];
  /** Short verdict on the paper claim at this scale (README table). */
  verdict: string;
}

export interface Experiment<C = unknown> {
  name: string;
  title: string;
  /** The paper's claim this tests (paper-notes section 6). */
  claim: string;
  /** The config for a size (JSON; written into the results). */
  config(size: SizeName): C;
  plot: PlotSpec;
  run(opts: RunOpts): Promise<ExperimentResult>;
}
