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

/** Outputs of fn(xs); under a tape only xs are kept and fn is recomputed in the backward pass. */
export function checkpoint(fn: (xs: tf.Tensor[]) => tf.Tensor[], xs: tf.Tensor[]): tf.Tensor[] {
  let shapes: number[][] = [];
  // all outputs flattened into one vector (customGrad returns a single tensor)
  const flatOut = (ys: tf.Tensor[]): tf.Tensor => {
    const outs = fn(ys);
    shapes = outs.map((a) => a.shape);
    const flat = outs.map((a) => a.reshape([-1]));
    return flat.length === 1 ? flat[0] : tf.concat(flat, 0);
  };
  const op = tf.customGrad(((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const inputs = args.slice(0, -1) as tf.Tensor[];
    save(inputs);
    return {
      value: flatOut(inputs), // runs without a tape (inside a custom kernel)
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        // recompute with a fresh tape; allowNoGradients: an input may not reach the outputs (e.g. 'stop' mode)
        // tfjs 4.22: an inner engine.gradients() started during the outer backward pass (gradientDepth 0)
        // replaces the engine's active tape and sets it to null when done, after which the outer
        // backward pass crashes disposing its saved tensors; keep and restore the outer tape.
        return gradientsInBackward(() => flatOut(saved), saved, dy);
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return tf.tidy(() => {
    const flat = op(...xs);
    const sizes = shapes.map((s) => s.reduce((p, q) => p * q, 1));
    const parts = sizes.length === 1 ? [flat] : tf.split(flat, sizes, 0);
    return parts.map((p, i) => p.reshape(shapes[i]));
  });
}

/**
 * Gradients of f w.r.t. xs (with upstream dy, default ones) computed INSIDE a customGrad backward pass.
 * tfjs 4.22's engine keeps one `activeTape`; an engine.gradients() call during backprop replaces it and
 * sets it to null when done, after which the outer backward pass crashes disposing its saved tensors.
 * This keeps and restores the outer tape (engine internals: pinned tfjs 4.22, covered by tests).
 * Inputs that do not reach f get zero gradients.
 */
export function gradientsInBackward(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor): tf.Tensor[] {
  const st = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outerTape = st.activeTape;
  try {
    const r = tf.engine().gradients(f, xs, dy, true);
    r.value.dispose();
    return xs.map((x, i) => r.grads[i] ?? tf.zerosLike(x));
  } finally {
    st.activeTape = outerTape;
  }
}
