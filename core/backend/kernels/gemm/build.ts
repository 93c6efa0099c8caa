/**
 * npm run build:gemm
 *
 * Rebuilds core/backend/kernels/gemm/gemm.wasm from gemm.c and regenerates gemm-wasm.ts (the bytes as
 * base64 plus the SHA-256 of the C source) with the kernels' one build recipe (../wasm-build.ts: clang
 * flags, no data section, no shadow-stack use). Both outputs are committed; gemm.test.ts fails if
 * gemm-wasm.ts, gemm.wasm and gemm.c disagree.
 */
import { buildWasmKernel } from '../wasm-build';

if (require.main === module) buildWasmKernel({ dir: __dirname, name: 'gemm', constPrefix: 'GEMM', testFile: 'gemm.test.ts', scratchHint: 'locals' });
