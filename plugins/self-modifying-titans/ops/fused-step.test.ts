/**
 * The fused single-token step ('stable', wasm kernel NlSmtStableStep, ops/fused-step.ts) against the op path
 * (stableForward at T = 1, the reference): outputs and every state entry from the same state over many
 * tokens (several head counts, widths, switches, batch > 1, chunk boundaries of both groups), free-running
 * streams, the sentinel, fallbacks (tape, T > 1, kernel off), greedy generation of a HOPE language model
 * with the kernel on == off, no leaked tensors, and the escape hatch.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { selectBackend } from '../../../core/backend';
import { isProjectKernelRegistered, setSmtStepEnabled } from '../../../core/backend/kernels';
import { smtStepEnabledFromEnv } from '../../../core/backend/kernels/smt-step/kernel';
import { SMT_STABLE_STEP } from '../../../core/ops/fused-step';
import { startKernelCounter } from '../../../core/profiling';
import { assertClose } from '../../../core/testing';
import { disposeStates } from '../../../core';

const disposeState = (s: SmtState): void => tf.dispose(Object.values(s));
import { LanguageModel } from '../../hope';
import { selfModifyingTitansForward, type SmtOptions, type SmtState, type SmtWeights } from './forward';
import { fusedStepApplies } from './fused-step';
import { stableTestOptions, testWeights } from './test-helpers';

const TOL = 1e-5;

function closeRel(a: tf.Tensor, e: tf.Tensor, name: string, tol = TOL): void {
  const m = e.size ? e.abs().max().dataSync()[0] : 0;
  assertClose(a, e, { rtol: tol, atol: tol * m + 1e-7, name });
}

function compare(a: { y: tf.Tensor; state: SmtState }, e: { y: tf.Tensor; state: SmtState }, name: string, tol = TOL): void {
  closeRel(a.y, e.y, `${name}.y`, tol);
  expect(Object.keys(a.state).sort()).to.deep.equal(Object.keys(e.state).sort());
  for (const k of Object.keys(e.state)) {
    expect(a.state[k].shape, `${name}.${k} shape`).to.deep.equal(e.state[k].shape);
    closeRel(a.state[k], e.state[k], `${name}.${k}`, tol);
  }
}

/** Runs f with the fused kernel off (the op path), restoring the switch. */
function opPath<T>(f: () => T): T {
  const prev = setSmtStepEnabled(false);
  try {
    return f();
  } finally {
    setSmtStepEnabled(prev);
  }
}

/** One call, returning how many fused kernels it ran. */
function counted<T>(f: () => T): { r: T; fused: number; total: number } {
  const kc = startKernelCounter();
  const r = f();
  const c = kc.stop();
  return { r, fused: c.byKernel[SMT_STABLE_STEP] ?? 0, total: c.total };
}

interface Case {
  name: string;
  o: Partial<SmtOptions>;
  b: number;
}

const CASES: Case[] = [
  { name: 'H 2, dh 3, dhid 4 (test widths), B 2, chunks 4/4 (merged)', o: {}, b: 2 },
  { name: 'H 4, dh 8, dhid 16, B 3, chunks 5/5', o: { numHeads: 4, headDim: 8, hiddenDim: 16, chunkSize: 5, memChunkSize: 5 }, b: 3 },
  { name: 'H 1, dh 5, dhid 7 (odd widths), B 2, chunks 4/3 (two phases)', o: { numHeads: 1, headDim: 5, hiddenDim: 7, chunkSize: 4, memChunkSize: 3 }, b: 2 },
  { name: 'H 2, dh 16, dhid 32, B 1, tanh, no clip, adaptive q', o: { numHeads: 2, headDim: 16, hiddenDim: 32, act: 'tanh', gradClip: null, adaptiveQ: true }, b: 1 },
  { name: "static k, static v, no weight decay, dgd off, impl 'naive' (naiveDelta reference), B 2", o: { staticK: true, staticV: true, weightDecay: false, dgd: false, impl: 'naive' }, b: 2 },
  { name: 'static k, etaMax 1.8, slowRate 0.3, alphaMin 0.2, small clip, B 2', o: { staticK: true, etaMax: 1.8, slowRate: 0.3, alphaMin: 0.2, gradClip: 0.05 }, b: 2 },
];

