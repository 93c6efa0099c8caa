/// <reference lib="dom" />
/**
 * The demo page (npm run demo:web): a tiny HOPE language model trained live in the browser on a bundled
 * text (byte tokens), the loss plotted as it falls, text generation, test-time memorisation of a pasted
 * fact (NestedTrainer.memorize: the in-context levels learn, the outer weights stay), and a backend
 * switch (wasm, WebGL, WebGPU where the browser has navigator.gpu).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-webgpu';
import { hope, scheduler } from 'nested-learning';
import { selectBackend } from 'nested-learning/core/backend';

type StageStates = Array<Record<string, tf.Tensor> | null>;
const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const enc = new TextEncoder();
const dec = new TextDecoder();

const SEQ = 48;
const BATCH = 8;
const CONFIG = {
  vocabSize: 256,
  dModel: 48,
  blocks: [hope.blockSpec('hope', { numHeads: 4, chunkSize: 16, cmsLevels: [{ period: 16, learningRate: 0.05 }, { period: 0 }] })],
};

let corpus = new Uint8Array(0);
let lm: hope.LanguageModel | null = null;
let trainer: scheduler.NestedTrainer | null = null;
let optimizer: tf.Optimizer | null = null;
let stopRequested = false;
let busy = false;
let memorized = false;
const losses: number[] = [];
let rng = 12345;
const rand = (): number => ((rng = (rng * 1103515245 + 12345) % 2147483648) / 2147483648);

function status(s: string): void {
  $('status').textContent = s;
}

function buildModel(): void {
  trainer?.dispose();
  optimizer?.dispose();
  lm?.dispose();
  lm = new hope.LanguageModel(CONFIG, { seed: 1 });
  optimizer = tf.train.adam(4e-3);
  trainer = new scheduler.NestedTrainer(lm.nested, { loss: scheduler.tokenCrossEntropy, optimizer, clipNorm: 1 });
  losses.length = 0;
  memorized = false;
  drawPlot();
}

function batch(): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const xs = new Int32Array(BATCH * SEQ);
  const ys = new Int32Array(BATCH * SEQ);
  for (let b = 0; b < BATCH; b++) {
    const at = Math.floor(rand() * (corpus.length - SEQ - 1));
    for (let t = 0; t < SEQ; t++) {
      xs[b * SEQ + t] = corpus[at + t];
      ys[b * SEQ + t] = corpus[at + t + 1];
    }
  }
  return { x: tf.tensor2d(xs, [BATCH, SEQ], 'int32'), y: tf.tensor2d(ys, [BATCH, SEQ], 'int32') };
}

function drawPlot(): void {
  const c = $<HTMLCanvasElement>('plot');
  const g = c.getContext('2d')!;
  const W = c.width;
  const H = c.height;
  const L = 44;
  const B = 24;
  g.clearRect(0, 0, W, H);
  g.fillStyle = '#222';
  g.font = '12px system-ui';
  g.fillText('training loss (nats per byte)', L, 14);
  const lo = 0;
  const hi = Math.max(6, ...losses.slice(0, 1));
  g.strokeStyle = '#ccc';
  g.beginPath();
  g.moveTo(L, 20);
  g.lineTo(L, H - B);
  g.lineTo(W - 8, H - B);
  g.stroke();
  for (let v = 0; v <= hi; v += 1) {
    const y = H - B - ((v - lo) / (hi - lo)) * (H - B - 20);
    g.fillStyle = '#666';
    g.fillText(String(v), L - 16, y + 4);
  }
  const n = Math.max(losses.length, 2);
  g.fillText(`step ${losses.length}`, W - 70, H - 6);
  if (losses.length === 0) return;
  const sx = (i: number): number => L + (i / (n - 1)) * (W - 8 - L);
  const sy = (v: number): number => H - B - ((Math.min(v, hi) - lo) / (hi - lo)) * (H - B - 20);
  g.strokeStyle = '#9ec5f5';
  g.beginPath();
  losses.forEach((v, i) => (i === 0 ? g.moveTo(sx(i), sy(v)) : g.lineTo(sx(i), sy(v))));
  g.stroke();
  // running mean
  g.strokeStyle = '#1f5fbf';
  g.lineWidth = 2;
  g.beginPath();
  let m = losses[0];
  losses.forEach((v, i) => {
    m = i === 0 ? v : 0.9 * m + 0.1 * v;
    if (i === 0) g.moveTo(sx(i), sy(m));
    else g.lineTo(sx(i), sy(m));
  });
  g.stroke();
  g.lineWidth = 1;
}

async function train(): Promise<void> {
  if (busy || !trainer) return;
  busy = true;
  stopRequested = false;
  setButtons();
  const steps = Math.max(1, Number($<HTMLInputElement>('steps').value) || 100);
  const t0 = performance.now();
  for (let i = 0; i < steps && !stopRequested; i++) {
    const { x, y } = batch();
    const r = trainer.train(x, y);
    tf.dispose([x, y]);
    losses.push(r.loss);
    if (i % 2 === 0 || i === steps - 1) {
      drawPlot();
      const sps = ((i + 1) / (performance.now() - t0)) * 1000;
      status(`${tf.getBackend()}: step ${losses.length}, loss ${r.loss.toFixed(3)}, ${sps.toFixed(1)} steps/s, ${tf.memory().numTensors} tensors`);
      await tf.nextFrame();
    }
  }
  drawPlot();
  busy = false;
  setButtons();
  (globalThis as unknown as { nlDemo: Record<string, unknown> }).nlDemo.trainedSteps = losses.length;
}

async function generate(prompt: string, states: StageStates | null, out: HTMLElement): Promise<string> {
  if (!lm) return '';
  const ids = Array.from(enc.encode(prompt));
  if (ids.length === 0) ids.push(32);
  out.textContent = prompt;
  const bytes: number[] = [];
  const temperature = Math.max(0, Number($<HTMLInputElement>('temp').value) || 0);
  await lm.generate(ids, { tokens: 160, temperature, topK: 0, seed: 7, onToken: (id) => {
    bytes.push(id);
    out.textContent = prompt + dec.decode(new Uint8Array(bytes));
  } }, states);
  return out.textContent ?? '';
}

function memoryStates(): StageStates | null {
  if (!trainer || !lm || !memorized) return null;
  return lm.nested.stages.map((_, i) => trainer!.memoryState(i) as Record<string, tf.Tensor> | null);
}

async function memorize(): Promise<void> {
  if (!trainer || busy) return;
  busy = true;
  setButtons();
  const text = enc.encode($<HTMLTextAreaElement>('fact').value);
  const ids = Int32Array.from(text);
  const x = tf.tensor2d(ids.slice(0, -1), [1, ids.length - 1], 'int32');
  const y = tf.tensor2d(ids.slice(1), [1, ids.length - 1], 'int32');
  trainer.resetMemory(); // close the training context (batch 8): the fact is a new context of batch 1
  const before = trainer.predict(x);
  const ceBefore = tf.tidy(() => scheduler.tokenCrossEntropy(before, y).mean().dataSync()[0]);
  before.dispose();
  // three passes over the fact, one context: the in-context levels (CMS, self-modifying Titans) learn it
  for (let pass = 0; pass < 3; pass++) trainer.memorize(x, y, { newContext: pass === 0, flush: true });
  const states = lm!.nested.stages.map((_, i) => trainer!.memoryState(i));
  const { logits } = lm!.forward(x, states as StageStates);
  const ceAfter = tf.tidy(() => scheduler.tokenCrossEntropy(logits, y).mean().dataSync()[0]);
  logits.dispose();
  tf.dispose([x, y]);
  memorized = true;
  $('memstatus').textContent = `memorised ${ids.length} bytes: loss on the fact ${ceBefore.toFixed(2)} -> ${ceAfter.toFixed(2)} nats/byte (outer weights unchanged)`;
  busy = false;
  setButtons();
}

function setButtons(): void {
  $<HTMLButtonElement>('train').disabled = busy;
  $<HTMLButtonElement>('stop').disabled = !busy;
  for (const id of ['generate', 'memorize', 'memgen', 'forget', 'backend']) ($(id) as HTMLButtonElement).disabled = busy;
}

async function switchBackend(name: string): Promise<void> {
  busy = true;
  setButtons();
  try {
    const info = await selectBackend(name, () => {}, { wasmPaths: './' });
    buildModel();
    status(`${info.active}: ready (${lm!.countParams().toLocaleString()} parameters); press Train`);
  } catch (e) {
    status(`${name}: ${(e as Error).message}`);
  }
  busy = false;
  setButtons();
}

async function main(): Promise<void> {
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  const text = await (await fetch('./corpus.txt')).text();
  corpus = enc.encode(text);
  $('corpus').textContent = text.slice(0, 1500);
  const gpu = (navigator as unknown as { gpu?: unknown }).gpu;
  if (!gpu) {
    const opt = $<HTMLSelectElement>('backend').querySelector('option[value=webgpu]') as HTMLOptionElement;
    opt.disabled = true;
    opt.textContent = 'WebGPU (not in this browser)';
  }
  $('backend').addEventListener('change', () => void switchBackend($<HTMLSelectElement>('backend').value));
  $('train').addEventListener('click', () => void train());
  $('stop').addEventListener('click', () => (stopRequested = true));
  $('generate').addEventListener('click', () => void generate($<HTMLInputElement>('prompt').value, null, $('sample')));
  $('memorize').addEventListener('click', () => void memorize());
  $('forget').addEventListener('click', () => {
    trainer?.resetMemory();
    memorized = false;
    $('memstatus').textContent = 'memory reset to the trained initial state';
  });
  $('memgen').addEventListener('click', () => void generate($<HTMLInputElement>('memprompt').value, memoryStates(), $('memsample')));
  (globalThis as unknown as { nlDemo: Record<string, unknown> }).nlDemo = { train, generate: () => generate($<HTMLInputElement>('prompt').value, null, $('sample')), memorize, memgen: () => generate($<HTMLInputElement>('memprompt').value, memoryStates(), $('memsample')), trainedSteps: 0, ready: false };
  await switchBackend('wasm');
  (globalThis as unknown as { nlDemo: Record<string, unknown> }).nlDemo.ready = true;
}

void main();
