/**
 * The fused single-token step of the 'stable' mixer (generation): x [B, 1, D] and a carried state -> the
 * same y and state as stableForward at T = 1, in one backend kernel (core/ops/fused-step.ts
 * SMT_STABLE_STEP; on wasm core/backend/kernels/smt-step, a C/SIMD function over the tfjs heap) instead of
 * ~280 small kernels. stableForward stays the reference: it runs on every other backend, under a
 * gradient tape, for T > 1, and when the kernel is not registered (NL_SMT_FUSED=off, setSmtStepEnabled).
 *
 * At T = 1 the token's reads use the chunk-start snapshots, then every memory writes (stable.ts); the
 * kernel returns the running matrices and the snapshots, which move to them when the token closes a chunk
 * (position (p + 1) mod chunkSize == 0 for the phase-1 group, memChunkSize for M_mem: the merged and
 * two-phase paths give the same values), else stay (shared buffers); clocks advance by one.
 */
import * as tf from '@tensorflow/tfjs';
import { FusedNonFiniteError, SMT_STABLE_STEP, fusedKernelUsable, type SmtStableStepAttrs } from '../../../core/ops/fused-step';
import type { SmtOptions, SmtState, SmtWeights } from './forward';

/** True when the fused step can run this call (stable form, one token, kernel registered, no tape, float32). */
export function fusedStepApplies(o: SmtOptions, w: SmtWeights, x: tf.Tensor): boolean {
  if (o.parameterization !== 'stable' || x.rank !== 3 || x.shape[1] !== 1 || x.dtype !== 'float32') return false;
  if (o.momentum !== null || o.normalize !== 'l2') return false;
  if (!w.kKernel || !w.vKernel || !w.qKernel || !w.gateKernel || !w.normGain || (o.weightDecay && !w.alphaBias)) return false;
  return fusedKernelUsable(SMT_STABLE_STEP);
}

/** stableForward at T = 1 through the fused kernel (call only when fusedStepApplies). */
export function stableStepFused(
  o: SmtOptions,
  w: SmtWeights,
  x: tf.Tensor,
  state: SmtState,
  names: readonly string[],
): { y: tf.Tensor3D; state: SmtState } {
  return tf.tidy(() => {
    const b = x.shape[0];
    const pos1 = ((state.clock.shape[1] as number) + 1) % o.chunkSize;
    const pos2 = ((state.memClock.shape[1] as number) + 1) % o.memChunkSize;
    const attrs: SmtStableStepAttrs = {
      numHeads: o.numHeads,
      headDim: o.headDim,
      hiddenDim: o.hiddenDim,
      hasK: !o.staticK,
      hasV: !o.staticV,
      hasAlpha: o.weightDecay,
      hasQ: o.adaptiveQ,
      dgd: o.dgd,
      act: o.act,
      gradClip: o.gradClip ?? 0,
      etaMax: o.etaMax,
      alphaMin: o.alphaMin,
      slowRate: o.slowRate,
      check: o.sentinel,
      closesChunk: pos1 === 0,
      closesMemChunk: pos2 === 0,
    };
    const inputs: tf.NamedTensorMap = {
      x,
      kKernel: w.kKernel as tf.Tensor,
      vKernel: w.vKernel as tf.Tensor,
      qKernel: w.qKernel as tf.Tensor,
      gateKernel: w.gateKernel as tf.Tensor,
      outKernel: w.outKernel,
      normGain: w.normGain as tf.Tensor,
      etaBias: w.etaBias,
      W1: state.W1,
      W2: state.W2,
      W1snap: state.W1snap,
      W2snap: state.W2snap,
      memW1: state.memW1,
      memW2: state.memW2,
      memW1snap: state.memW1snap,
      memW2snap: state.memW2snap,
    };
    if (o.weightDecay) inputs.alphaBias = w.alphaBias as tf.Tensor;
    let outs: tf.Tensor[];
    try {
      outs = tf.engine().runKernel(SMT_STABLE_STEP, inputs, attrs) as tf.Tensor[];
    } catch (e) {
      if (!(e instanceof FusedNonFiniteError)) throw e;
      const what = e.check < names.length ? names[e.check] : 'mem'; // the op path's sentinel message (forward.ts sentinel)
      throw new Error(
        `${o.layerName}: non-finite value (NaN or Inf) in memory '${what}' at token index 0 of this call ` +
          `(gradientMode='${o.gradientMode}', normalize='${o.normalize}'); set sentinel: false to skip this check`,
      );
    }
    const [y, W1, W2, W1snap, W2snap, memW1, memW2, memW1snap, memW2snap] = outs;
    const next: Record<string, tf.Tensor> = { W1, W2, W1snap, W2snap, clock: tf.zeros([b, pos1]), memW1, memW2, memW1snap, memW2snap, memClock: tf.zeros([b, pos2]) };
    return { y: y as tf.Tensor3D, state: next } as unknown as tf.TensorContainer;
  }) as unknown as { y: tf.Tensor3D; state: SmtState };
}
