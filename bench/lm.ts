/**
 * npm run bench -- lm [--presets=hope-small,transformer-small,...] [--T=512] [--B=4] [--steps=2]
 *                     [--cases=hope-d128x2] [--workers=1,2]
 *                     [--gen=hope-small,transformer-small] [--contexts=256,1024,4096] [--genTokens=16]
 *                     [--smtFused=on,off] [--repeats=3] [--backend=wasm]
 * 1. Training tokens/s (NestedTrainer.train, fwd + bwd + in-context updates + optimizer; median of
 *    --steps timed steps after one warm-up step and one measured step) for each preset at T, B and each
 *    fixed case of --cases (CASES below: their own T, B; '' for none), once per --workers count (data
 *    parallelism over worker_threads, run/parallel.ts; 1 = this thread only). The worker counts of a
 *    case are an A/B set: built side by side, their timed steps interleaved (the order rotating per
 *    round) so machine load hits them alike; `speedup_vs_1_worker` is the ratio of their medians.
 *    Also per run: registered-kernel calls per training step (core/profiling, counted on the measured
 *    step; with workers: the sum over ranks and the largest rank), peak memory: the high-water mark of
 *    the bytes in live tfjs tensor buffers (exact, sampled at every allocation; weights, optimizer state
 *    and activations included; with workers: per rank, the largest rank reported), and the process RSS
 *    after the steps (includes the wasm heaps, which never shrink, and the worker threads), and
 *    `cores_busy`: process CPU time (all threads) / wall time over the timed steps, and `cpu_ms_per_step`
 *    (all threads; on a loaded machine, cpu(1 worker) / (cpu(N) / N) estimates the speedup on N idle cores).
 * 2. Generation tokens/s for hope-small and transformer-small after a context of N tokens (prefill in
 *    pieces of 256 with carried states, not timed): every context is prefilled first, then
 *    --repeats rounds time --genTokens greedy tokens at each context in turn (interleaved, so machine
 *    load hits all contexts alike); the median round is reported. Recurrent HOPE's per-token cost
 *    should stay flat, attention's grows with N. Also kernel calls per generated token (all rounds).
 *    Models with self-modifying Titans run as an A/B pair (--smtFused=on,off, default both): the fused
 *    single-token step (core/backend/kernels/smt-step) on and off, in the same process from copies of the same
 *    prefilled states, rounds interleaved with the order rotating; rows carry `smtFused`, plus
 *    `smt_fused_speedup` (tok/s on / off) and `smt_fused_kernel_call_ratio` (calls off / on) per context.
 * Wall-clock on a possibly shared machine: noisy. hope presets are slow (self-modifying Titans).
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/backend';
import { PRESET_NAMES, languageModelConfig, loadPreset } from '../run';
import { startRunWorkers } from '../run';
import { createRun, disposeRun, type Run } from '../run';
import { startKernelCounter, startPeakBytes } from '../core/profiling';
import { setSmtStepEnabled } from '../core/backend/kernels';
import type { DataParallelTrainer } from '../plugins/scheduler';
import { LanguageModel } from '../plugins/hope';
import { disposeStates, type StageStates } from '../core';
import { emit, progress } from './lib';

function flag(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/** Moved to core/profiling (kept here for existing imports). */
export { withPeakBytes } from '../core/profiling';

/**
 * Fixed training cases (their own T and B; --T/--B do not apply). hope-d128x2 is issue 18's reference
 * configuration: HOPE at d_model 128, 2 HOPE blocks, 4 heads, T 256, B 4, SMT chunks 16/16, CMS periods
 * 16 and 64 with hidden 2d, AdamW (issue 18 measured ~820 tokens/s on a quiet machine, one core; PyTorch
 * one thread ~985).
 */
