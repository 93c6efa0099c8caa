/**
 * nested-learning/run: the run library (Node). Run configs and presets, corpora, tokenizers, the one
 * "LanguageModel + optimizer + NestedTrainer" recipe, runs with their checkpoint directories, data
 * parallelism over worker threads. Used by the `nlearn` command line (cli/), the experiments and the
 * benchmarks; imports core, registry and plugins (through their index.ts), never cli/.
 */
export * from './recipe';
export * from './config';
export * from './bpe';
export * from './data';
export * from './model-check';
export * from './run';
export * from './parallel';
export * from './export';
