/**
 * smt-step.wasm (smt-step.c, the fused 'stable' self-modifying-Titans token step): the committed artifacts
 * agree with each other and with the source, the module cannot touch tfjs memory it does not own (no data
 * segment, imports only env.memory, stack relocated), the kernel refuses inputs of the wrong shape, and its
 * scratch and refused outputs are freed. Its values are tested against the op path in
 * plugins/self-modifying-titans/ops/fused-step.test.ts (core tests do not import plugins).
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../../select';
import { FusedNonFiniteError, SMT_STABLE_STEP, fusedKernelUsable, type SmtStableStepAttrs } from '../../../ops/fused-step';
import { setSmtStepEnabled } from '../index';
import { asWasmBackend } from '../wasm-internals';
import { sourceSha256, wasmExports, wasmImports, wasmSections } from '../gemm/wasm-sections';
import { SMT_STEP_SOURCE_SHA256, SMT_STEP_WASM_BASE64 } from './smt-step-wasm';
import { smtStepModule } from './instance';

function heapBytes(): number {
  return asWasmBackend(tf.backend(), 'test').wasm.HEAPU8.length;
}

const ATTRS: SmtStableStepAttrs = {
  numHeads: 2, headDim: 4, hiddenDim: 8, hasK: true, hasV: true, hasAlpha: true, hasQ: false,
  dgd: true, act: 'silu', gradClip: 1, etaMax: 1, alphaMin: 0.5, slowRate: 0.1, check: true, closesChunk: false, closesMemChunk: false,
};

/** Inputs of a [b, 1, 8] step at ATTRS' sizes (4 memories), small random values. */
function inputs(b: number): tf.NamedTensorMap {
  const r = (shape: number[], seed: number): tf.Tensor => tf.randomNormal(shape, 0, 0.5, 'float32', seed);
  const d = 8;
  const g1 = [b, 4, 2, 4, 8];
  const g2 = [b, 4, 2, 8, 4];
  return {
    x: r([b, 1, d], 1), kKernel: r([d, d], 2), vKernel: r([d, d], 3), qKernel: r([d, d], 4), gateKernel: r([d, d], 5), outKernel: r([d, d], 6),
    normGain: r([d], 7), etaBias: r([2], 8), alphaBias: r([2], 9),
    W1: r(g1, 10), W2: r(g2, 11), W1snap: r(g1, 12), W2snap: r(g2, 13),
    memW1: r([b, 2, 4, 8], 14), memW2: r([b, 2, 8, 4], 15), memW1snap: r([b, 2, 4, 8], 16), memW2snap: r([b, 2, 8, 4], 17),
  };
}

describe('project kernel NlSmtStableStep (smt-step.wasm)', function () {
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

  const wasmBytes = new Uint8Array(readFileSync(join(__dirname, 'smt-step.wasm')));

  it('smt-step-wasm.ts embeds exactly smt-step.wasm, built from the current smt-step.c (else: npm run build:smt-step)', () => {
    const embedded = new Uint8Array(Buffer.from(SMT_STEP_WASM_BASE64, 'base64'));
    expect(Buffer.compare(Buffer.from(embedded), Buffer.from(wasmBytes))).to.equal(0, 'smt-step-wasm.ts and smt-step.wasm differ');
    expect(sourceSha256(readFileSync(join(__dirname, 'smt-step.c'), 'utf8'))).to.equal(SMT_STEP_SOURCE_SHA256, 'smt-step.c changed since the last build:smt-step');
  });

  it('has no data segment, imports only env.memory, exports its entry points and stack pointer; the stack lives in a tfjs block', () => {
    const ids = wasmSections(wasmBytes).map((s) => s.id);
    expect(ids).to.include(10);
    expect(ids).to.not.include(11);
    expect(ids).to.not.include(12);
    expect(wasmImports(wasmBytes)).to.deep.equal([{ module: 'env', name: 'memory', kind: 2 }]);
    const exports = new Map(wasmExports(wasmBytes).map((e) => [e.name, e.kind]));
    expect(exports.get('smt_stable_step')).to.equal(0);
    expect(exports.get('smt_step_scratch_floats')).to.equal(0);
    expect(exports.get('__stack_pointer')).to.equal(3);
    const mod = smtStepModule(asWasmBackend(tf.backend(), 'test').wasm);
    expect(mod).to.not.equal(null);
    const sp = mod!.exports.__stack_pointer.value;
    expect(sp).to.be.greaterThan(65536);
    expect(sp).to.be.at.most(heapBytes());
  });

  it('is registered on wasm and usable outside a gradient tape only', () => {
    expect(fusedKernelUsable(SMT_STABLE_STEP)).to.equal(true);
    let inside = true;
    tf.grad((x: tf.Tensor) => {
      inside = fusedKernelUsable(SMT_STABLE_STEP);
      return x.sum();
    })(tf.ones([2]));
    expect(inside).to.equal(false);
  });

  it('refuses inputs of the wrong shape or dtype, naming them', () => {
    tf.tidy(() => {
      const inp = inputs(2);
      const run = (over: tf.NamedTensorMap, attrs: Partial<SmtStableStepAttrs> = {}) => () => tf.engine().runKernel(SMT_STABLE_STEP, { ...inp, ...over }, { ...ATTRS, ...attrs } as SmtStableStepAttrs);
      expect(run({})).to.not.throw();
      expect(run({ x: tf.zeros([2, 2, 8]) })).to.throw(/x must be \[B, 1, D\]/);
      expect(run({ W2: tf.zeros([2, 4, 2, 4, 8]) })).to.throw(/'W2' has shape \[2,4,2,4,8\], expected \[2,4,2,8,4\]/);
      expect(run({ memW1: tf.zeros([1, 2, 4, 8]) })).to.throw(/'memW1'/);
      expect(run({ etaBias: tf.zeros([2], 'int32') })).to.throw(/'etaBias' must be float32/);
      expect(run({}, { hasQ: true })).to.throw(/'W1' has shape/); // 5 memories expected
      expect(run({}, { headDim: 3 })).to.throw(/numHeads \* headDim = 6/);
    });
  });

  it('scratch and refused outputs are freed: tensors and heap stay flat (B 64, ~230 KB scratch per call; sentinel throws)', () => {
    const inp = inputs(64);
    const run = (): void => tf.dispose(tf.engine().runKernel(SMT_STABLE_STEP, inp, ATTRS) as tf.Tensor[]);
    for (let i = 0; i < 3; i++) run();
    const heap = heapBytes();
    const n = tf.memory().numTensors;
    for (let i = 0; i < 200; i++) run(); // 46 MB of scratch if it leaked
    expect(heapBytes()).to.equal(heap);
    expect(tf.memory().numTensors).to.equal(n);
    const bad = { ...inp, x: tf.fill([64, 1, 8], NaN) };
    for (let i = 0; i < 50; i++) {
      expect(() => tf.engine().runKernel(SMT_STABLE_STEP, bad, ATTRS)).to.throw(FusedNonFiniteError);
    }
    expect(heapBytes()).to.equal(heap);
    expect(tf.memory().numTensors).to.equal(n + 1);
    tf.dispose([...Object.values(inp), bad.x]);
  });
});
