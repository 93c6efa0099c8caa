export * from './select';
export { registerProjectKernels } from './kernels';
