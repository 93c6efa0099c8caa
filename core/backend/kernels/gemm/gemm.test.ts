/**
 * The project SIMD GEMM (gemm.c -> gemm.wasm, loaded into the tfjs wasm memory): the committed
 * artifacts agree with each other and with the source, the module cannot touch tfjs memory it does
 * not own (no data segment, imports only env.memory, its stack relocated into a malloc'd block), and
 * the 'gemm' route equals a float64 JS reference and the cpu backend for every transpose combination,
 * awkward sizes, broadcast batches, fused bias/activation and gradients, without leaking tensors or heap.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { selectBackend } from '../../select';
import { assertClose, expectNoLeakedTensors, withBackend } from '../../../testing';
import { registerProjectKernels, unregisterProjectKernels } from '../index';
import {
  MATMUL_COST_NS,
  estimateRoutes,
  gemmAvailable,
  matMulGeometry,
  setGemmEnabled,
  setMatMulRoute,
  type ProductRoute,
} from '../batch-mat-mul';
import { asWasmBackend, type WasmModule } from '../wasm-internals';
import { GEMM_SOURCE_SHA256, GEMM_WASM_BASE64 } from './gemm-wasm';
import { gemmKernel, gemmUnavailableReason } from './instance';
import { sourceSha256, wasmExports, wasmImports, wasmSections } from './wasm-sections';

const TOL = { rtol: 1e-4, atol: 1e-5 };

/** Deterministic values in [-1, 1) (mulberry32). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/**
 * float64 reference of out[o] = op(A[aOf(o)]) @ op(B[bOf(o)]) on flat row-major slices
 * (A slices stored [m,k] or [k,m] when transposed; B slices [k,n] or [n,k]).
 */
