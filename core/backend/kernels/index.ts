/**
 * Project kernels registered with tf.registerKernel to fill gaps of a backend.
 * Placeholder: the kernels themselves live beside this file (see README in this folder).
 */
export function registerProjectKernels(_backend: string): string[] {
  return [];
}