describe('self-modifying-titans: fused single-token step (wasm kernel NlSmtStableStep)', function () {
  let previous = '';
  let wasOn = true;
  before(async function () {
    previous = tf.getBackend();
    await selectBackend('wasm');
    wasOn = setSmtStepEnabled(true); // tested even when NL_SMT_FUSED=off started the process with it off
  });
  after(async function () {
    setSmtStepEnabled(wasOn);
    if (previous && previous !== tf.getBackend()) await selectBackend(previous);
  });

  describe('fused == op path from the same state, every token (outputs and every state entry)', () => {
    for (const c of CASES) {
      it(c.name, () => {
        const o = stableTestOptions(c.o);
        const w = testWeights(o, 7);
        const d = o.numHeads * o.headDim;
        const tokens = 3 * Math.max(o.chunkSize, o.memChunkSize) + 2; // crosses chunk boundaries of both groups
        const xs = tf.randomNormal([c.b, tokens, d], 0, 1, 'float32', 11);
        let state: SmtState | null = null;
        for (let t = 0; t < tokens; t++) {
          tf.tidy(() => {
            const xt = xs.slice([0, t, 0], [c.b, 1, d]);
            const f = counted(() => selfModifyingTitansForward(o, w, xt, state));
            const ref = counted(() => opPath(() => selfModifyingTitansForward(o, w, xt, state)));
            expect(f.fused, 'fused kernel runs').to.equal(1);
            expect(ref.fused, 'op path').to.equal(0);
            compare(f.r, ref.r, `token ${t}`);
            if (state) disposeState(state);
            Object.values(ref.r.state).forEach((s) => tf.keep(s));
            state = ref.r.state; // carry the reference state
          });
        }
        if (state) disposeState(state);
        tf.dispose([xs, ...Object.values(w)]);
      });
    }
  });

  it('free-running streams: 60 tokens fused == 60 tokens on the op path == one op-path call (B 2)', () => {
    tf.tidy(() => {
      const o = stableTestOptions({ chunkSize: 8, memChunkSize: 8, numHeads: 2, headDim: 4, hiddenDim: 8 });
      const w = testWeights(o, 3);
      const t = 60;
      const xs = tf.randomNormal([2, t, 8], 0, 1, 'float32', 4);
      const run = (): { y: tf.Tensor; state: SmtState } => {
        let st: SmtState | null = null;
        const ys: tf.Tensor[] = [];
        for (let i = 0; i < t; i++) {
          const r = selfModifyingTitansForward(o, w, xs.slice([0, i, 0], [2, 1, 8]), st);
          ys.push(r.y);
          st = r.state;
        }
        return { y: tf.concat(ys, 1), state: st as SmtState };
      };
      const fused = run();
      const ops = opPath(run);
      const one = opPath(() => selfModifyingTitansForward(o, w, xs, null));
      compare(fused, ops, 'fused vs op path, token by token', 1e-4);
      compare(fused, one, 'fused vs one call', 1e-4);
    });
  });

  it('the op path runs under a gradient tape, for T > 1, and with the kernel off; gradients flow', () => {
    tf.tidy(() => {
      const o = stableTestOptions();
      const w = testWeights(o, 2);
      const x1 = tf.randomNormal([2, 1, 6], 0, 1, 'float32', 1);
      expect(fusedStepApplies(o, w, x1)).to.equal(true);
      expect(fusedStepApplies(o, w, tf.randomNormal([2, 3, 6]))).to.equal(false);
      expect(fusedStepApplies({ ...o, parameterization: 'paper', momentum: 0.5 }, w, x1)).to.equal(false);
      expect(opPath(() => fusedStepApplies(o, w, x1))).to.equal(false);
      let inside: boolean | null = null;
      const g = tf.grad((x: tf.Tensor) => {
        inside = fusedStepApplies(o, w, x);
        return selfModifyingTitansForward(o, w, x, null).y.sum();
      })(x1);
      expect(inside).to.equal(false);
      const gRef = opPath(() => tf.grad((x: tf.Tensor) => selfModifyingTitansForward(o, w, x, null).y.sum())(x1));
      closeRel(g, gRef, 'dy/dx');
      const many = counted(() => selfModifyingTitansForward(o, w, tf.randomNormal([2, 5, 6], 0, 1, 'float32', 2), null));
      expect(many.fused).to.equal(0);
    });
  });

  describe('sentinel: the same error as the op path', () => {
    const o = stableTestOptions({ sentinel: true });
    it("non-finite input: memory 'k' at token 0", () => {
      tf.tidy(() => {
        const w = testWeights(o, 1);
        const x = tf.randomNormal([2, 1, 6]).mul(tf.tensor1d([1, 1, NaN, 1, 1, 1]));
        const msg = (f: () => unknown): string => {
          try {
            f();
          } catch (e) {
            return (e as Error).message;
          }
          return 'no error';
        };
        const before = tf.memory().numTensors;
        const fused = msg(() => selfModifyingTitansForward(o, w, x, null));
        expect(tf.memory().numTensors).to.equal(before);
        const ref = msg(() => opPath(() => selfModifyingTitansForward(o, w, x, null)));
        expect(fused).to.equal(ref);
        expect(fused).to.contain("memory 'k' at token index 0");
      });
    });
    it("non-finite M_mem state: 'mem' (reads of the phase-1 memories are finite)", () => {
      tf.tidy(() => {
        const w = testWeights(o, 1);
        const x = tf.randomNormal([2, 1, 6]);
        const s0 = selfModifyingTitansForward(o, w, x, null).state;
        const bad = { ...s0, memW1: s0.memW1.mul(tf.scalar(Infinity)) };
        const msg = (f: () => unknown): string => {
          try {
            f();
          } catch (e) {
            return (e as Error).message;
          }
          return 'no error';
        };
        const fused = msg(() => selfModifyingTitansForward(o, w, x, bad));
        const ref = msg(() => opPath(() => selfModifyingTitansForward(o, w, x, bad)));
        expect(fused).to.equal(ref);
        expect(fused).to.contain("memory 'mem' at token index 0");
      });
    });
  });

  describe('HOPE language model generation', () => {
    const config = {
      vocabSize: 40,
      dModel: 16,
      blocks: [0, 1].map(() => ({
        className: 'NlHopeBlock',
        config: {
          mixer: { className: 'NlSelfModifyingTitans', config: { numHeads: 2, chunkSize: 4, memChunkSize: 4 } },
          ffn: { className: 'NlContinuumMemorySystem', config: { variant: 'sequential', expansion: 1, levels: [{ period: 4, learningRate: 0.01 }, { period: 0 }] } },
        },
      })),
    };

    it('greedy generation: the same tokens with the kernel on and off; one fused kernel per SMT layer and token', async () => {
      const lm = new LanguageModel(config, { seed: 5 });
      try {
        const prompt = [1, 2, 3, 4, 5, 6, 7];
        const kc = startKernelCounter();
        const on = await lm.generate(prompt, { tokens: 30, temperature: 0 });
        const fused = kc.stop().byKernel[SMT_STABLE_STEP] ?? 0;
        const off = await opPath(() => lm.generate(prompt, { tokens: 30, temperature: 0 }));
        expect(on).to.deep.equal(off);
        expect(fused).to.equal(29 * 2); // the first token comes from the prompt call (T = 7, op path)
        // logits of a continued context agree too
        const st = lm.initialStates(1);
        const ids = tf.tensor2d([prompt], [1, prompt.length], 'int32');
        const r = lm.forward(ids, st);
        const next = tf.tensor2d([[9]], [1, 1], 'int32');
        const a = lm.forward(next, r.states);
        const b = opPath(() => lm.forward(next, r.states));
        closeRel(a.logits, b.logits, 'logits');
        tf.dispose([ids, next, r.logits, a.logits, b.logits]);
        [st, r.states, a.states, b.states].forEach(disposeStates);
      } finally {
        lm.dispose();
      }
    });

    it('no leaked tensors or heap growth over generation with the fused step', async () => {
      const lm = new LanguageModel(config, { seed: 6 });
      try {
        await lm.generate([1, 2, 3], { tokens: 5, temperature: 0 }); // warm-up
        const t0 = tf.memory().numTensors;
        const b0 = tf.memory().numBytes;
        for (let i = 0; i < 3; i++) await lm.generate([1, 2, 3], { tokens: 40, temperature: 0.8, seed: i });
        expect(tf.memory().numTensors).to.equal(t0);
        expect(tf.memory().numBytes).to.equal(b0);
        // the layer's streaming API: state in, state out, nothing left behind
        const smt = (lm.blocks[0] as unknown as { mixer: { initialState(b: number): SmtState; step(x: tf.Tensor, s: SmtState): { y: tf.Tensor; state: SmtState } } }).mixer;
        let s = smt.initialState(2);
        const n0 = tf.memory().numTensors;
        const x = tf.randomNormal([2, 1, 16]);
        for (let i = 0; i < 20; i++) {
          const r = smt.step(x, s);
          disposeState(s);
          r.y.dispose();
          s = r.state;
        }
        expect(tf.memory().numTensors).to.equal(n0 + 1);
        x.dispose();
        disposeState(s);
      } finally {
        lm.dispose();
      }
    });
  });

  describe('escape hatch', () => {
    it('setSmtStepEnabled(false) unregisters the kernel (op path), true registers it again', () => {
      tf.tidy(() => {
        const o = stableTestOptions();
        const w: SmtWeights = testWeights(o, 1);
        const x = tf.randomNormal([1, 1, 6]);
        expect(setSmtStepEnabled(false)).to.equal(true);
        try {
          expect(tf.getKernel(SMT_STABLE_STEP, 'wasm')).to.equal(undefined);
          expect(counted(() => selfModifyingTitansForward(o, w, x, null)).fused).to.equal(0);
        } finally {
          expect(setSmtStepEnabled(true)).to.equal(false);
        }
        expect(isProjectKernelRegistered(SMT_STABLE_STEP)).to.equal(true);
        expect(counted(() => selfModifyingTitansForward(o, w, x, null)).fused).to.equal(1);
      });
    });
    it('NL_SMT_FUSED=off in the environment starts with the kernel off', () => {
      expect(smtStepEnabledFromEnv({ NL_SMT_FUSED: 'off' })).to.equal(false);
      expect(smtStepEnabledFromEnv({})).to.equal(true);
      expect(smtStepEnabledFromEnv({ NL_SMT_FUSED: 'on' })).to.equal(true);
    });
  });
});
