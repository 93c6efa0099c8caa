/**
 * Probe: does a one-block model learn a MAD task with a given mixer configuration? Used to diagnose why
 * HOPE stays at chance on the MAD tasks (docs/results/README.md, "Why HOPE fails the MAD tasks here").
 *
 *   node -r ts-node/register/transpile-only experiments/probes/mixer-strength.ts \
 *     --task memorization --kind hope [--mixer '{"etaMax":0.9,"etaBiasInit":2,"initScale":1.5}'] [--steps 150] [--lr 0.01]
 *
 * Builds the same model as `nl exp mad-<task>` (experiments/mad.ts: width 32, 1 block, 2 heads, chunk 8,
 * short conv 4, CMS levels [64, static]), merges --mixer into the block's mixer config, trains with
 * NestedTrainer + Adam (clip 1) on the experiment's seeded training stream, and prints one JSON line:
 * accuracy on 64 fresh test sequences, the loss every 10 steps, and the mixer's cross-token
 * sensitivity at initialisation (|dy_T| when token T-8 changes, relative to |dy_T| when token T changes).
 */
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { selectBackend } from '../../core/backend';
import { createLmRun, nlRuntime } from '../../run';
import { crossTokenSensitivity } from './sensitivity';
import { disposeModel, evalBatch, leftPad, maskedCrossEntropy, modelBlockSpec, rng, trainStep, withSeededRandom, type ModelKind, type ModelRun } from '../models';
import { generate, memorizationMap, taskVocab, MAD_TASKS, PAD, type MadTask, type TaskSizes } from '../mad';

const TASK: TaskSizes = {
  recallKeys: 8, recallValues: 8, recallPairs: 16, fuzzyVocab: 4, fuzzyMaxLen: 2, fuzzyPairs: 4, fuzzyQueries: 4,
  copyVocab: 8, copyTokens: 6, copyContext: 24, memKeys: 32, memValues: 8, memPerSeq: 8, compVocab: 8, compLength: 6,
};

async function main(): Promise<void> {
  const opts = new Command()
    .option('--task <name>', `one of ${MAD_TASKS.join(', ')}`, 'memorization')
    .option('--kind <kind>', 'model kind (experiments/models.ts)', 'hope')
    .option('--mixer <json>', 'fields merged into the block mixer config', '{}')
    .option('--steps <n>', 'training steps of --batch sequences', '150')
    .option('--lr <x>', 'Adam learning rate', '0.01')
    .option('--batch <n>', 'sequences per training step', '16')
    .option('--backend <name>', 'wasm | cpu', 'wasm')
    .parse()
    .opts<{ task: string; kind: string; mixer: string; steps: string; lr: string; batch: string; backend: string }>();
  if (!(MAD_TASKS as readonly string[]).includes(opts.task)) throw new Error(`--task: unknown task '${opts.task}' (known: ${MAD_TASKS.join(', ')})`);
  const task = opts.task as MadTask;
  let mixerPatch: Record<string, unknown>;
  try {
    mixerPatch = JSON.parse(opts.mixer) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`--mixer: not JSON: ${(e as Error).message}`);
  }
  await selectBackend(opts.backend);
  nlRuntime(); // registers every layer class (crossTokenSensitivity builds the mixer by name)
  const sizes = { dModel: 32, numHeads: 2, numBlocks: 1, chunkSize: 8, cmsLevels: [{ period: 64, learningRate: 0.01 }, { period: 0 }] };
  const spec = modelBlockSpec(opts.kind as ModelKind, sizes) as { className: string; config: Record<string, any> };
  const mixer = { ...spec.config.mixer, config: { ...spec.config.mixer.config, ...mixerPatch } };
  const block = { ...spec, config: { ...spec.config, mixer, shortConv: 4 } };
  const sensitivity = withSeededRandom(1, () => crossTokenSensitivity(mixer as never, 8));
  const { vocab, answers } = taskVocab(task, TASK);
  const memMap = memorizationMap(1, TASK);
  const r = createLmRun({ model: { vocabSize: vocab, dModel: sizes.dModel, blocks: [block] }, optimizer: Number(opts.lr), seed: 1, trainer: { loss: maskedCrossEntropy, clipNorm: 1 } });
  const m: ModelRun = { kind: opts.kind as ModelKind, ...r, params: r.lm.countParams() };
  const ti = MAD_TASKS.indexOf(task);
  const dr = rng(32452843 + ti); // the experiment's training stream for seed 1
  const t0 = Date.now();
  const losses: number[] = [];
  try {
    for (let s = 0; s < Number(opts.steps); s++) {
      const loss = trainStep(m, leftPad(Array.from({ length: Number(opts.batch) }, () => generate(task, dr, TASK, memMap)), PAD), vocab);
      if ((s + 1) % 10 === 0) losses.push(+loss.toFixed(3));
    }
    const tr = rng(15485863 + ti);
    const test = Array.from({ length: 64 }, () => generate(task, tr, TASK, memMap));
    const r = await evalBatch(m, leftPad(test, PAD), vocab, answers);
    console.log(JSON.stringify({ task, kind: opts.kind, mixer: mixerPatch, crossTokenSensitivityAtInit: +sensitivity.toFixed(4), accuracy: +(r.correct / r.total).toFixed(3), chance: +(1 / answers.length).toFixed(3), losses, seconds: (Date.now() - t0) / 1000 }));
  } finally {
    disposeModel(m);
  }
}

main().catch((e: Error) => {
  console.error(`mixer-strength: ${e.message}`);
  process.exit(1);
});
