/**
 * Contract of fused single-token kernels that backends may provide (core/backend/kernels registers them for
 * wasm). Library code asks `fusedKernelUsable(name)` and, when true, runs the kernel with
 * `tf.engine().runKernel(name, inputs, attrs)`; otherwise it keeps its op path, which stays the reference.
 * Fused kernels are forward-only (no gradient is registered), so they are never used while a gradient tape
 * records.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * One token of the 'stable' self-modifying Titans mixer (plugins/self-modifying-titans/ops/stable.ts at T = 1;
 * the C source core/backend/kernels/smt-step/smt-step.c states the math).
 * Inputs (float32): x [B, 1, D]; kKernel, vKernel, qKernel, gateKernel, outKernel [D, D]; normGain [D];
 * etaBias [H]; alphaBias [H] (only with weightDecay); W1, W2, W1snap, W2snap [B, NM, H, ., .];
 * memW1, memW2, memW1snap, memW2snap [B, H, ., .].
 * Outputs: y [B, 1, D]; W1, W2, W1snap, W2snap [B, NM, H, ., .]; memW1, memW2, memW1snap, memW2snap [B, H, ., .]
 * (running matrices after the token; each snapshot is the new running matrix when the token closes its chunk
 * (attrs closesChunk / closesMemChunk), else the input snapshot; the caller sets the clocks).
 * Throws a FusedNonFiniteError when `check` is set and a sentinel value is not finite.
 */
export const SMT_STABLE_STEP = 'NlSmtStableStep';

export interface SmtStableStepAttrs {
  [key: string]: number | boolean | string;
  numHeads: number;
  headDim: number;
  hiddenDim: number;
  /** memories present (state order k, v, eta, alpha, q) */
  hasK: boolean;
  hasV: boolean;
  hasAlpha: boolean;
  hasQ: boolean;
  dgd: boolean;
  act: 'silu' | 'tanh';
  /** <= 0: no clipping */
  gradClip: number;
  etaMax: number;
  alphaMin: number;
  slowRate: number;
  /** sentinel: throw FusedNonFiniteError naming the first check with a non-finite value */
  check: boolean;
  /** this token closes a chunk of the phase-1 memories (snapshots move to the new state) */
  closesChunk: boolean;
  /** this token closes a chunk of M_mem */
  closesMemChunk: boolean;
}

/** Thrown by a fused kernel's sentinel: `check` indexes the checks in the op path's order. */
export class FusedNonFiniteError extends Error {
  constructor(readonly check: number) {
    super(`fused kernel: non-finite value in sentinel check ${check}`);
    this.name = 'FusedNonFiniteError';
  }
}

interface EngineState {
  state: { gradientDepth: number };
}

/** True when `kernelName` is registered for the active backend and no gradient tape is recording. */
export function fusedKernelUsable(kernelName: string): boolean {
  if ((tf.engine() as unknown as EngineState).state.gradientDepth > 0) return false;
  return tf.getKernel(kernelName, tf.getBackend()) != null;
}