const CASES: Record<string, { preset: string; T: number; B: number; patch: (cfg: ReturnType<typeof loadPreset>) => unknown }> = {
  'hope-d128x2': {
    preset: 'hope-small',
    T: 256,
    B: 4,
    patch: (cfg) => ({
      ...cfg,
      name: 'hope-d128x2',
      model: {
        ...cfg.model,
        dModel: 128,
        blocks: [
          {
            className: 'NlHopeBlock',
            repeat: 2,
            config: {
              mixer: { className: 'NlSelfModifyingTitans', config: { numHeads: 4, chunkSize: 16, memChunkSize: 16 } },
              ffn: { className: 'NlContinuumMemorySystem', config: { variant: 'sequential', expansion: 2, levels: [{ period: 16, learningRate: 0.01 }, { period: 64, learningRate: 0.005 }] } },
            },
          },
        ],
      },
      training: { ...cfg.training, optimizer: 'adamw', learningRate: 0.001, weightDecay: 0.01 },
    }),
  },
};

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
  const workersList = (flag(args, 'workers') ?? '1,2').split(',').map(Number);
  for (const w of workersList) if (!Number.isInteger(w) || w < 1) throw new Error(`--workers: integers >= 1, got '${flag(args, 'workers')}'`);
  const caseNames = (flag(args, 'cases') ?? Object.keys(CASES).join(',')).split(',').filter(Boolean);
  for (const c of caseNames) if (!CASES[c]) throw new Error(`--cases: unknown case '${c}' (known: ${Object.keys(CASES).join(', ')})`);
  const trainCases = [
    ...caseNames.map((c) => ({ name: c, T: CASES[c].T, B: CASES[c].B, cfg: CASES[c].patch(loadPreset(CASES[c].preset)) })),
    ...presets.map((p) => ({ name: p, T, B, cfg: loadPreset(p) as unknown })),
  ];
  for (const tc of trainCases) await trainAB(tc, workersList, steps, info.active);
  const gen = (flag(args, 'gen') ?? 'hope-small,transformer-small').split(',').filter(Boolean);
  const contexts = (flag(args, 'contexts') ?? '256,1024,4096').split(',').map(Number);
  const genTokens = Number(flag(args, 'genTokens') ?? 16);
  const repeats = Number(flag(args, 'repeats') ?? 3);
  const fusedArms = (flag(args, 'smtFused') ?? 'on,off').split(',').filter(Boolean);
  for (const f of fusedArms) if (f !== 'on' && f !== 'off') throw new Error(`--smtFused: 'on', 'off' or 'on,off', got '${flag(args, 'smtFused')}'`);
  for (const name of gen) {
    const cfg = languageModelConfig(loadPreset(name));
    const lm = new LanguageModel(cfg, { seed: 1 });
    // A/B of the fused self-modifying-Titans step (core/backend/kernels/smt-step) for models that have the mixer
    const arms = JSON.stringify(cfg).includes('NlSelfModifyingTitans') ? fusedArms : ['on'];
    // prefill every context (pieces of 256 tokens, carried states), not timed; each arm continues from a copy
    const st: StageStates[][] = contexts.map((n) => {
      progress(`${name}: prefill ${n} tokens`);
      let s = lm.initialStates(1);
      for (let a = 0; a < n; a += 256) {
        const ids = randomIds(1, Math.min(256, n - a), a + 3);
        const r = lm.forward(ids, s);
        disposeStates(s);
        s = r.states;
        tf.dispose([ids, r.logits]);
      }
      return arms.map((_, i) => (i === 0 ? s : s.map((x) => (x ? (Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.clone()])) as typeof x) : x))));
    });
    const secs: number[][][] = contexts.map(() => arms.map(() => []));
    const calls = contexts.map(() => arms.map(() => 0));
    const ids = contexts.map(() => arms.map(() => 32));
    for (let rep = 0; rep < repeats; rep++) {
      for (let c = 0; c < contexts.length; c++) {
        for (let j = 0; j < arms.length; j++) {
          const a = (rep + j) % arms.length; // rotate the order of the arms per round
          progress(`${name}: round ${rep + 1}/${repeats}, ${genTokens} tokens after ${contexts[c]}, smt fused ${arms[a]}`);
          const previous = setSmtStepEnabled(arms[a] === 'on');
          try {
            const kc = startKernelCounter();
            const t0 = performance.now();
            for (let i = 0; i < genTokens; i++) {
              const x = tf.tensor2d([[ids[c][a]]], [1, 1], 'int32');
              const r = lm.forward(x, st[c][a]);
              disposeStates(st[c][a]);
              st[c][a] = r.states;
              const am = tf.tidy(() => r.logits.reshape([-1]).argMax());
              ids[c][a] = (await am.data())[0];
              tf.dispose([x, r.logits, am]);
            }
            secs[c][a].push((performance.now() - t0) / 1000);
            calls[c][a] += kc.stop().total;
          } finally {
            setSmtStepEnabled(previous);
          }
        }
      }
    }
    const load = os.loadavg()[0];
    contexts.forEach((n, c) => {
      const tps = arms.map((_, a) => genTokens / median(secs[c][a]));
      arms.forEach((arm, a) => {
        const extra = { context: n, genTokens, repeats, smtFused: arm, loadavg1: Number(load.toFixed(2)) };
        emit({ suite, case: `generate/${name}`, metric: 'tokens_per_s', value: tps[a], unit: 'tok/s', ...extra, roundsSeconds: secs[c][a].map((x) => Number(x.toFixed(4))) });
        emit({ suite, case: `generate/${name}`, metric: 'kernel_calls_per_token', value: calls[c][a] / (genTokens * repeats), unit: 'calls', ...extra });
      });
      const on = arms.indexOf('on');
      const off = arms.indexOf('off');
      if (on >= 0 && off >= 0) {
        emit({ suite, case: `generate/${name}`, metric: 'smt_fused_speedup', value: tps[on] / tps[off], unit: 'x', context: n, genTokens, repeats, loadavg1: Number(load.toFixed(2)) });
        emit({ suite, case: `generate/${name}`, metric: 'smt_fused_kernel_call_ratio', value: calls[c][off] / calls[c][on], unit: 'x', context: n, genTokens, repeats });
      }
    });
    st.forEach((arm) => arm.forEach(disposeStates));
    lm.dispose();
  }
}

