/**
 * Activation checkpointing (rematerialisation) for one chunk of the forward pass.
 *
 * Why: under a gradient tape, tfjs keeps every saved kernel input/output of the whole sequence until
 * backprop, and on wasm each saved tensor is a copy (the engine clones it with the Identity kernel,
 * which copies on wasm). For the self-modifying Titans mixer that was ~6 MB per token at B=4, D=128
 * (1.5 GB at T=256), so long sequences could not be differentiated at all. With checkpoint(fn, xs) the tape holds only the
 * chunk's inputs xs; the backward pass re-runs fn on them with its own tape and returns the
 * vector-Jacobian product. Same values and gradients (fn must be deterministic), ~1.3x the compute,
 * memory O(state x chunks + one chunk's activations).
 */
import * as tf from '@tensorflow/tfjs';

/** The engine entry point tf.customGrad is built on; unlike customGrad it accepts several outputs. */
interface KernelFuncEngine {
  runKernelFunc(params: {
    forwardFunc: (backend: unknown, save: (ts: tf.Tensor[]) => void) => tf.Tensor[];
    backwardsFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
    inputs: Record<string, tf.Tensor>;
  }): tf.Tensor | tf.Tensor[];
}

/**
 * Outputs of fn(xs); under a tape only xs are kept and fn is recomputed in the backward pass.
 * The op is one multi-output tape node (engine.runKernelFunc, what tf.customGrad calls with a single
 * output; tfjs 4.22 internals, covered by tests), so the outputs are not packed into one tensor and
 * split again: on wasm every piece of a split (and of its gradient) copies the whole packed tensor.
 * The backward pass differentiates sum_i <fn(xs)_i, dy_i> under a fresh tape (gradientsInBackward).
 */
export function checkpoint(fn: (xs: tf.Tensor[]) => tf.Tensor[], xs: tf.Tensor[]): tf.Tensor[] {
  if (xs.length === 0) throw new Error('checkpoint: needs at least one input tensor');
  const eng = tf.engine() as unknown as KernelFuncEngine;
  const inputs: Record<string, tf.Tensor> = {};
  xs.forEach((x, i) => (inputs[i] = x));
  const out = eng.runKernelFunc({
    forwardFunc: (_backend, save) => {
      save(xs); // kept (as clones) only when a tape is recording
      const outs = fn(xs); // runs without a tape (inside a kernel)
      if (outs.length === 0) throw new Error('checkpoint: fn must return at least one tensor');
      // every output must be a new tensor (an input passed through, or one tensor returned twice, is copied)
      return outs.map((o, i) => (xs.includes(o) || outs.indexOf(o) < i ? o.clone() : o));
    },
    backwardsFunc: (dy, saved) => {
      const dys = Array.isArray(dy) ? dy : [dy];
      // recompute with a fresh tape; allowNoGradients: an input may not reach the outputs (e.g. 'stop' mode)
      const grads = gradientsInBackward(() => {
        const outs = fn(saved);
        return outs.length === 1 ? outs[0].mul(dys[0]).sum() : tf.addN(outs.map((o, i) => o.mul(dys[i]).sum()));
      }, saved);
      const map: Record<string, () => tf.Tensor> = {};
      grads.forEach((g, i) => (map[i] = () => g));
      return map;
    },
    inputs,
  });
  return Array.isArray(out) ? out : [out];
}

/** Engine internals used below (tfjs 4.22). */
interface TapeEngine {
  state: { activeTape: unknown };
  saveTensorsForBackwardMode(tensors: tf.Tensor[]): tf.Tensor[];
  runKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): tf.Tensor;
  keep<T extends tf.Tensor>(t: T): T;
}

/**
 * Gradients of f w.r.t. xs (with upstream dy, default ones) computed INSIDE a customGrad backward pass.
 * tfjs 4.22's engine keeps one `activeTape`; an engine.gradients() call during backprop replaces it and
 * sets it to null when done, after which the outer backward pass crashes disposing its saved tensors.
 * This keeps and restores the outer tape (engine internals: pinned tfjs 4.22, covered by tests).
 * Inputs that do not reach f get zero gradients.
 *
 * While f is recorded, the tape keeps the tensors each op saves for its gradient as new tensors that
 * SHARE the data (the Reshape kernel: a reference-counted view) instead of the engine's default copy
 * (the Identity kernel, which copies on wasm: ~30% of a checkpointed self-modifying Titans step).
 * Safe because tensors are immutable; the saved views are disposed with the tape as usual.
 */
export function gradientsInBackward(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor): tf.Tensor[] {
  const eng = tf.engine() as unknown as TapeEngine;
  const st = eng.state;
  const outerTape = st.activeTape;
  const ownSave = Object.prototype.hasOwnProperty.call(eng, 'saveTensorsForBackwardMode');
  const save = eng.saveTensorsForBackwardMode;
  eng.saveTensorsForBackwardMode = (tensors: tf.Tensor[]): tf.Tensor[] =>
    tensors.map((t) => eng.keep(eng.runKernel('Reshape', { x: t }, { shape: t.shape }))); // runs inside a kernel: not taped
  try {
    const r = tf.engine().gradients(f, xs, dy, true);
    r.value.dispose();
    return xs.map((x, i) => r.grads[i] ?? tf.zerosLike(x));
  } finally {
    if (ownSave) eng.saveTensorsForBackwardMode = save;
    else delete (eng as Partial<TapeEngine>).saveTensorsForBackwardMode; // back to the prototype's method
    st.activeTape = outerTape;
  }
}
