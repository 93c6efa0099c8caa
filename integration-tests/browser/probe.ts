/**
 * What the browser tests compute, in a page and in Node alike: a tiny seeded HOPE language model's
 * logits on fixed ids, then a few NestedTrainer steps (losses). Imports the library's main entry as a
 * user's page would.
 */
import * as tf from '@tensorflow/tfjs';
import { hope, linearAttention, scheduler } from 'nested-learning';

export interface ProbeResult {
  backend: string;
  /** Logits [1, 16, V] of the fresh model, flattened. */
  logits: number[];
  /** Per-step training losses. */
  losses: number[];
  /** Tensors alive after the probe minus before (0: nothing leaked). */
  leaked: number;
}

const V = 24;
export const PROBE_STEPS = 8;

function probeIds(): number[][] {
  const rows: number[][] = [];
  let s = 3;
  for (let b = 0; b < 2; b++) {
    const row: number[] = [];
    for (let t = 0; t < 17; t++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      row.push(t % 4 === 0 ? 1 : s % V); // a little structure to learn
    }
    rows.push(row);
  }
  return rows;
}

export async function runProbe(): Promise<ProbeResult> {
  const before = tf.memory().numTensors;
  const lm = new hope.LanguageModel(
    { vocabSize: V, dModel: 16, blocks: [hope.blockSpec('hope', { numHeads: 2, chunkSize: 4, cmsLevels: [{ period: 4, learningRate: 0.1 }, { period: 0 }] })] },
    { seed: 1 },
  );
  const all = tf.tensor2d(probeIds(), [2, 17], 'int32');
  const inp = all.slice([0, 0], [2, 16]);
  const tgt = all.slice([0, 1], [2, 16]);
  const first = inp.slice([0, 0], [1, 16]);
  const l = lm.logits(first);
  const logits = Array.from(await l.data());
  l.dispose();
  const opt = tf.train.adam(3e-2);
  const tr = new scheduler.NestedTrainer(lm.nested, { loss: scheduler.tokenCrossEntropy, optimizer: opt });
  const losses: number[] = [];
  for (let i = 0; i < PROBE_STEPS; i++) losses.push(tr.train(inp, tgt).loss);
  tr.dispose();
  opt.dispose();
  tf.dispose([all, inp, tgt, first]);
  lm.dispose();
  return { backend: tf.getBackend(), logits, losses, leaked: tf.memory().numTensors - before };
}

/**
 * A lighter probe for WebGL on SwiftShader (every distinct kernel is a shader compiled on the CPU, so
 * the HOPE probe takes minutes there): library layers (gated-delta linear attention) in a tf.sequential
 * with seeded weights: their outputs on fixed inputs, then a few Adam steps of fit (losses).
 */
export async function runLayerProbe(): Promise<ProbeResult> {
  const before = tf.memory().numTensors;
  const model = tf.sequential();
  model.add(tf.layers.inputLayer({ inputShape: [8, 8] }));
  model.add(new linearAttention.NlLinearAttention({ numHeads: 2, rule: 'gated-delta', chunkSize: 4 }));
  model.add(tf.layers.dense({ units: 8, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  // seeded weights, the same everywhere
  model.weights.forEach((w, i) => w.write(tf.tidy(() => tf.randomNormal(w.shape as number[], 0, 0.3, 'float32', 100 + i))));
  const x = tf.randomNormal([4, 8, 8], 0, 1, 'float32', 7);
  const y = tf.tidy(() => x.reverse(1).mul(0.5)); // a target the layer can learn towards
  const out = model.predict(x) as tf.Tensor;
  const logits = Array.from(await out.data());
  out.dispose();
  model.compile({ optimizer: tf.train.adam(3e-2), loss: 'meanSquaredError' });
  const h = await model.fit(x, y, { epochs: PROBE_STEPS, batchSize: 4, shuffle: false, verbose: 0 });
  const losses = (h.history.loss as number[]).map(Number);
  model.optimizer.dispose();
  model.dispose();
  tf.dispose([x, y]);
  return { backend: tf.getBackend(), logits, losses, leaked: tf.memory().numTensors - before };
}