interface TrainCase {
  name: string;
  T: number;
  B: number;
  cfg: unknown;
}

/** One case at each worker count, built side by side, timed steps interleaved (see the header). */
async function trainAB(tc: TrainCase, workersList: number[], steps: number, backend: string): Promise<void> {
  const suite = 'lm';
  const { name, T, B } = tc;
  const cfg = tc.cfg as ReturnType<typeof loadPreset>;
  const x = randomIds(B, T + 1, 1);
  const inp = x.slice([0, 0], [B, T]);
  const tgt = x.slice([0, 1], [B, T]);
  type Arm = { workers: number; r: Run; dp: DataParallelTrainer | null; times: number[]; cpuMs: number; kernels: number; kernelsMaxRank: number; peak: number };
  const arms: Arm[] = [];
  try {
    for (const w of workersList) {
      const r = createRun({ ...cfg, training: { ...cfg.training, batchSize: B, seqLength: T } });
      arms.push({ workers: w, r, dp: null, times: [], cpuMs: 0, kernels: 0, kernelsMaxRank: 0, peak: 0 });
      if (w > 1) {
        progress(`${name}: starting ${w - 1} worker thread(s)`);
        arms[arms.length - 1].dp = await startRunWorkers(r, w, backend);
      }
    }
    progress(`${name}: ${arms[0].r.lm.countParams()} parameters, training B=${B} T=${T}, workers ${workersList.join(' vs ')}`);
    const step = async (a: Arm, measure: boolean): Promise<void> => {
      if (a.dp) {
        const res = await a.dp.train(inp, tgt, { measure });
        if (measure && res.measurement) {
          a.kernels = res.measurement.reduce((s, m) => s + m.kernelCalls, 0);
          a.kernelsMaxRank = Math.max(...res.measurement.map((m) => m.kernelCalls));
          a.peak = Math.max(...res.measurement.map((m) => m.peakBytes));
        }
      } else if (measure) {
        const k = startKernelCounter();
        const p = startPeakBytes();
        try {
          a.r.trainer.train(inp, tgt);
        } finally {
          a.peak = Math.max(a.peak, p.stop());
          a.kernels = a.kernelsMaxRank = k.stop().total;
        }
      } else {
        a.r.trainer.train(inp, tgt); // returns after reading the loss: the step is computed
      }
    };
    for (const a of arms) await step(a, false); // warm-up (kernels, optimizer slots)
    for (const a of arms) await step(a, true); // kernel calls and peak bytes (untimed)
    for (let s = 0; s < steps; s++) {
      for (let k = 0; k < arms.length; k++) {
        const a = arms[(s + k) % arms.length]; // rotate which arm goes first
        const c0 = process.cpuUsage(); // every thread of the process (worker threads included)
        const t0 = Date.now();
        await step(a, false);
        a.times.push(Date.now() - t0);
        const c = process.cpuUsage(c0);
        a.cpuMs += (c.user + c.system) / 1000;
      }
    }
    const base = arms.find((a) => a.workers === 1);
    for (const a of arms) {
      const ms = median(a.times);
      const extra = { T, B, steps, workers: a.workers, params: a.r.lm.countParams(), loadavg: os.loadavg().map((v) => Number(v.toFixed(2))), stepsMs: a.times };
      emit({ suite, case: `train/${name}`, metric: 'tokens_per_s', value: (B * T) / (ms / 1000), unit: 'tok/s', ...extra });
      // cores busy = process CPU time / wall time over the timed steps (2 = both cores of this machine)
      emit({ suite, case: `train/${name}`, metric: 'cores_busy', value: a.cpuMs / a.times.reduce((x, y) => x + y, 0), unit: 'cores', T, B, workers: a.workers });
      // CPU time per step, all threads: less sensitive to machine load than wall time; with N workers
      // cpu(1) / (cpu(N) / N) is the speedup N idle cores would give (perfect balance)
      emit({ suite, case: `train/${name}`, metric: 'cpu_ms_per_step', value: a.cpuMs / a.times.length, unit: 'ms', T, B, workers: a.workers });
      emit({ suite, case: `train/${name}`, metric: 'kernel_calls_per_step', value: a.kernels, unit: 'calls', T, B, workers: a.workers, ...(a.workers > 1 ? { largestRank: a.kernelsMaxRank } : {}) });
      emit({ suite, case: `train/${name}`, metric: 'peak_tensor_bytes', value: a.peak, unit: 'bytes', T, B, workers: a.workers, ...(a.workers > 1 ? { per: 'largest rank' } : {}) });
      if (base && a !== base) emit({ suite, case: `train/${name}`, metric: 'speedup_vs_1_worker', value: median(base.times) / ms, unit: 'x', T, B, workers: a.workers });
    }
    emit({ suite, case: `train/${name}`, metric: 'rss_after_steps', value: process.memoryUsage().rss, unit: 'bytes', T, B, workers: workersList });
  } finally {
    for (const a of arms) {
      await a.dp?.close();
      disposeRun(a.r);
    }
    tf.dispose([x, inp, tgt]);
  }
}
