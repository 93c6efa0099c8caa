/** Moved to core/ops/tensor-util.ts (shared by every plugin); re-exported here for existing imports. */
export { cumsumSafe, splitAxis0, stackAxis0 } from '../../../core/ops/tensor-util';
