/**
 * npm run bench -- optimizers
 * For each optimizer of plugins/optimizers on (a) a ~1.07M-parameter MLP (784-1024-256-10 kernels and
 * biases) and (b) the parameter shapes of the hope-tiny preset's language model, with fixed random
 * gradients: ms per optimizer step (applyGradients, blocked on by reading one value back), the ratio to
 * AdamW, and optimizer-state bytes / model bytes. Cases are named '<model>/<optimizer>'.
 * Options: --repeats=N (default 5), --backend=wasm|cpu (default NL_BACKEND or wasm),
 * --models=mlp,hope-tiny,hope-small (default mlp,hope-tiny; any preset name works: its LM's trainable shapes),
 * --ns=fused|ops|both (default both): Newton-Schulz (Muon, M3) through the backend's fused kernel where it is
 * registered (plugins/optimizers setFusedNewtonSchulz(true), the default in the library) and/or the op path;
 * with both, the op-path rows are extra cases '<model>/muon[ns=ops]', '<model>/m3[ns=ops]' (same-process A/B).
 * Timing is round-robin: every round times one step of each optimizer in turn (weights restored between
 * optimizers, untimed), after 2 warm-up rounds; ms/step is the median over rounds, so load that comes and goes
 * (a shared machine) hits every optimizer alike and the ratios to AdamW stay comparable.
 */
import * as tf from '@tensorflow/tfjs';
import { NlTransformOptimizer, type TransformSpec } from '../core';
import { selectBackend } from '../core/backend';
import { registerOptimizerTransforms, setFusedNewtonSchulz } from '../plugins/optimizers';
import { languageModelConfig, loadPreset } from '../run';
import { LanguageModel } from '../plugins/hope';
import { emit, progress } from './lib';

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
  const ns = args.find((a) => a.startsWith('--ns='))?.split('=')[1] ?? 'both';
  if (!['fused', 'ops', 'both'].includes(ns)) throw new Error(`optimizers bench: --ns must be fused, ops or both, got '${ns}'`);
  const cases: BenchCase[] = [];
  for (const [name, spec] of Object.entries(SPECS)) {
    const ns2 = name === 'muon' || name === 'm3';
    if (!ns2 || ns !== 'ops') cases.push({ name, spec, fusedNs: true });
    if (ns2 && ns !== 'fused') cases.push({ name: ns === 'ops' ? name : `${name}[ns=ops]`, spec, fusedNs: false });
  }
  for (const model of models) {
    if (model === 'mlp') await benchShapes('mlp', MLP_SHAPES, repeats, cases);
    else await benchShapes(model, presetShapes(model), repeats, cases); // a preset name; loadPreset names the known ones on error
  }
}

interface BenchCase {
  name: string;
  spec: TransformSpec;
  /** setFusedNewtonSchulz during this case's steps. */
  fusedNs: boolean;
}

async function benchShapes(model: string, SHAPES: number[][], repeats: number, cases: BenchCase[]): Promise<void> {
  const vars = SHAPES.map((s, i) => tf.variable(tf.randomNormal(s, 0, 0.05, 'float32', i), true, `benchOpt/${model}/p${i}`));
  const grads = SHAPES.map((s, i) => tf.randomNormal(s, 0, 1e-3, 'float32', 100 + i));
  const gradMap: tf.NamedTensorMap = {};
  vars.forEach((v, i) => (gradMap[v.name] = grads[i]));
  const modelBytes = vars.reduce((a, v) => a + v.size * 4, 0);
  progress(`optimizers: ${model}, ${modelBytes / 4} parameters in ${SHAPES.length} tensors, backend ${tf.getBackend()}`);
  const snapshot = vars.map((v) => v.clone());
  const opts = cases.map((c) => new NlTransformOptimizer(c.spec));
  const times: number[][] = cases.map(() => []);
  const previousNs = setFusedNewtonSchulz(true);
  try {
    for (let round = -2; round < repeats; round++) {
      cases.forEach((c, k) => {
        setFusedNewtonSchulz(c.fusedNs);
        const t0 = process.hrtime.bigint();
        opts[k].applyGradients(gradMap);
        tf.tidy(() => vars[0].slice([0, 0], [1, 1]).dataSync()); // block until the step is computed
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (round >= 0) times[k].push(ms);
        vars.forEach((v, i) => v.assign(snapshot[i])); // untimed: every optimizer steps from the same weights
      });
    }
  } finally {
    setFusedNewtonSchulz(previousNs);
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const adamMs = median(times[cases.findIndex((c) => c.name === 'adamw')] ?? [NaN]);
  for (const [k, c] of cases.entries()) {
    const ms = median(times[k]);
    const stateBytes = (await opts[k].getWeights()).filter((w) => w.name !== 'iter').reduce((a, w) => a + w.tensor.size * 4, 0);
    emit({ suite: 'optimizers', case: `${model}/${c.name}`, metric: 'ms_per_step', value: ms, unit: 'ms', params: modelBytes / 4 });
    emit({ suite: 'optimizers', case: `${model}/${c.name}`, metric: 'ratio_to_adamw', value: ms / adamMs, unit: 'x' });
    emit({ suite: 'optimizers', case: `${model}/${c.name}`, metric: 'state_bytes_per_model_byte', value: stateBytes / modelBytes, unit: 'ratio' });
    progress(`${model}/${c.name}: ${ms.toFixed(1)} ms/step (${(ms / adamMs).toFixed(2)}x AdamW), state/model ${(stateBytes / modelBytes).toFixed(3)}`);
  }
  opts.forEach((o) => o.dispose());
  tf.dispose([...vars, ...grads, ...snapshot]);
}
