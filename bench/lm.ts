/**
 * npm run bench -- lm [--presets=hope-small,transformer-small,...] [--T=512] [--B=4] [--steps=2]
 *                     [--gen=hope-small,transformer-small] [--contexts=256,1024,4096] [--genTokens=16] [--backend=wasm]
 * 1. Training tokens/s (NestedTrainer.train, fwd + bwd + in-context updates + Adam) and peak tensor
 *    memory (tf.memory().numBytes high-water mark across the steps) for each preset at T, B.
 * 2. Generation tokens/s for hope-small and transformer-small after a context of N tokens (prefill
 *    not timed): recurrent HOPE's per-token cost should stay flat, attention's grows with N.
 * Wall-clock on a possibly shared machine: noisy. hope presets are slow (self-modifying Titans).
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/backend';
import { PRESET_NAMES, languageModelConfig, loadPreset } from '../cli/config';
import { createRun, disposeRun } from '../cli/run';
import { LanguageModel } from '../plugins/hope/lm';
import { disposeStates } from '../plugins/scheduler/model';
import { emit, progress } from './lib';

function flag(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
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
    let peak = 0;
    const sample = (): void => {
      peak = Math.max(peak, tf.memory().numBytes);
    };
    progress(`${name}: ${r.lm.countParams()} parameters, training B=${B} T=${T}`);
    r.trainer.train(inp, tgt); // warm-up (kernels, optimizer slots)
    const times: number[] = [];
    for (let s = 0; s < steps; s++) {
      const t0 = Date.now();
      r.trainer.train(inp, tgt);
      times.push(Date.now() - t0);
      sample();
    }
    // tfjs has no allocator high-water mark: numBytes is sampled after each step (live tensors, a lower bound on the peak)
    const ms = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
    emit({ suite, case: `train/${name}`, metric: 'tokens_per_s', value: (B * T) / (ms / 1000), unit: 'tok/s', T, B, params: r.lm.countParams() });
    emit({ suite, case: `train/${name}`, metric: 'live_bytes_after_step', value: peak, unit: 'bytes', T, B });
    tf.dispose([x, inp, tgt]);
    disposeRun(r);
  }
  const gen = (flag(args, 'gen') ?? 'hope-small,transformer-small').split(',').filter(Boolean);
  const contexts = (flag(args, 'contexts') ?? '256,1024,4096').split(',').map(Number);
  const genTokens = Number(flag(args, 'genTokens') ?? 16);
  for (const name of gen) {
    const lm = new LanguageModel(languageModelConfig(loadPreset(name)));
    for (const n of contexts) {
      progress(`${name}: generation after ${n} tokens of context`);
      // prefill in pieces of 256 tokens (carried states), not timed
      let st = lm.initialStates(1);
      for (let a = 0; a < n; a += 256) {
        const ids = randomIds(1, Math.min(256, n - a), a + 3);
        const r = lm.forward(ids, st);
        disposeStates(st);
        st = r.states;
        tf.dispose([ids, r.logits]);
      }
      const t0 = Date.now();
      let id = 32;
      for (let i = 0; i < genTokens; i++) {
        const ids = tf.tensor2d([[id]], [1, 1], 'int32');
        const r = lm.forward(ids, st);
        disposeStates(st);
        st = r.states;
        const a = tf.tidy(() => r.logits.reshape([-1]).argMax());
        id = (await a.data())[0];
        tf.dispose([ids, r.logits, a]);
      }
      const secs = (Date.now() - t0) / 1000;
      disposeStates(st);
      emit({ suite, case: `generate/${name}`, metric: 'tokens_per_s', value: genTokens / secs, unit: 'tok/s', context: n });
    }
    lm.dispose();
  }
}
