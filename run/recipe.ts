/**
 * The one "language model + outer optimizer + NestedTrainer" recipe. Every run of a LanguageModel in
 * the repo is built here: `nlearn train` (run.ts createRun), the experiments and the benchmarks.
 *
 *   const r = createLmRun({ model: languageModelConfig(cfg), optimizer: 3e-3, seed: 1, trainer: { clipNorm: 1 } });
 *   const { loss } = r.trainer.train(inputs, targets);
 *   disposeLmRun(r);
 */
import * as tf from '@tensorflow/tfjs';
import { NlTransformOptimizer, type JsonObject, type TransformSpec } from '../core/transforms';
import { LanguageModel, type LanguageModelConfig } from '../plugins/hope';
import { adamwOptimizer, registerOptimizerTransforms } from '../plugins/optimizers';
import { NestedTrainer, tokenCrossEntropy, type NestedTrainerOptions } from '../plugins/scheduler';
import { createDefaultRuntime, type Runtime } from '../registry';
import { runScheduleSpec, type RunConfig } from './config';

let runtime: Runtime | null = null;
/**
 * The process's runtime: every first-party plugin (layer classes registered with tfjs, so block configs
 * and checkpoints resolve by class name). Created once.
 */
export function nlRuntime(): Runtime {
  if (!runtime) runtime = createDefaultRuntime();
  return runtime;
}

/** The outer optimizer of a run config's `training` section (optimizer, learning rate, weight decay, schedule). */
export function runOptimizer(t: RunConfig['training']): tf.Optimizer {
  const schedule = runScheduleSpec(t);
  if (schedule) {
    // optimizer at learning rate 1, then the schedule (peak training.learningRate); its step count is optimizer state.
    // adam/adamw: update -lr_t (m^ / (sqrt(v^) + eps) + wd W), as adamwOptimizer's with lr_t; 'adam' keeps
    // tf.train.adam's epsilon (1e-7, the float32 backend epsilon), so a schedule changes only the learning rate.
    const base: TransformSpec =
      t.optimizer === 'sgd' ? { transform: 'scale', config: { factor: -1 } }
      : t.optimizer === 'adam' ? { transform: 'adamw', config: { learningRate: 1, epsilon: 1e-7 } }
      : { transform: 'adamw', config: { learningRate: 1, weightDecay: t.weightDecay } };
    registerOptimizerTransforms();
    return new NlTransformOptimizer({ transform: 'chain', config: { transforms: [base as unknown as JsonObject, schedule as unknown as JsonObject] } });
  }
  switch (t.optimizer) {
    case 'adam':
      return tf.train.adam(t.learningRate);
    case 'sgd':
      return tf.train.sgd(t.learningRate);
    case 'adamw':
      return adamwOptimizer({ learningRate: t.learningRate, weightDecay: t.weightDecay });
  }
}

export interface LmRunSpec {
  /** The model (vocabulary, width, blocks as {className, config}). */
  model: LanguageModelConfig;
  /**
   * The outer optimizer: a tf.Optimizer (the run takes ownership: disposeLmRun disposes it), a
   * TransformSpec (built as NlTransformOptimizer), a number (Adam at that learning rate), or a function
   * called once the model is built.
   */
  optimizer: tf.Optimizer | TransformSpec | number | (() => tf.Optimizer);
  /** Seed of the weight initialisation (LanguageModel option seed). Absent = Math.random. */
  seed?: number;
  /** NestedTrainer options besides the optimizer; loss defaults to tokenCrossEntropy. */
  trainer?: Partial<NestedTrainerOptions>;
}

export interface LmRun {
  lm: LanguageModel;
  trainer: NestedTrainer;
  /** Owned by the run (disposeLmRun disposes its state). */
  optimizer: tf.Optimizer;
}

function outerOptimizer(o: LmRunSpec['optimizer']): tf.Optimizer {
  if (typeof o === 'number') return tf.train.adam(o);
  if (typeof o === 'function') return o();
  if (o instanceof tf.Optimizer) return o;
  registerOptimizerTransforms();
  return new NlTransformOptimizer(o);
}

/**
 * Builds the model (seeded), the outer optimizer and the NestedTrainer over lm.nested. Every layer class
 * is registered first (nlRuntime). If a layer refuses its config while the model is being built, the
 * weights built before it are freed and the error is rethrown prefixed by `where` (when given).
 */
export function createLmRun(spec: LmRunSpec, where?: string): LmRun {
  nlRuntime();
  const varsBefore = new Set(Object.keys(tf.engine().registeredVariables));
  let lm: LanguageModel;
  try {
    lm = new LanguageModel(spec.model, spec.seed === undefined ? {} : { seed: spec.seed });
  } catch (e) {
    for (const [name, v] of Object.entries(tf.engine().registeredVariables)) if (!varsBefore.has(name)) v.dispose();
    if (where === undefined) throw e;
    throw new Error(`${where} ${(e as Error).message}`, { cause: e });
  }
  const optimizer = outerOptimizer(spec.optimizer);
  const trainer = new NestedTrainer(lm.nested, { loss: tokenCrossEntropy, ...spec.trainer, optimizer });
  return { lm, trainer, optimizer };
}

export function disposeLmRun(r: LmRun): void {
  r.trainer.dispose();
  r.optimizer.dispose();
  r.lm.dispose();
}

/** Parameters of a model config (builds and disposes the model; tied embeddings counted once). */
export function countLmParams(model: LanguageModelConfig): number {
  nlRuntime();
  const lm = new LanguageModel(model);
  try {
    return lm.countParams();
  } finally {
    lm.dispose();
  }
}
