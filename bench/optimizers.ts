/**
 * npm run bench -- optimizers
 * For each optimizer of plugins/optimizers on (a) a ~1.07M-parameter MLP (784-1024-256-10 kernels and
 * biases) and (b) the parameter shapes of the hope-tiny preset's language model, with fixed random
 * gradients: ms per optimizer step (applyGradients, blocked on by reading one value back), the ratio to
 * AdamW, and optimizer-state bytes / model bytes. Cases are named '<model>/<optimizer>'.
 * Options: --repeats=N (default 5), --backend=wasm|cpu (default NL_BACKEND or wasm),
 * --models=mlp,hope-tiny,hope-small (default mlp,hope-tiny; any preset name works: its LM's trainable shapes).
 */
import * as tf from '@tensorflow/tfjs';
import { NlTransformOptimizer, type TransformSpec } from '../core';
import { selectBackend } from '../core/backend';
import { registerOptimizerTransforms } from '../plugins/optimizers';
import { languageModelConfig, loadPreset } from '../run';
import { LanguageModel } from '../plugins/hope';
import { emit, progress, timeMs } from './lib';

const SPECS: Record<string, TransformSpec> = {
  adamw: { transform: 'adamw', config: { learningRate: 1e-3 } },
  momentum: { transform: 'assocMomentum', config: { learningRate: 1e-2 } },
  momentumDiagonal: { transform: 'assocMomentum', config: { learningRate: 1e-3, preconditioner: 'diagonal' } },
  momentumLearned: { transform: 'assocMomentum', config: { learningRate: 1e-3, preconditioner: 'learned' } },
  deltaMomentum: { transform: 'deltaMomentum', config: { learningRate: 1e-2 } },
  dmgd: { transform: 'dmgd', config: { learningRate: 0.1, hidden: 16 } },
  muon: { transform: 'muon', config: { learningRate: 1e-3 } },
  dgd: { transform: 'dgd', config: { learningRate: 0.1 } },
  m3: { transform: 'm3', config: { learningRate: 1e-3 } },
};

const MLP_SHAPES: number[][] = [[784, 1024], [1024], [1024, 256], [256], [256, 10], [10]];

/** Shapes of the trainable variables of a preset's language model (e.g. hope-tiny, hope-small). */
function presetShapes(preset: string): number[][] {
  const lm = new LanguageModel(languageModelConfig(loadPreset(preset)));
  const shapes = lm.nested.trainableVariables().map((v) => [...v.shape]);
  lm.dispose();
  return shapes;
}

export async function run(args: string[]): Promise<void> {
  const repeats = Number(args.find((a) => a.startsWith('--repeats='))?.split('=')[1] ?? 5);
  const backend = args.find((a) => a.startsWith('--backend='))?.split('=')[1] ?? process.env.NL_BACKEND ?? 'wasm';
  const info = await selectBackend(backend);
  progress(info.reason);
  registerOptimizerTransforms();
  const models = (args.find((a) => a.startsWith('--models='))?.split('=')[1] ?? 'mlp,hope-tiny').split(',');
  for (const model of models) {
    if (model === 'mlp') await benchShapes('mlp', MLP_SHAPES, repeats);
    else await benchShapes(model, presetShapes(model), repeats); // a preset name; loadPreset names the known ones on error
  }
}

async function benchShapes(model: string, SHAPES: number[][], repeats: number): Promise<void> {
  const vars = SHAPES.map((s, i) => tf.variable(tf.randomNormal(s, 0, 0.05, 'float32', i), true, `benchOpt/${model}/p${i}`));
  const grads = SHAPES.map((s, i) => tf.randomNormal(s, 0, 1e-3, 'float32', 100 + i));
  const gradMap: tf.NamedTensorMap = {};
  vars.forEach((v, i) => (gradMap[v.name] = grads[i]));
  const modelBytes = vars.reduce((a, v) => a + v.size * 4, 0);
  progress(`optimizers: ${model}, ${modelBytes / 4} parameters in ${SHAPES.length} tensors, backend ${tf.getBackend()}`);
  let adamMs = NaN;
  for (const [name, spec] of Object.entries(SPECS)) {
    const snapshot = vars.map((v) => v.clone());
    const opt = new NlTransformOptimizer(spec);
    const step = (): void => {
      opt.applyGradients(gradMap);
      vars[0].slice([0, 0], [1, 1]).dataSync(); // block until the step is computed
    };
    const ms = await timeMs(step, { warmup: 2, repeats });
    if (name === 'adamw') adamMs = ms;
    const stateBytes = (await opt.getWeights()).filter((w) => w.name !== 'iter').reduce((a, w) => a + w.tensor.size * 4, 0);
    emit({ suite: 'optimizers', case: `${model}/${name}`, metric: 'ms_per_step', value: ms, unit: 'ms', params: modelBytes / 4 });
    emit({ suite: 'optimizers', case: `${model}/${name}`, metric: 'ratio_to_adamw', value: ms / adamMs, unit: 'x' });
    emit({ suite: 'optimizers', case: `${model}/${name}`, metric: 'state_bytes_per_model_byte', value: stateBytes / modelBytes, unit: 'ratio' });
    progress(`${model}/${name}: ${ms.toFixed(1)} ms/step (${(ms / adamMs).toFixed(2)}x AdamW), state/model ${(stateBytes / modelBytes).toFixed(3)}`);
    opt.dispose();
    vars.forEach((v, i) => v.assign(snapshot[i]));
    tf.dispose(snapshot);
  }
  tf.dispose([...vars, ...grads]);
}
