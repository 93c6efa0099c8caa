/**
 * npm run build:smt-step
 *
 * Rebuilds core/backend/kernels/smt-step/smt-step.wasm from smt-step.c and regenerates smt-step-wasm.ts
 * with the kernels' one build recipe (../wasm-build.ts: the GEMM's clang flags and checks). Both outputs
 * are committed; smt-step.test.ts fails if they and smt-step.c disagree.
 */
import { buildWasmKernel } from '../wasm-build';

if (require.main === module) buildWasmKernel({ dir: __dirname, name: 'smt-step', constPrefix: 'SMT_STEP', testFile: 'smt-step.test.ts', scratchHint: 'the scratch block' });
