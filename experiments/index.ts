/** The experiments, by name (`nl exp <name>`), and the runner. */
import { formalLanguages } from './formal-languages';
import { mqar } from './mqar';
import { lm } from './lm';
import { ablations } from './ablations';
import { MAD_EXPERIMENTS } from './mad';
import { needle } from './needle';
import { continualMnist } from './continual-mnist';
import { continualLm } from './continual-lm';
import { optimizers } from './optimizers';
import { stability } from './stability';
import type { Experiment } from './types';

export const EXPERIMENTS: Readonly<Record<string, Experiment<any>>> = {
  [formalLanguages.name]: formalLanguages,
  [mqar.name]: mqar,
  [lm.name]: lm,
  [ablations.name]: ablations,
  ...Object.fromEntries(MAD_EXPERIMENTS.map((e) => [e.name, e])),
  [needle.name]: needle,
  [continualMnist.name]: continualMnist,
  [continualLm.name]: continualLm,
  [optimizers.name]: optimizers,
  [stability.name]: stability,
};
export const EXPERIMENT_NAMES: readonly string[] = Object.keys(EXPERIMENTS);

export function getExperiment(name: string): Experiment<any> {
  const e = EXPERIMENTS[name];
  if (!e) throw new Error(`exp: unknown experiment '${name}' (known: ${EXPERIMENT_NAMES.join(', ')})`);
  return e;
}

export { runExperiment, markdownTable, plotRows, type ResultFile, type Written } from './runner';
export type { Experiment, ExperimentResult, Row, RunOpts, SizeName, PlotSpec } from './types';
