/**
 * The wasm kernel `NlSmtStableStep` (core/ops/fused-step.ts states the contract): one token of the 'stable'
 * self-modifying Titans mixer in one call of smt-step.wasm on the tfjs heap. Reads x, the weights and the
 * carried state in place (never writes them), writes y and the running matrices after the token into new
 * tensors, and returns the snapshots as shared buffers (reference counted, like the project's Identity).
 */
import * as tf from '@tensorflow/tfjs';
import { FusedNonFiniteError, SMT_STABLE_STEP, type SmtStableStepAttrs } from '../../../ops/fused-step';
import { asWasmBackend, type WasmBackend } from '../wasm-internals';
import { smtStepModule, smtStepUnavailableReason } from './instance';

const F_HAS_K = 1;
const F_HAS_V = 2;
const F_HAS_ALPHA = 4;
const F_HAS_Q = 8;
const F_DGD = 16;
const F_TANH = 32;
const F_CHECK = 64;

/** The start-up setting: on unless NL_SMT_FUSED=off. */
export function smtStepEnabledFromEnv(env: Record<string, string | undefined> | undefined): boolean {
  return env?.NL_SMT_FUSED !== 'off';
}

/** Off when NL_SMT_FUSED=off at start-up, or after setSmtStepEnabled(false) (core/backend/kernels/index.ts). */
export const smtStepSwitch = { enabled: smtStepEnabledFromEnv(typeof process !== 'undefined' ? process.env : undefined) };

/** True when smt-step.wasm loads into this wasm backend instance. */
export function smtStepLoads(backend: unknown): boolean {
  return smtStepModule(asWasmBackend(backend, SMT_STABLE_STEP).wasm) !== null;
}

function fail(msg: string): never {
  throw new Error(`${SMT_STABLE_STEP}: ${msg}`);
}

function expectShape(name: string, t: tf.TensorInfo | undefined, shape: number[]): tf.TensorInfo {
  if (t === undefined) fail(`input '${name}' is missing`);
  if (t.dtype !== 'float32') fail(`input '${name}' must be float32, got ${t.dtype}`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) fail(`input '${name}' has shape [${t.shape}], expected [${shape}]`);
  return t;
}

export function smtStableStepWasm({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo[] {
  const be: WasmBackend = asWasmBackend(backend, SMT_STABLE_STEP);
  const mod = smtStepModule(be.wasm);
  if (mod === null) fail(`smt-step.wasm is not available: ${smtStepUnavailableReason(be.wasm)}`);
  const a = attrs as unknown as SmtStableStepAttrs;
  const { numHeads: h, headDim: dh, hiddenDim: dz } = a;
  const x = inputs.x;
  if (x === undefined || x.shape.length !== 3 || x.shape[1] !== 1) fail(`x must be [B, 1, D], got [${x?.shape}]`);
  const [b, , d] = x.shape;
  if (h * dh !== d) fail(`numHeads * headDim = ${h * dh} differs from the width ${d}`);
  const nm = (a.hasK ? 1 : 0) + (a.hasV ? 1 : 0) + 1 + (a.hasAlpha ? 1 : 0) + (a.hasQ ? 1 : 0);
  expectShape('x', x, [b, 1, d]);
  const dd = [d, d];
  const names = ['kKernel', 'vKernel', 'qKernel', 'gateKernel', 'outKernel'];
  const [wk, wv, wq, wg, wo] = names.map((n) => expectShape(n, inputs[n], dd));
  const gain = expectShape('normGain', inputs.normGain, [d]);
  const etaBias = expectShape('etaBias', inputs.etaBias, [h]);
  const alphaBias = a.hasAlpha ? expectShape('alphaBias', inputs.alphaBias, [h]) : null;
  const g1 = [b, nm, h, dh, dz];
  const g2 = [b, nm, h, dz, dh];
  const m1 = [b, h, dh, dz];
  const m2 = [b, h, dz, dh];
  const W1 = expectShape('W1', inputs.W1, g1);
  const W2 = expectShape('W2', inputs.W2, g2);
  const S1 = expectShape('W1snap', inputs.W1snap, g1);
  const S2 = expectShape('W2snap', inputs.W2snap, g2);
  const mW1 = expectShape('memW1', inputs.memW1, m1);
  const mW2 = expectShape('memW2', inputs.memW2, m2);
  const mS1 = expectShape('memW1snap', inputs.memW1snap, m1);
  const mS2 = expectShape('memW2snap', inputs.memW2snap, m2);

  const outs = [be.makeOutput([b, 1, d], 'float32'), be.makeOutput(g1, 'float32'), be.makeOutput(g2, 'float32'), be.makeOutput(m1, 'float32'), be.makeOutput(m2, 'float32')];
  const ptr = (t: tf.TensorInfo): number => be.dataIdMap.get(t.dataId).memoryOffset;
  const flags =
    (a.hasK ? F_HAS_K : 0) | (a.hasV ? F_HAS_V : 0) | (a.hasAlpha ? F_HAS_ALPHA : 0) | (a.hasQ ? F_HAS_Q : 0) |
    (a.dgd ? F_DGD : 0) | (a.act === 'tanh' ? F_TANH : 0) | (a.check ? F_CHECK : 0);
  const scratch = mod.malloc(4 * mod.exports.smt_step_scratch_floats(b, d, dh, dz, nm));
  if (scratch === 0) {
    for (const o of outs) be.disposeData(o.dataId);
    fail('could not allocate scratch memory');
  }
  let bad: number;
  try {
    bad = mod.exports.smt_stable_step(
      ptr(x), ptr(wk), ptr(wv), ptr(wq), ptr(wg), ptr(wo), ptr(gain), ptr(etaBias), alphaBias ? ptr(alphaBias) : 0,
      ptr(W1), ptr(W2), ptr(S1), ptr(S2), ptr(mW1), ptr(mW2), ptr(mS1), ptr(mS2),
      ...outs.map(ptr), scratch,
      b, h, dh, dz, flags, a.gradClip > 0 ? a.gradClip : 0, a.etaMax, a.alphaMin, a.slowRate,
    );
  } finally {
    mod.free(scratch);
  }
  if (bad !== 0) {
    for (const o of outs) be.disposeData(o.dataId);
    throw new FusedNonFiniteError(31 - Math.clz32(bad & -bad)); // lowest failing check, as the op path reports the first
  }
  // snapshots: the new running matrices when the token closes a chunk, else the old snapshots (buffers shared
  // by reference count, as the project's Identity kernel does: no copies, no extra kernel calls)
  const share = (t: tf.TensorInfo): tf.TensorInfo => {
    (be as unknown as { incRef(dataId: tf.DataId): void }).incRef(t.dataId);
    return { dataId: t.dataId, shape: t.shape, dtype: t.dtype };
  };
  const [y, w1o, w2o, mw1o, mw2o] = outs;
  return [
    y,
    w1o,
    w2o,
    share(a.closesChunk ? w1o : S1),
    share(a.closesChunk ? w2o : S2),
    mw1o,
    mw2o,
    share(a.closesMemChunk ? mw1o : mS1),
    share(a.closesMemChunk ? mw2o : mS2),
  ];
}
