/**
 * npm run bench -- lm [--presets=hope-small,transformer-small,...] [--T=512] [--B=4] [--steps=2]
 *                     [--gen=hope-small,transformer-small] [--contexts=256,1024,4096] [--genTokens=16]
 *                     [--repeats=3] [--backend=wasm]
 * 1. Training tokens/s (NestedTrainer.train, fwd + bwd + in-context updates + Adam; median of --steps
 *    timed steps after one warm-up step) for each preset at T, B, and peak memory: the high-water mark
 *    of the bytes in live tfjs tensor buffers over the warm-up and timed steps (withPeakBytes: exact,
 *    sampled at every allocation; weights, optimizer state and activations included) and the process
 *    RSS after the steps (includes the wasm heap, which never shrinks, so it is the process's high
 *    water so far, and everything else in the process).
 * 2. Generation tokens/s for hope-small and transformer-small after a context of N tokens (prefill in
 *    pieces of 256 with carried states, not timed): every context is prefilled first, then
 *    --repeats rounds time --genTokens greedy tokens at each context in turn (interleaved, so machine
 *    load hits all contexts alike); the median round is reported. Recurrent HOPE's per-token cost
 *    should stay flat, attention's grows with N.
 * Wall-clock on a possibly shared machine: noisy. hope presets are slow (self-modifying Titans).
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/backend';
import { PRESET_NAMES, languageModelConfig, loadPreset } from '../cli/config';
import { createRun, disposeRun } from '../cli/run';
import { LanguageModel } from '../plugins/hope/lm';
import { disposeStates, type StageStates } from '../plugins/scheduler/model';
import { emit, progress } from './lib';

function flag(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/**
 * Runs `fn` while recording the high-water mark of the bytes held by live tensor buffers: +bytes when
 * the engine tracks a new data buffer (trackTensor with an unseen dataId), -bytes when it removes one
 * (removeDataId), from tf.memory().numBytes at the start (between steps: weights, optimizer slots,
 * carried states). Unlike tf.memory().numBytes, a buffer allocated inside `fn` and shared by views
 * (reshape, clone) counts once. Hooks on tfjs' engine (benchmark only; restored afterwards).
 */
