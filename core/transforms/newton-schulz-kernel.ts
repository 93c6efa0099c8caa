/**
 * Contract of the fused Newton-Schulz kernel that backends may provide (core/backend/kernels registers it
 * for wasm when gemm.wasm loads). plugins/optimizers (util.ts newtonSchulzBatch / newtonSchulzMany) runs it
 * with `tf.engine().runKernel(NEWTON_SCHULZ_KERNEL, xs, attrs)` when `fusedKernelUsable` says so (registered,
 * no gradient tape recording); otherwise its op path, which stays the reference.
 *
 * Inputs: an array of float32 tensors, each [r, c] or [n, r, c] (n matrices); shapes may differ.
 * Outputs: one tensor per input, same shape: every matrix G replaced by X_steps of the quintic iteration
 *   X_0 = G / (||G||_F + eps);  X <- a X + (b A + c A^2) X,  A = X X^T  (r <= c)
 *                               X <- a X + X (b A + c A^2),  A = X^T X  (r > c)
 * Forward-only (no gradient is registered).
 */
export const NEWTON_SCHULZ_KERNEL = 'NlNewtonSchulz';

export interface NewtonSchulzAttrs {
  [key: string]: number;
  steps: number;
  a: number;
  b: number;
  c: number;
  eps: number;
}