function reference(
  a: Float32Array, b: Float32Array, batch: number, aOf: (o: number) => number, bOf: (o: number) => number,
  m: number, k: number, n: number, ta: boolean, tb: boolean,
): Float64Array {
  const out = new Float64Array(batch * m * n);
  for (let o = 0; o < batch; o++) {
    const ab = aOf(o) * m * k;
    const bb = bOf(o) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = ta ? a[ab + p * m + i] : a[ab + i * k + p];
          const bv = tb ? b[bb + j * k + p] : b[bb + p * n + j];
          s += av * bv;
        }
        out[o * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}

function heapBytes(): number {
  return asWasmBackend(tf.backend(), 'test').wasm.HEAPU8.length;
}

function withRoute<T>(route: ProductRoute, fn: () => T): T {
  const previous = setMatMulRoute(route);
  try {
    return fn();
  } finally {
    setMatMulRoute(previous);
  }
}

const DEFAULT_PACK_A = MATMUL_COST_NS.gemmPackAMinElements;

/** Runs fn with MATMUL_COST_NS.gemmPackAMinElements set to `value` (1: every A^T slice is packed). */
function withPackAThreshold<T>(value: number, fn: () => T): T {
  MATMUL_COST_NS.gemmPackAMinElements = value;
  try {
    return fn();
  } finally {
    MATMUL_COST_NS.gemmPackAMinElements = DEFAULT_PACK_A;
  }
}

/** Runs f on wasm with the gemm route and on cpu (built-in kernels); compares every output. */
async function expectGemmMatchesCpu(name: string, f: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  const read = (r: tf.Tensor | tf.Tensor[]): Float32Array[] => {
    const list = Array.isArray(r) ? r : [r];
    const out = list.map((t) => Float32Array.from(t.dataSync() as ArrayLike<number>));
    tf.dispose(list);
    return out;
  };
  const w = withRoute('gemm', () => read(tf.tidy(f)));
  const c = await withBackend('cpu', async () => {
    unregisterProjectKernels('cpu');
    try {
      return read(tf.tidy(f));
    } finally {
      registerProjectKernels('cpu');
    }
  });
  expect(w.length).to.equal(c.length);
  w.forEach((v, i) => assertClose(v, c[i], { ...TOL, name: `${name} [output ${i}]` }));
}

describe('project GEMM (gemm.wasm)', function () {
  let previous = '';
  before(async function () {
    previous = tf.getBackend();
    await selectBackend('wasm');
  });
  after(async function () {
    setMatMulRoute('auto');
    if (previous && previous !== tf.getBackend()) await selectBackend(previous);
  });

  describe('committed module', () => {
    const wasmBytes = new Uint8Array(readFileSync(join(__dirname, 'gemm.wasm')));

    it('gemm-wasm.ts embeds exactly gemm.wasm, built from the current gemm.c (else: npm run build:gemm)', () => {
      const embedded = new Uint8Array(Buffer.from(GEMM_WASM_BASE64, 'base64'));
      expect(embedded.length).to.equal(wasmBytes.length);
      expect(Buffer.compare(Buffer.from(embedded), Buffer.from(wasmBytes))).to.equal(0, 'gemm-wasm.ts and gemm.wasm differ');
      expect(sourceSha256(readFileSync(join(__dirname, 'gemm.c'), 'utf8'))).to.equal(GEMM_SOURCE_SHA256, 'gemm.c changed since the last build:gemm');
    });

    it('has no data segment, imports only env.memory and exports its stack pointer', () => {
      const ids = wasmSections(wasmBytes).map((s) => s.id);
      expect(ids).to.include(10); // code
      expect(ids).to.not.include(11); // data
      expect(ids).to.not.include(12); // data count
      expect(wasmImports(wasmBytes)).to.deep.equal([{ module: 'env', name: 'memory', kind: 2 }]);
      const exports = new Map(wasmExports(wasmBytes).map((e) => [e.name, e.kind]));
      expect(exports.get('gemm_batched')).to.equal(0);
      expect(exports.get('transpose_last2')).to.equal(0);
      expect(exports.get('gemm_scratch_floats')).to.equal(0);
      expect(exports.get('__stack_pointer')).to.equal(3);
    });

    it('loads into the tfjs memory with its stack inside a block malloc\'d from tfjs', () => {
      const backend = asWasmBackend(tf.backend(), 'test');
      expect(gemmAvailable(backend)).to.equal(true);
      const kernel = gemmKernel(backend.wasm);
      expect(kernel).to.not.equal(null);
      const sp = kernel!.exports.__stack_pointer.value;
      // The linker's default would be 65536 (a stack over tfjs's own low memory).
      expect(sp).to.be.greaterThan(65536);
      expect(sp).to.be.at.most(heapBytes());
      expect(sp % 16).to.equal(0);
    });
  });

  describe('gemm route vs float64 reference', () => {
    const sizes = [1, 3, 5, 17, 33, 64, 65, 130];
    // Each size in each of the m, k, n positions against small partners, plus a few squares.
    const triples: Array<[number, number, number]> = [];
    for (const s of sizes) triples.push([s, 5, 17], [3, s, 9], [7, 6, s]);
    triples.push([1, 1, 1], [64, 64, 64], [65, 33, 130], [130, 130, 3]);
    for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      it(`${ta ? 'A^T' : 'A'} x ${tb ? 'B^T' : 'B'}: ${triples.length} (m, k, n) triples, batch 2${ta ? ', A^T read in place and packed' : ''}`, () => {
        const batch = 2;
        for (const packAt of ta ? [DEFAULT_PACK_A, 1] : [DEFAULT_PACK_A]) {
          withPackAThreshold(packAt, () =>
            withRoute('gemm', () => {
              triples.forEach(([m, k, n], i) => {
                const av = values(batch * m * k, 1000 + i);
                const bv = values(batch * k * n, 2000 + i);
                const out = tf.tidy(() =>
                  tf.matMul(tf.tensor(av, ta ? [batch, k, m] : [batch, m, k]), tf.tensor(bv, tb ? [batch, n, k] : [batch, k, n]), ta, tb),
                );
                expect(out.shape).to.deep.equal([batch, m, n]);
                const want = reference(av, bv, batch, (o) => o, (o) => o, m, k, n, ta, tb);
                assertClose(out.dataSync() as Float32Array, want, { ...TOL, name: `m=${m} k=${k} n=${n} packA>=${packAt}` });
                out.dispose();
              });
            }),
          );
        }
      });
    }

    it('broadcast batch dims: [m,k] x [4,k,n], [4,m,k] x [k,n], [2,1] x [1,3] per axis', () => {
      const m = 5;
      const k = 9;
      const n = 11;
      const cases: Array<[number[], number[], number, (o: number) => number, (o: number) => number, boolean, boolean]> = [
        [[], [4], 4, () => 0, (o) => o, false, true],
        [[4], [], 4, (o) => o, () => 0, true, false],
        // out (i, j) of the [2,3] batch reads a slice i and b slice j.
        [[2, 1], [1, 3], 6, (o) => Math.floor(o / 3), (o) => o % 3, true, true],
        [[3, 1], [3, 2], 6, (o) => Math.floor(o / 2), (o) => o, false, false],
      ];
      // Once as configured and once with every A^T slice packed (transposed into scratch) first.
      for (const packAt of [DEFAULT_PACK_A, 1]) {
        withPackAThreshold(packAt, () =>
          withRoute('gemm', () => {
            cases.forEach(([ab, bb, batch, aOf, bOf, ta, tb], i) => {
              const av = values(tf.util.sizeFromShape(ab) * m * k, 300 + i);
              const bv = values(tf.util.sizeFromShape(bb) * k * n, 400 + i);
              const out = tf.tidy(() =>
                tf.matMul(tf.tensor(av, [...ab, ...(ta ? [k, m] : [m, k])]), tf.tensor(bv, [...bb, ...(tb ? [n, k] : [k, n])]), ta, tb),
              );
              const want = reference(av, bv, batch, aOf, bOf, m, k, n, ta, tb);
              assertClose(out.dataSync() as Float32Array, want, { ...TOL, name: `broadcast [${ab}] x [${bb}] packA>=${packAt}` });
              out.dispose();
            });
          }),
        );
      }
    });

    it('stays correct after the tfjs heap grows (same WebAssembly.Memory, new buffer)', () => {
      const big = tf.zeros([Math.ceil(heapBytes() / 4) + 1024]); // cannot fit: forces memory.grow
      try {
        const av = values(3 * 17 * 33, 7);
        const bv = values(3 * 65 * 33, 8);
        const out = withRoute('gemm', () => tf.matMul(tf.tensor(av, [3, 17, 33]), tf.tensor(bv, [3, 65, 33]), false, true));
        assertClose(out.dataSync() as Float32Array, reference(av, bv, 3, (o) => o, (o) => o, 17, 33, 65, false, true), TOL);
        out.dispose();
      } finally {
        big.dispose();
      }
    });

    it('transpose_last2 (used for the XNNPACK route) on awkward shapes', () => {
      const backend = asWasmBackend(tf.backend(), 'test');
      for (const [batch, rows, cols] of [[1, 1, 1], [2, 3, 5], [2, 33, 65], [1, 130, 17], [3, 64, 64]]) {
        const x = tf.tensor(values(batch * rows * cols, rows * cols), [batch, rows, cols]);
        // transposeA on the xnnpack route materialises A^T with transpose_last2.
        const eye = tf.eye(rows).expandDims(0).tile([batch, 1, 1]);
        const t = withRoute('xnnpack', () => tf.matMul(x, eye, true, false)); // x^T @ I = x^T
        const want = tf.transpose(x, [0, 2, 1]);
        assertClose(t, want, { rtol: 0, atol: 0, name: `transpose [${batch},${rows},${cols}]` });
        tf.dispose([x, eye, t, want]);
      }
      expect(gemmKernel(backend.wasm)).to.not.equal(null);
    });
  });

  describe('gemm route vs cpu', () => {
    it('fused matMul with bias and activation', async () => {
      const layouts: Array<[number[], number[], boolean, boolean, number[], 'relu' | 'sigmoid' | 'elu' | 'linear']> = [
        [[3, 17, 33], [3, 65, 33], false, true, [65], 'relu'],
        [[2, 33, 5], [2, 33, 17], true, false, [5, 17], 'sigmoid'],
        [[16, 64], [16, 32], true, false, [1], 'elu'],
        [[4, 8, 16], [16, 8], false, false, [4, 8, 8], 'linear'],
      ];
      for (const [as, bs, ta, tb, biasShape, activation] of layouts) {
        await expectGemmMatchesCpu(`fused ${activation} [${as}]x[${bs}] bias [${biasShape}]`, () =>
          tf.fused.matMul({
            a: tf.tensor(values(tf.util.sizeFromShape(as), 1), as),
            b: tf.tensor(values(tf.util.sizeFromShape(bs), 2), bs),
            transposeA: ta,
            transposeB: tb,
            bias: tf.tensor(values(tf.util.sizeFromShape(biasShape), 3), biasShape),
            activation,
          }),
        );
      }
    });

    it('gradients of a small attention-like model (tf.grads through batched, transposed matMuls)', async () => {
      await expectGemmMatchesCpu('grads', () => {
        const q = tf.tensor(values(4 * 17 * 8, 11), [4, 17, 8]);
        const kk = tf.tensor(values(4 * 17 * 8, 12), [4, 17, 8]);
        const v = tf.tensor(values(4 * 17 * 6, 13), [4, 17, 6]);
        const w = tf.tensor(values(6 * 5, 14), [6, 5]);
        return tf.grads((x: tf.Tensor, y: tf.Tensor, z: tf.Tensor, u: tf.Tensor) => {
          const scores = tf.matMul(x, y, false, true); // [4,17,17]
          const mixed = tf.matMul(scores.tanh(), z); // [4,17,6]
          const proj = tf.matMul(mixed.reshape([68, 6]), u); // [68,5]
          const back = tf.matMul(x, mixed, true, false); // [4,8,6]
          return proj.square().sum().add(back.sum());
        })([q, kk, v, w]);
      });
    });
  });

  describe('cost model', () => {
    it('auto sends the chunked-attention shapes to gemm; without gemm.wasm it keeps the old XNNPACK / scalar split', () => {
      const pick = (as: number[], bs: number[], ta: boolean, tb: boolean, gemm: boolean): string => {
        const e = estimateRoutes(matMulGeometry(as, bs, ta, tb, 't'), ta, tb, gemm);
        const best = Math.min(e.xnnpack, e.gemm, e.scalar);
        return best === e.gemm ? 'gemm' : best === e.xnnpack ? 'xnnpack' : 'scalar';
      };
      // The per-chunk products of the chunked plugins (measured 5-20x faster on gemm: bench/matmul.ts).
      expect(pick([16, 64, 32], [16, 64, 32], false, true, true)).to.equal('gemm');
      expect(pick([16, 64, 64], [16, 64, 32], true, false, true)).to.equal('gemm');
      expect(pick([16, 64, 32], [16, 32, 64], false, false, true)).to.equal('gemm');
      expect(pick([64, 8, 8], [64, 8, 8], false, false, true)).to.equal('gemm');
      expect(pick([256, 256], [256, 256], false, true, true)).to.equal('gemm');
      // Without gemm.wasm the estimate for it is Infinity (never chosen).
      expect(pick([16, 64, 32], [16, 64, 32], false, true, false)).to.equal('xnnpack');
      expect(pick([4, 5, 7], [4, 7, 3], false, false, false)).to.equal('scalar');
      expect(estimateRoutes(matMulGeometry([4, 5, 6], [4, 6, 7], false, false, 't'), false, false, false).gemm).to.equal(Infinity);
    });
  });

  describe('leaks', () => {
    it('no leaked tensors or backend buffers over many gemm products (batched, broadcast, fused, gradients)', async () => {
      const a = tf.tensor(values(4 * 17 * 33, 1), [4, 17, 33]);
      const b = tf.tensor(values(4 * 65 * 33, 2), [4, 65, 33]);
      const b2 = tf.tensor(values(33 * 9, 3), [33, 9]);
      let buffers = -1;
      await withRoute('gemm', () =>
        expectNoLeakedTensors(
          () => {
            tf.tidy(() => {
              const x = tf.matMul(a, b, false, true);
              const y = tf.matMul(a, b2);
              const z = tf.fused.matMul({ a: a.reshape([68, 33]), b: b2, bias: tf.ones([9]), activation: 'relu' });
              const g = tf.grad((t: tf.Tensor) => tf.matMul(t, b, false, true).square().sum())(a);
              return tf.addN([x.sum(), y.sum(), z.sum(), g.sum()]);
            }).dispose();
            const now = tf.backend().numDataIds();
            if (buffers >= 0) expect(now, 'backend data buffers').to.equal(buffers);
            buffers = now;
          },
          { name: 'gemm route', iterations: 10 },
        ),
      );
      tf.dispose([a, b, b2]);
    });

    it('scratch is freed: the heap stays flat over 200 products with 1 MiB of packed B each', () => {
      const a = tf.tensor(values(2 * 8 * 512, 1), [2, 8, 512]);
      const b = tf.tensor(values(2 * 512 * 512, 2), [2, 512, 512]); // 1 MiB packed per call
      withRoute('gemm', () => {
        const run = (): void => tf.tidy(() => tf.matMul(a, b, false, true).sum()).dispose();
        for (let i = 0; i < 5; i++) run();
        const before = heapBytes();
        for (let i = 0; i < 200; i++) run(); // 200 MiB of scratch if it leaked
        expect(heapBytes()).to.equal(before);
      });
      tf.dispose([a, b]);
    });

    it('setGemmEnabled(false) restores the routes without gemm (same values); forcing gemm then throws', () => {
      const av = values(3 * 17 * 33, 5);
      const bv = values(3 * 9 * 33, 6);
      const want = reference(av, bv, 3, (o) => o, (o) => o, 17, 33, 9, false, true);
      const previous = setGemmEnabled(false);
      try {
        const out = tf.tidy(() => tf.matMul(tf.tensor(av, [3, 17, 33]), tf.tensor(bv, [3, 9, 33]), false, true));
        assertClose(out.dataSync() as Float32Array, want, TOL);
        out.dispose();
        expect(gemmAvailable(asWasmBackend(tf.backend(), 'test'))).to.equal(false);
        const ones = tf.ones([2, 2, 2]);
        expect(() => withRoute('gemm', () => tf.matMul(ones, ones))).to.throw(/gemm route is unavailable: disabled/);
        ones.dispose();
      } finally {
        setGemmEnabled(previous);
      }
    });

    it('a backend without an exposed memory gets null and a reason (the caller keeps the other routes)', () => {
      const fake = { HEAPU8: new Uint8Array(16), asm: {}, _malloc: () => 0, _free: () => undefined } as unknown as WasmModule;
      expect(gemmKernel(fake)).to.equal(null);
      expect(gemmUnavailableReason(fake)).to.match(/WebAssembly\.Memory/);
      expect(() => setMatMulRoute('bogus' as ProductRoute)).to.throw(/'auto' \| 'xnnpack' \| 'gemm' \| 'scalar'/);
    });
  });
});