export function withPeakBytes<T>(fn: () => T): { result: T; peakBytes: number } {
  type Info = { bytes: number; backend: unknown };
  const engine = tf.engine() as unknown as {
    trackTensor: (a: tf.Tensor, backend: unknown) => void;
    removeDataId: (dataId: object, backend: unknown) => void;
    state: { tensorInfo: { has(k: object): boolean; get(k: object): Info | undefined } };
  };
  const info = engine.state.tensorInfo; // a WeakMap: not enumerable, so the start is tf.memory().numBytes
  let live = tf.memory().numBytes;
  let peak = live;
  const track = engine.trackTensor;
  const remove = engine.removeDataId;
  engine.trackTensor = (a: tf.Tensor, backend: unknown): void => {
    const seen = info.has(a.dataId);
    track.call(engine, a, backend);
    if (!seen && info.has(a.dataId)) {
      live += info.get(a.dataId)!.bytes;
      if (live > peak) peak = live;
    }
  };
  engine.removeDataId = (dataId: object, backend: unknown): void => {
    const i = info.get(dataId);
    remove.call(engine, dataId, backend);
    if (i && !info.has(dataId)) live -= i.bytes;
  };
  try {
    return { result: fn(), peakBytes: peak };
  } finally {
    engine.trackTensor = track;
    engine.removeDataId = remove;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function randomIds(b: number, t: number, seed: number): tf.Tensor2D {
  return tf.tidy(() => tf.randomUniform([b, t], 0, 256, 'int32', seed) as tf.Tensor2D);
}

export async function run(args: string[]): Promise<void> {
  const info = await selectBackend(flag(args, 'backend') ?? process.env.NL_BACKEND ?? 'wasm');
  progress(info.reason);
  const suite = 'lm';
  const T = Number(flag(args, 'T') ?? 512);
  const B = Number(flag(args, 'B') ?? 4);
  const steps = Number(flag(args, 'steps') ?? 2);
  const presets = (flag(args, 'presets') ?? PRESET_NAMES.filter((p) => p !== 'hope-tiny').join(',')).split(',').filter(Boolean);
  for (const name of presets) {
    const cfg = loadPreset(name);
    const r = createRun({ ...cfg, training: { ...cfg.training, batchSize: B, seqLength: T } });
    const x = randomIds(B, T + 1, 1);
    const inp = x.slice([0, 0], [B, T]);
    const tgt = x.slice([0, 1], [B, T]);
    progress(`${name}: ${r.lm.countParams()} parameters, training B=${B} T=${T}`);
    const { result: times, peakBytes } = withPeakBytes(() => {
      r.trainer.train(inp, tgt); // warm-up (kernels, optimizer slots)
      const ts: number[] = [];
      for (let s = 0; s < steps; s++) {
        const t0 = Date.now();
        r.trainer.train(inp, tgt); // returns after reading the loss: the step is computed
        ts.push(Date.now() - t0);
      }
      return ts;
    });
    const ms = median(times);
    emit({ suite, case: `train/${name}`, metric: 'tokens_per_s', value: (B * T) / (ms / 1000), unit: 'tok/s', T, B, steps, params: r.lm.countParams() });
    emit({ suite, case: `train/${name}`, metric: 'peak_tensor_bytes', value: peakBytes, unit: 'bytes', T, B });
    emit({ suite, case: `train/${name}`, metric: 'rss_after_steps', value: process.memoryUsage().rss, unit: 'bytes', T, B });
    tf.dispose([x, inp, tgt]);
    disposeRun(r);
  }
  const gen = (flag(args, 'gen') ?? 'hope-small,transformer-small').split(',').filter(Boolean);
  const contexts = (flag(args, 'contexts') ?? '256,1024,4096').split(',').map(Number);
  const genTokens = Number(flag(args, 'genTokens') ?? 16);
  const repeats = Number(flag(args, 'repeats') ?? 3);
  for (const name of gen) {
    const lm = new LanguageModel(languageModelConfig(loadPreset(name)), { seed: 1 });
    // prefill every context (pieces of 256 tokens, carried states), not timed
    const st: StageStates[] = contexts.map((n) => {
      progress(`${name}: prefill ${n} tokens`);
      let s = lm.initialStates(1);
      for (let a = 0; a < n; a += 256) {
        const ids = randomIds(1, Math.min(256, n - a), a + 3);
        const r = lm.forward(ids, s);
        disposeStates(s);
        s = r.states;
        tf.dispose([ids, r.logits]);
      }
      return s;
    });
    const secs: number[][] = contexts.map(() => []);
    const ids = contexts.map(() => 32);
    for (let rep = 0; rep < repeats; rep++) {
      for (let c = 0; c < contexts.length; c++) {
        progress(`${name}: round ${rep + 1}/${repeats}, ${genTokens} tokens after ${contexts[c]}`);
        const t0 = Date.now();
        for (let i = 0; i < genTokens; i++) {
          const x = tf.tensor2d([[ids[c]]], [1, 1], 'int32');
          const r = lm.forward(x, st[c]);
          disposeStates(st[c]);
          st[c] = r.states;
          const a = tf.tidy(() => r.logits.reshape([-1]).argMax());
          ids[c] = (await a.data())[0];
          tf.dispose([x, r.logits, a]);
        }
        secs[c].push((Date.now() - t0) / 1000);
      }
    }
    contexts.forEach((n, c) => {
      const s = median(secs[c]);
      emit({ suite, case: `generate/${name}`, metric: 'tokens_per_s', value: genTokens / s, unit: 'tok/s', context: n, genTokens, repeats, roundsSeconds: secs[c].map((x) => Number(x.toFixed(3))) });
    });
    st.forEach(disposeStates);
    lm.dispose();
  }
}
