/**
 * Project kernels on wasm against the cpu backend (the reference), plus hand-computed cases where
 * the cpu kernel itself is wrong or where a tiny example pins the semantics.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { selectBackend } from '../select';
import { assertClose, expectNoLeakedTensors, gradCheck, withBackend } from '../../testing';
import { isProjectKernelRegistered, projectKernelNames, registerProjectKernels, unregisterProjectKernels } from './index';
import { estimateRoutes, matMulGeometry, setMatMulRoute, batchRuns, type FusedActivation, type ProductRoute } from './batch-mat-mul';
import { asWasmBackend } from './wasm-internals';

const TOL = { rtol: 1e-4, atol: 1e-5 };
const ALL_KERNELS = [
  'BatchMatMul',
  '_FusedMatMul',
  'Identity',
  'Cast',
  'GatherV2',
  'Prelu',
  'UnsortedSegmentSum',
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  ...(process.env.NL_SMT_FUSED === 'off' ? [] : ['NlSmtStableStep']), // smt-step/ (escape hatch: NL_SMT_FUSED=off)
  ...(process.env.NL_WASM_GEMM === 'off' ? [] : ['NlNewtonSchulz']), // newton-schulz.ts (gemm.wasm's newton_schulz; off with NL_WASM_GEMM=off)
];

/** Deterministic values in [-1, 1) (mulberry32), so both backends see identical inputs. */
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

function rnd(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(values(tf.util.sizeFromShape(shape), seed), shape);
}

/** Runs `fn` on cpu with the built-in cpu kernels only (the project's cpu kernel restored after). */
async function onCpuReference<T>(fn: () => T | Promise<T>): Promise<T> {
  return withBackend('cpu', async () => {
    unregisterProjectKernels('cpu');
    try {
      return await fn();
    } finally {
      registerProjectKernels('cpu');
    }
  });
}

/** Runs `f` on wasm (project kernels) and on cpu (built-in kernels); returns both results as plain arrays. */
async function onBoth(f: () => tf.Tensor | tf.Tensor[]): Promise<{ wasm: Float32Array[]; cpu: Float32Array[]; shapes: number[][] }> {
  const read = (r: tf.Tensor | tf.Tensor[]): { v: Float32Array[]; s: number[][] } => {
    const list = Array.isArray(r) ? r : [r];
    const out = { v: list.map((t) => Float32Array.from(t.dataSync() as ArrayLike<number>)), s: list.map((t) => t.shape) };
    tf.dispose(list);
    return out;
  };
  expect(tf.getBackend()).to.equal('wasm');
  const w = read(tf.tidy(f));
  const c = await onCpuReference(() => read(tf.tidy(f)));
  expect(w.s).to.deep.equal(c.s, 'shapes differ between wasm and cpu');
  return { wasm: w.v, cpu: c.v, shapes: w.s };
}

async function expectSameOnBoth(name: string, f: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  const r = await onBoth(f);
  r.wasm.forEach((v, i) => assertClose(v, r.cpu[i], { ...TOL, name: `${name} [output ${i}]` }));
}

/** The wasm heap's size: it grows when malloc runs out, so a C++-side leak makes it climb. */
function heapBytes(): number {
  return asWasmBackend(tf.backend(), 'test').wasm.HEAPU8.length;
}

describe('project kernels (wasm vs cpu)', function () {
  let previous = '';
  before(async function () {
    previous = tf.getBackend();
    await selectBackend('wasm');
  });
  after(async function () {
    setMatMulRoute('auto');
    if (previous && previous !== tf.getBackend()) await selectBackend(previous);
  });

  describe('registration', () => {
    afterEach(() => {
      registerProjectKernels('wasm');
    });

    it('wasm: registration is idempotent and reversible', () => {
      const first = registerProjectKernels('wasm');
      const second = registerProjectKernels('wasm');
      expect(first).to.deep.equal(ALL_KERNELS);
      expect(second).to.deep.equal(first);
      expect(projectKernelNames('wasm')).to.deep.equal(first);
      for (const name of first) expect(isProjectKernelRegistered(name), name).to.equal(true);

      const builtIn = (tf.getKernel('BatchMatMul', 'wasm') as unknown as Record<symbol, tf.KernelConfig>)[
        Symbol.for('nested-learning/project-kernel/replaced')
      ];
      expect(unregisterProjectKernels()).to.deep.equal(first);
      expect(tf.getKernel('BatchMatMul', 'wasm')).to.equal(builtIn);
      // kernels wasm lacks are removed again; replaced ones are back to the built-in config
      for (const added of ALL_KERNELS.filter((k) => !['BatchMatMul', '_FusedMatMul', 'Identity', 'Cast', 'GatherV2', 'Prelu'].includes(k))) {
        expect(tf.getKernel(added, 'wasm'), added).to.equal(undefined);
      }
      expect(unregisterProjectKernels()).to.deep.equal([]);

      expect(registerProjectKernels('wasm')).to.deep.equal(first);
      expect(registerProjectKernels('tensorflow')).to.deep.equal([]);
    });

    it('cpu gets only the O(n) UnsortedSegmentSum, also reversibly', () => {
      expect(registerProjectKernels('cpu')).to.deep.equal(['UnsortedSegmentSum']);
      expect(registerProjectKernels('cpu')).to.deep.equal(['UnsortedSegmentSum']);
      expect(isProjectKernelRegistered('UnsortedSegmentSum', 'cpu')).to.equal(true);
      expect(isProjectKernelRegistered('BatchMatMul', 'cpu')).to.equal(false);
      const builtIn = (tf.getKernel('UnsortedSegmentSum', 'cpu') as unknown as Record<symbol, tf.KernelConfig>)[
        Symbol.for('nested-learning/project-kernel/replaced')
      ];
      expect(builtIn?.backendName).to.equal('cpu');
      expect(unregisterProjectKernels('cpu')).to.deep.equal(['UnsortedSegmentSum']);
      expect(tf.getKernel('UnsortedSegmentSum', 'cpu')).to.equal(builtIn);
      expect(registerProjectKernels('cpu')).to.deep.equal(['UnsortedSegmentSum']);
    });

    it('selectBackend reports the kernels, also when called again', async () => {
      const info = await selectBackend('wasm');
      expect(info.kernels).to.deep.equal(ALL_KERNELS);
      expect((await selectBackend('wasm')).kernels).to.deep.equal(info.kernels);
    });
  });

  describe('BatchMatMul', () => {
    // [name, a shape, b shape, transposeA, transposeB]
    const cases: Array<[string, number[], number[], boolean, boolean]> = [
      ['plain', [5, 7], [7, 3], false, false],
      ['transposeA', [7, 5], [7, 3], true, false],
      ['transposeB', [5, 7], [3, 7], false, true],
      ['transposeA+B', [7, 5], [3, 7], true, true],
      ['batched', [4, 5, 7], [4, 7, 3], false, false],
      ['batched transposeA', [4, 7, 5], [4, 7, 3], true, false],
      ['batched transposeB', [4, 5, 7], [4, 3, 7], false, true],
      ['batched transposeA+B', [4, 7, 5], [4, 3, 7], true, true],
      ['batch folded into rows', [4, 5, 7], [7, 3], false, false],
      ['batch folded, transposeA+B', [4, 7, 5], [3, 7], true, true],
      ['a shared across b batch', [5, 7], [4, 7, 3], false, false],
      ['a shared, transposeB', [5, 7], [4, 3, 7], false, true],
      ['rank 4', [2, 3, 5, 7], [2, 3, 7, 3], false, false],
      ['rank 4 vs rank 3 (broadcast)', [2, 3, 5, 7], [3, 7, 3], false, false],
      ['batch of 1 vs 3', [1, 5, 7], [3, 7, 3], false, false],
      ['single row per slice (m = 1)', [6, 1, 16], [6, 16, 16], false, false],
      ['medium slices (XNNPACK in auto)', [3, 20, 24], [3, 24, 20], false, false],
      ['medium slices transposed', [3, 24, 20], [3, 20, 24], true, true],
    ];
    const routes: ProductRoute[] = ['auto', 'xnnpack', 'gemm', 'scalar'];
    for (const route of routes) {
      describe(`route ${route}`, () => {
        before(() => setMatMulRoute(route));
        after(() => setMatMulRoute('auto'));
        cases.forEach(([name, as, bs, ta, tb], i) => {
          const g = matMulGeometry(as, bs, ta, tb, 'test');
          const simple = [1, g.outBatch].includes(g.batchA) && [1, g.outBatch].includes(g.batchB);
          if (route === 'scalar' && !simple) return; // the scalar loop only broadcasts batches of 1
          it(`${name}: a [${as}]${ta ? '^T' : ''} x b [${bs}]${tb ? '^T' : ''}`, async () => {
            await expectSameOnBoth(name, () => tf.matMul(rnd(as, 10 + i), rnd(bs, 100 + i), ta, tb));
          });
        });
      });
    }

    it('auto picks XNNPACK for the medium cases and the scalar loop for tiny ones', () => {
      const pick = (as: number[], bs: number[], ta: boolean, tb: boolean): string => {
        const e = estimateRoutes(matMulGeometry(as, bs, ta, tb, 't'), ta, tb);
        return e.xnnpack < e.scalar ? 'xnnpack' : 'scalar';
      };
      expect(pick([3, 20, 24], [3, 24, 20], false, false)).to.equal('xnnpack');
      expect(pick([3, 24, 20], [3, 20, 24], true, true)).to.equal('xnnpack');
      expect(pick([256, 256], [256, 256], true, false)).to.equal('xnnpack');
      expect(pick([4, 5, 7], [4, 7, 3], false, false)).to.equal('scalar');
      expect(pick([6, 1, 16], [6, 16, 16], false, false)).to.equal('scalar');
    });

    it('broadcasts batch dims both ways ([2,1] x [1,3]), where the cpu kernel is wrong', async () => {
      // cpu flattens batch dims and broadcasts modulo their product, so the reference broadcasts
      // explicitly first; checked on each route.
      for (const route of ['auto', 'xnnpack', 'gemm'] as ProductRoute[]) {
        setMatMulRoute(route);
        const r = await onBoth(() => {
          const a = rnd([2, 1, 5, 7], 1);
          const b = rnd([1, 3, 3, 7], 2);
          return tf.getBackend() === 'cpu'
            ? tf.matMul(tf.broadcastTo(a, [2, 3, 5, 7]), tf.broadcastTo(b, [2, 3, 3, 7]), false, true)
            : tf.matMul(a, b, false, true);
        });
        assertClose(r.wasm[0], r.cpu[0], { ...TOL, name: `broadcast [2,1]x[1,3] route ${route}` });
      }
      setMatMulRoute('auto');
      expect(() => {
        setMatMulRoute('scalar');
        try {
          tf.tidy(() => tf.matMul(rnd([2, 1, 5, 7], 1), rnd([1, 3, 7, 3], 2)));
        } finally {
          setMatMulRoute('auto');
        }
      }).to.throw(/scalar route cannot broadcast/);
    });

    it('hand-computed 2x2 products with each transpose flag', () => {
      const a = tf.tensor2d([[1, 2], [3, 4]]);
      const b = tf.tensor2d([[5, 6], [7, 8]]);
      assertClose(tf.matMul(a, b), [[19, 22], [43, 50]]);
      assertClose(tf.matMul(a, b, true, false), [[26, 30], [38, 44]]);
      assertClose(tf.matMul(a, b, false, true), [[17, 23], [39, 53]]);
      assertClose(tf.matMul(a, b, true, true), [[23, 31], [34, 46]]);
      // batched: slice 2 is slice 1 times 2, so its product is 4x.
      const a3 = tf.stack([a, a.mul(2)]);
      const b3 = tf.stack([b, b.mul(2)]);
      setMatMulRoute('xnnpack');
      try {
        assertClose(tf.matMul(a3, b3, true, true), [[[23, 31], [34, 46]], [[92, 124], [136, 184]]]);
      } finally {
        setMatMulRoute('auto');
      }
      tf.dispose([a, b, a3, b3]);
    });

    it('empty inner dimension gives zeros, empty outer gives an empty tensor', () => {
      setMatMulRoute('xnnpack');
      try {
        const z = tf.matMul(tf.zeros([2, 3, 0]), tf.zeros([2, 0, 4]));
        expect(z.shape).to.deep.equal([2, 3, 4]);
        assertClose(z, new Array(24).fill(0));
        const e = tf.matMul(tf.zeros([2, 0, 5]), tf.zeros([5, 4]));
        expect(e.shape).to.deep.equal([2, 0, 4]);
        tf.dispose([z, e]);
      } finally {
        setMatMulRoute('auto');
      }
    });

    it('a reshaped weight block is not served a stale XNNPACK operator', async () => {
      // XNNPACK caches one operator per b id and Reshape keeps the id: the built-in kernel returns
      // the [4,4] product for the [2,8] view. Checked against cpu for the second product.
      await expectSameOnBoth('reshaped weights', () => {
        const w = rnd([4, 4], 3);
        const first = tf.matMul(rnd([3, 4], 4), w);
        const second = tf.matMul(rnd([3, 2], 5), w.reshape([2, 8]));
        return [first, second];
      });
    });

    it('gradients through transposed, batched and broadcast matMul match cpu', async () => {
      const cases: Array<[number[], number[], boolean, boolean]> = [
        [[5, 7], [7, 3], false, false],
        [[7, 5], [7, 3], true, false],
        [[5, 7], [3, 7], false, true],
        [[7, 5], [3, 7], true, true],
        [[4, 5, 7], [4, 7, 3], false, false],
        [[4, 7, 5], [4, 3, 7], true, true],
        [[3, 16, 24], [3, 24, 16], false, false],
        // No broadcast case: tfjs-core 4.22's BatchMatMul gradient does not reduce broadcast batch
        // dims (d/db of [4,5,7] x [7,3] comes out [4,7,3] and the tape throws on every backend).
      ];
      for (const [as, bs, ta, tb] of cases) {
        await expectSameOnBoth(`grad a[${as}]${ta ? '^T' : ''} b[${bs}]${tb ? '^T' : ''}`, () => {
          const a = rnd(as, 21);
          const b = rnd(bs, 22);
          const outShape = tf.matMul(a, b, ta, tb).shape;
          const w = rnd(outShape, 23); // weights make every output element matter differently
          return tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb).mul(w).sum())([a, b]);
        });
      }
    });

    it('gradients of a batched transposed product pass a finite-difference check on wasm', () => {
      const a = rnd([2, 4, 3], 31);
      const b = rnd([2, 5, 4], 32);
      const w = rnd([2, 3, 5], 33);
      gradCheck((x, y) => tf.matMul(x, y, true, true).mul(w).sum() as tf.Scalar, [a, b], { name: 'batched tA+tB' });
      tf.dispose([a, b, w]);
    });
  });

  describe('_FusedMatMul', () => {
    const activations: FusedActivation[] = ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'];
    // [name, a, b, transposeA, transposeB, bias shape or null, prelu weight shape]
    const layouts: Array<[string, number[], number[], boolean, boolean, number[] | null, number[]]> = [
      ['plain, bias [n]', [5, 6], [6, 4], false, false, [4], [4]],
      ['transposeB, bias [n] (built-in mis-adds it)', [5, 6], [4, 6], false, true, [4], [4]],
      ['transposeA, no bias', [6, 5], [6, 4], true, false, null, [4]],
      ['bias [1] (built-in reads past it)', [5, 6], [6, 4], false, false, [1], [1]],
      ['bias [m, n] (built-in rejects it)', [5, 6], [6, 4], false, false, [5, 4], [5, 1]],
      ['batched, bias [n]', [3, 5, 6], [3, 6, 4], false, false, [4], [4]],
      ['batched transposeA+B, bias [n]', [3, 6, 5], [3, 4, 6], true, true, [4], [5, 1]],
      ['folded batch, per-row prelu', [3, 5, 6], [1, 6, 4], false, false, [4], [5, 1]],
    ];
    layouts.forEach(([name, as, bs, ta, tb, biasShape, pShape], i) => {
      it(`${name}: every activation matches cpu`, async () => {
        for (const activation of activations) {
          await expectSameOnBoth(`${name} ${activation}`, () =>
            tf.fused.matMul({
              a: rnd(as, 40 + i),
              b: rnd(bs, 50 + i),
              transposeA: ta,
              transposeB: tb,
              bias: biasShape ? rnd(biasShape, 60 + i) : undefined,
              activation,
              preluActivationWeights: activation === 'prelu' ? rnd(pShape, 70 + i) : undefined,
              leakyreluAlpha: 0.3,
            }),
          );
        }
      });
    });

    it('hand-computed: relu(a b^T + bias)', () => {
      const out = tf.fused.matMul({
        a: tf.tensor2d([[1, 2], [3, 4]]),
        b: tf.tensor2d([[1, 0], [0, 1], [1, -1]]),
        transposeB: true,
        bias: tf.tensor1d([0, -3, 0.5]),
        activation: 'relu',
      });
      // a b^T = [[1, 2, -1], [3, 4, -1]]; + bias = [[1, -1, -0.5], [3, 1, -0.5]]
      assertClose(out, [[1, 0, 0], [3, 1, 0]]);
      out.dispose();
    });

    it('gradients through fused matMul with bias and transposeB match cpu', async () => {
      await expectSameOnBoth('fused grad', () => {
        const a = rnd([5, 6], 81);
        const b = rnd([4, 6], 82);
        const bias = rnd([4], 83);
        const w = rnd([5, 4], 84);
        return tf.grads((x: tf.Tensor, y: tf.Tensor, c: tf.Tensor) =>
          tf.fused.matMul({ a: x as tf.Tensor2D, b: y as tf.Tensor2D, transposeB: true, bias: c }).mul(w).sum(),
        )([a, b, bias]);
      });
    });
  });

  describe('Identity and same-dtype Cast share the buffer', () => {
    const dataIds = (): number => (tf.engine().backend as unknown as { numDataIds(): number }).numDataIds();

    it('clone / identity / same-dtype cast: equal values, no new buffer, the copy survives the original', () => {
      const x = tf.tensor2d(values(12, 5), [3, 4]);
      const before = dataIds();
      const c = tf.clone(x);
      const same = tf.cast(x, 'float32');
      expect(dataIds()).to.equal(before); // shared, not copied
      const expected = x.dataSync().slice();
      x.dispose();
      assertClose(c.dataSync(), expected, { rtol: 0, atol: 0, name: 'clone after dispose' });
      assertClose(same.dataSync(), expected, { rtol: 0, atol: 0, name: 'cast after dispose' });
      c.dispose();
      expect(dataIds()).to.equal(before); // still held by `same`
      same.dispose();
      expect(dataIds()).to.equal(before - 1); // last reference frees the buffer
    });

    it('dtype-changing casts convert as on cpu (bool = x != 0, which the built-in wasm Cast gets wrong), int32 identities copy', () => {
      const x = tf.tensor1d([1.7, -2.2, 0, 3.9]);
      expect(Array.from(tf.cast(x, 'int32').dataSync())).to.deep.equal([1, -2, 0, 3]);
      expect(Array.from(tf.cast(x, 'bool').dataSync())).to.deep.equal([1, 1, 0, 1]);
      const i = tf.tensor1d([4, 5], 'int32');
      const ic = tf.clone(i);
      expect(ic.dtype).to.equal('int32');
      expect(Array.from(ic.dataSync())).to.deep.equal([4, 5]);
      tf.dispose([x, i, ic]);
    });

    it('a variable assigned from a clone keeps its value when the clone source changes by assign', () => {
      const v = tf.variable(tf.tensor1d([1, 2, 3]));
      const src = tf.tensor1d([7, 8, 9]);
      v.assign(tf.clone(src));
      const w = tf.variable(src); // shares src's buffer too
      w.assign(tf.tensor1d([0, 0, 0]));
      expect(Array.from(v.dataSync())).to.deep.equal([7, 8, 9]);
      expect(Array.from(src.dataSync())).to.deep.equal([7, 8, 9]);
      tf.dispose([v, src, w]);
    });

    it('gradients through tf.customGrad saved values and clones equal the copying kernels, without leaks', async () => {
      const f = (a: tf.Tensor, b: tf.Tensor): tf.Scalar =>
        tf.tidy(() => {
          const body = (p: tf.Tensor, q: tf.Tensor, save: tf.GradSaveFunc): { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] } => {
            save([p, q]);
            return { value: p.mul(q).sin(), gradFunc: (dy, saved) => [dy.mul(saved[1]).mul(saved[0].mul(saved[1]).cos()), dy.mul(saved[0]).mul(saved[0].mul(saved[1]).cos())] };
          };
          const cg = tf.customGrad(body as unknown as Parameters<typeof tf.customGrad>[0]);
          return (cg(tf.clone(a), b) as tf.Tensor).sum() as tf.Scalar;
        });
      const a = tf.tensor2d(values(20, 11), [4, 5]);
      const b = tf.tensor2d(values(20, 12), [4, 5]);
      const shared = tf.grads(f)([a, b]);
      unregisterProjectKernels();
      try {
        const copied = tf.grads(f)([a, b]);
        shared.forEach((g, i) => assertClose(g, copied[i], { rtol: 0, atol: 0, name: `grad ${i}` }));
        tf.dispose(copied);
      } finally {
        registerProjectKernels('wasm');
      }
      tf.dispose(shared);
      const ids = dataIds();
      await expectNoLeakedTensors(() => tf.dispose(tf.grads(f)([a, b])), { iterations: 5 });
      expect(dataIds()).to.equal(ids); // no backend buffer left behind either
      tf.dispose([a, b]);
    });
  });

  describe('GatherV2 (block copies)', () => {
    const cases: Array<{ name: string; shape: number[]; indices: number[]; idxShape?: number[]; axis: number }> = [
      { name: 'one chunk on axis 1 of [4,5,8,3]', shape: [4, 5, 8, 3], indices: [2], axis: 1 },
      { name: 'repeated / unordered rows, axis 0 (embedding lookup)', shape: [10, 16], indices: [3, 3, 0, 9, 1], axis: 0 },
      { name: '2-D indices, negative axis', shape: [3, 6, 4, 4], indices: [5, 0, 2, 2], idxShape: [2, 2], axis: -3 },
      { name: 'last axis (inner 1: built-in path)', shape: [4, 7], indices: [6, 1], axis: 1 },
    ];
    for (const c of cases) {
      it(`${c.name}: equals cpu`, async () => {
        const x = values(tf.util.sizeFromShape(c.shape), 31);
        const run = (): Float32Array =>
          tf.tidy(() => tf.gather(tf.tensor(x, c.shape), tf.tensor(c.indices, c.idxShape ?? [c.indices.length], 'int32'), c.axis).dataSync() as Float32Array).slice();
        const got = run();
        const want = await withBackend('cpu', run);
        assertClose(got, want, { rtol: 0, atol: 0, name: c.name });
      });
    }

    it('int32 and bool tensors, gradients (embedding-style) equal cpu, no leaks', async () => {
      const xi = tf.tensor2d(Array.from({ length: 40 }, (_, i) => i * 3 - 7), [4, 10], 'int32');
      expect(Array.from(tf.gather(xi, [2, 0], 0).dataSync())).to.deep.equal([...Array.from({ length: 10 }, (_, i) => (20 + i) * 3 - 7), ...Array.from({ length: 10 }, (_, i) => i * 3 - 7)]);
      const xb = tf.tensor2d(Array.from({ length: 24 }, (_, i) => i % 3 === 0), [3, 8], 'bool');
      expect(Array.from(tf.gather(xb, [1], 0).dataSync())).to.deep.equal(Array.from({ length: 8 }, (_, i) => ((8 + i) % 3 === 0 ? 1 : 0)));
      tf.dispose([xi, xb]);
      const table = values(12 * 16, 7);
      const grad = (): Float32Array =>
        tf.tidy(() => {
          const w = tf.tensor2d(table, [12, 16]);
          const ids = tf.tensor1d([3, 11, 3, 0], 'int32');
          return tf.grad((v: tf.Tensor) => tf.gather(v, ids, 0).square().sum() as tf.Scalar)(w).dataSync() as Float32Array;
        }).slice();
      assertClose(grad(), await withBackend('cpu', grad), TOL);
      const big = tf.randomNormal([4, 6, 32]);
      await expectNoLeakedTensors(() => tf.dispose(tf.gather(big, [5, 1], 1)), { iterations: 5 });
      big.dispose();
    });

  });

  describe('Prelu', () => {
    it('hand-computed per-row alpha [2,1] (the built-in kernel applies it per column)', () => {
      const out = tf.prelu(tf.tensor2d([[-1, -2, 3], [-4, 5, -6]]), tf.tensor2d([[0.1], [0.5]]));
      assertClose(out, [[-0.1, -0.2, 3], [-2, 5, -3]]);
      out.dispose();
    });

    it('matches cpu for trailing, per-row and scalar alphas, and its gradient', async () => {
      for (const alphaShape of [[4], [3, 1], [1], [2, 1, 4]]) {
        await expectSameOnBoth(`prelu alpha [${alphaShape}]`, () => {
          const x = rnd([2, 3, 4], 1);
          const alpha = rnd(alphaShape, 2);
          return [tf.prelu(x, alpha), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.prelu(a, b).mul(rnd([2, 3, 4], 3)).sum())([x, alpha])];
        });
      }
    });
  });

  describe('UnsortedSegmentSum', () => {
    it('hand-computed: rows summed by id, out-of-range ids skipped', () => {
      const x = tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]]);
      const out = tf.unsortedSegmentSum(x, tf.tensor1d([1, 1, 0, 5], 'int32'), 3);
      assertClose(out, [[5, 6], [4, 6], [0, 0]]);
      const neg = tf.engine().runKernel('UnsortedSegmentSum', { x, segmentIds: tf.tensor1d([-1, 2, 2, 0], 'int32') }, { numSegments: 3 }) as tf.Tensor;
      assertClose(neg, [[7, 8], [0, 0], [8, 10]]);
      tf.dispose([x, out, neg]);
    });

    it('int32 data keeps its dtype and exact sums', () => {
      const out = tf.unsortedSegmentSum(tf.tensor1d([10, 20, 30, 40], 'int32'), tf.tensor1d([0, 1, 0, 1], 'int32'), 2);
      expect(out.dtype).to.equal('int32');
      expect(Array.from(out.dataSync())).to.deep.equal([40, 60]);
      out.dispose();
    });

    it('rank-2 segment ids sum over both id axes (TensorFlow semantics)', () => {
      const x = tf.tensor3d([[[1, 2], [3, 4]], [[5, 6], [7, 8]]]);
      const ids = tf.tensor2d([[0, 1], [1, 1]], [2, 2], 'int32');
      const out = tf.engine().runKernel('UnsortedSegmentSum', { x, segmentIds: ids }, { numSegments: 2 }) as tf.Tensor;
      expect(out.shape).to.deep.equal([2, 2]);
      assertClose(out, [[1, 2], [15, 18]]);
      tf.dispose([x, ids, out]);
    });

    it('matches cpu on float32 data with repeated ids', async () => {
      await expectSameOnBoth('segment sum', () =>
        tf.unsortedSegmentSum(rnd([9, 3, 2], 5), tf.tensor1d([0, 3, 3, 1, 0, 7, 3, 3, 2], 'int32'), 8),
      );
    });

    it('rejects bad attributes with the field named', () => {
      const x = tf.ones([2, 2]);
      const ids = tf.tensor1d([0, 1], 'int32');
      expect(() => tf.engine().runKernel('UnsortedSegmentSum', { x, segmentIds: ids }, { numSegments: 1.5 })).to.throw(/numSegments/);
      const bad = tf.tensor1d([0, 1, 1], 'int32');
      expect(() => tf.engine().runKernel('UnsortedSegmentSum', { x, segmentIds: bad }, { numSegments: 2 })).to.throw(/segmentIds shape/);
      tf.dispose([x, ids, bad]);
    });

    it('the cpu project kernel matches the cpu built-in (float32, int32 values) and the hand case', async () => {
      const f = (): tf.Tensor[] => [
        tf.unsortedSegmentSum(rnd([9, 3, 2], 5), tf.tensor1d([0, 3, 3, 1, 0, 7, 3, 3, 2], 'int32'), 8),
        tf.unsortedSegmentSum(tf.tensor1d([10, 20, 30, 40, 50], 'int32'), tf.tensor1d([2, 0, 2, -1, 9], 'int32'), 3).cast('float32'),
      ];
      const read = (r: tf.Tensor[]): Float32Array[] => r.map((t) => Float32Array.from(t.dataSync()));
      const project = await withBackend('cpu', () => tf.tidy(() => read(f())));
      const builtIn = await onCpuReference(() => tf.tidy(() => read(f())));
      project.forEach((v, i) => assertClose(v, builtIn[i], { ...TOL, name: `cpu segment sum ${i}` }));
      assertClose(project[1], [20, 0, 40]);
    });

    it('tf.gather gradient matches cpu', async () => {
      await expectSameOnBoth('gather grad', () => {
        const w = rnd([4, 3], 9);
        return tf.grad((p: tf.Tensor) => tf.gather(p, tf.tensor1d([0, 2, 2, 5], 'int32')).mul(w).sum())(rnd([6, 3], 1));
      });
    });
  });

  describe('convolution gradients', () => {
    it('hand-computed depthwise conv1d (window 2): dW and dx', () => {
      // y[t] = w0 x[t] + w1 x[t+1], t = 0, 1; loss = sum(y) -> dW = [x0 + x1, x1 + x2], dx = [w0, w0 + w1, w1]
      const x = tf.tensor4d([1, 2, 3], [1, 1, 3, 1]);
      const w = tf.tensor4d([0.5, -2], [1, 2, 1, 1]);
      const [dx, dw] = tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.depthwiseConv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, 'valid').sum())([x, w]);
      assertClose(dw, [3, 5]);
      assertClose(dx, [0.5, -1.5, -2]);
      tf.dispose([x, w, dx, dw]);
    });

    // [name, x shape, filter shape, strides, pad]
    const depthwise: Array<[string, number[], number[], number, 'valid' | 'same' | number]> = [
      ['causal window 4 (left-padded, valid)', [2, 1, 9, 3], [1, 4, 3, 1], 1, 'valid'],
      ['same, channel multiplier 2', [2, 1, 8, 3], [1, 3, 3, 2], 1, 'same'],
      ['2-D, stride 2, same', [1, 5, 6, 2], [3, 2, 2, 2], 2, 'same'],
      ['2-D, explicit pad 1', [1, 4, 5, 2], [2, 3, 2, 1], 1, 1],
    ];
    depthwise.forEach(([name, xs, fs, stride, pad], i) => {
      it(`depthwiseConv2d gradients match cpu: ${name}`, async () => {
        await expectSameOnBoth(`depthwise ${name}`, () => {
          const x = rnd(xs, 90 + i);
          const f = rnd(fs, 95 + i);
          const outShape = tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, stride, pad).shape;
          const w = rnd(outShape, 99);
          return tf.grads((a: tf.Tensor, k: tf.Tensor) => tf.depthwiseConv2d(a as tf.Tensor4D, k as tf.Tensor4D, stride, pad).mul(w).sum())([x, f]);
        });
      });
    });

    it('conv1d and conv2d filter (and input) gradients match cpu', async () => {
      await expectSameOnBoth('conv1d stride 1 same', () => {
        const x = rnd([2, 9, 3], 1);
        const f = rnd([3, 3, 4], 2);
        const w = rnd([2, 9, 4], 3);
        return tf.grads((a: tf.Tensor, k: tf.Tensor) => tf.conv1d(a as tf.Tensor3D, k as tf.Tensor3D, 1, 'same').mul(w).sum())([x, f]);
      });
      await expectSameOnBoth('conv1d stride 2 valid', () => {
        const x = rnd([2, 10, 3], 4);
        const f = rnd([4, 3, 5], 5);
        const w = rnd([2, 4, 5], 6);
        return tf.grads((a: tf.Tensor, k: tf.Tensor) => tf.conv1d(a as tf.Tensor3D, k as tf.Tensor3D, 2, 'valid').mul(w).sum())([x, f]);
      });
      await expectSameOnBoth('conv2d stride 2 same', () => {
        const x = rnd([2, 5, 6, 3], 7);
        const f = rnd([3, 2, 3, 4], 8);
        const w = rnd([2, 3, 3, 4], 9);
        return tf.grads((a: tf.Tensor, k: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, k as tf.Tensor4D, 2, 'same').mul(w).sum())([x, f]);
      });
    });

    it('a conv1d layer trains on wasm and matches cpu', async () => {
      const step = async (): Promise<Float32Array[]> => {
        const model = tf.sequential({ layers: [tf.layers.conv1d({ inputShape: [7, 3], filters: 2, kernelSize: 3, padding: 'same' }), tf.layers.flatten()] });
        model.setWeights([rnd([3, 3, 2], 1), rnd([2], 2)]);
        model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
        const x = rnd([2, 7, 3], 3);
        const y = rnd([2, 14], 4);
        const loss = (await model.trainOnBatch(x, y)) as number;
        const out = [Float32Array.of(loss), ...model.getWeights().map((v) => Float32Array.from(v.dataSync()))];
        tf.dispose([x, y]);
        model.dispose();
        return out;
      };
      const wasm = await step();
      const cpu = await onCpuReference(step);
      wasm.forEach((v, i) => assertClose(v, cpu[i], { rtol: 1e-4, atol: 1e-6, name: i === 0 ? 'loss' : `weight ${i - 1}` }));
    });
  });

  describe('training', () => {
    /** Embedding -> flatten -> dense; one SGD step; returns [loss, ...weights after the step]. */
    async function embeddingStep(): Promise<Float32Array[]> {
      const model = tf.sequential({
        layers: [
          tf.layers.embedding({ inputDim: 10, outputDim: 4, inputLength: 3 }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 2 }),
        ],
      });
      model.setWeights([rnd([10, 4], 1), rnd([12, 2], 2), rnd([2], 3)]);
      model.compile({ optimizer: tf.train.sgd(0.5), loss: 'meanSquaredError' });
      const x = tf.tensor2d([[1, 4, 4], [9, 0, 1]], [2, 3], 'int32');
      const y = rnd([2, 2], 4);
      const loss = (await model.trainOnBatch(x, y)) as number;
      const out = [Float32Array.of(loss), ...model.getWeights().map((w) => Float32Array.from(w.dataSync()))];
      tf.dispose([x, y]);
      model.dispose();
      return out;
    }

    it('an Embedding model trains on wasm (it throws without the project kernels) and matches cpu', async () => {
      unregisterProjectKernels();
      let err: Error | null = null;
      try {
        await embeddingStep();
      } catch (e) {
        err = e as Error;
      } finally {
        registerProjectKernels('wasm');
      }
      expect(err?.message).to.match(/UnsortedSegmentSum/);

      const wasm = await embeddingStep();
      const cpu = await onCpuReference(embeddingStep);
      wasm.forEach((v, i) => assertClose(v, cpu[i], { rtol: 1e-4, atol: 1e-6, name: i === 0 ? 'loss' : `weight ${i - 1}` }));
      // The step moved the embedding rows that were looked up (1, 4, 9, 0) and no others.
      const before = values(40, 1);
      for (let row = 0; row < 10; row++) {
        const moved = [0, 1, 2, 3].some((j) => Math.abs(wasm[1][row * 4 + j] - before[row * 4 + j]) > 1e-7);
        expect(moved, `embedding row ${row}`).to.equal([0, 1, 4, 9].includes(row));
      }
    });
  });

  describe('transformer-style step', () => {
    /**
     * Embedding, layer norm, causal depthwise conv (window 4), SiLU, L2-normalised heads, causal
     * softmax attention as batched transposed matMuls, GELU (erf), logSoftmax cross-entropy, Adam.
     * Returns [loss, ...gradients, ...parameters after one Adam step].
     */
    function step(): Float32Array[] {
      const [B, T, D, H, d, V] = [2, 8, 16, 2, 8, 11];
      const p: Record<string, tf.Variable> = {
        emb: tf.variable(rnd([V, D], 1)),
        wq: tf.variable(rnd([D, D], 2).mul(0.3)),
        wk: tf.variable(rnd([D, D], 3).mul(0.3)),
        wv: tf.variable(rnd([D, D], 4).mul(0.3)),
        wo: tf.variable(rnd([D, D], 5).mul(0.3)),
        conv: tf.variable(rnd([1, 4, D, 1], 6).mul(0.5)),
        gain: tf.variable(tf.ones([D])),
        out: tf.variable(rnd([D, V], 7).mul(0.3)),
      };
      const ids = tf.tensor1d([1, 3, 5, 7, 9, 2, 4, 6, 0, 10, 3, 3, 8, 1, 2, 5], 'int32');
      const targets = tf.tensor1d([3, 5, 7, 9, 2, 4, 6, 8, 10, 3, 3, 8, 1, 2, 5, 0], 'int32');
      const heads = (t: tf.Tensor): tf.Tensor => t.reshape([B, T, H, d]).transpose([0, 2, 1, 3]); // [B, H, T, d]
      const loss = (): tf.Scalar => {
        const x = tf.gather(p.emb, ids); // [B*T, D]
        const { mean, variance } = tf.moments(x, -1, true);
        const xn = x.sub(mean).div(variance.add(1e-5).sqrt()).mul(p.gain);
        let q = tf.matMul(xn, p.wq).reshape([B, T, D]);
        const padded = tf.pad(q, [[0, 0], [3, 0], [0, 0]]).reshape([B, 1, T + 3, D]) as tf.Tensor4D;
        q = tf.depthwiseConv2d(padded, p.conv as unknown as tf.Tensor4D, 1, 'valid').reshape([B, T, D]);
        q = q.mul(tf.sigmoid(q));
        let qh = heads(q);
        qh = qh.div(tf.norm(qh, 'euclidean', -1, true).add(1e-6));
        const scores = tf.matMul(qh, heads(tf.matMul(xn, p.wk)), false, true).mul(1 / Math.sqrt(d)); // [B, H, T, T]
        const causal = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
        const att = tf.softmax(scores.add(tf.sub(1, causal).mul(-1e9)));
        const o = tf.matMul(att, heads(tf.matMul(xn, p.wv))).transpose([0, 2, 1, 3]).reshape([B * T, D]);
        let y = tf.matMul(o, p.wo).add(x);
        y = y.mul(0.5).mul(tf.erf(y.div(Math.SQRT2)).add(1));
        const logp = tf.logSoftmax(tf.matMul(y, p.out));
        return tf.neg(tf.oneHot(targets, V).mul(logp).sum(-1).mean()) as tf.Scalar;
      };
      const { value, grads } = tf.variableGrads(loss);
      const opt = tf.train.adam(0.01);
      opt.applyGradients(Object.keys(grads).map((name) => ({ name, tensor: grads[name] })));
      const names = Object.keys(p);
      const out = [
        Float32Array.from(value.dataSync()),
        ...names.map((n) => Float32Array.from(grads[p[n].name].dataSync())),
        ...names.map((n) => Float32Array.from(p[n].dataSync())),
      ];
      tf.dispose([value, ids, targets, ...Object.values(grads), ...Object.values(p)]);
      opt.dispose();
      return out;
    }

    it('runs on wasm and matches cpu (loss, gradients, updated parameters)', async () => {
      const wasm = step();
      const cpu = await onCpuReference(step);
      wasm.forEach((v, i) => assertClose(v, cpu[i], { rtol: 1e-4, atol: 1e-5, name: `output ${i}` }));
    });
  });

  describe('leaks', () => {
    const steps: Array<[string, () => tf.Tensor]> = [
      ['batched transposed (xnnpack)', () => tf.matMul(rnd([4, 7, 5], 1), rnd([4, 3, 7], 2), true, true)],
      ['folded batch', () => tf.matMul(rnd([4, 5, 7], 1), rnd([7, 3], 2))],
      ['broadcast [2,1]x[1,3]', () => tf.matMul(rnd([2, 1, 5, 7], 1), rnd([1, 3, 7, 3], 2))],
      ['fused prelu per row', () => tf.fused.matMul({ a: rnd([5, 6], 1), b: rnd([4, 6], 2), transposeB: true, bias: rnd([5, 4], 3), activation: 'prelu', preluActivationWeights: rnd([5, 1], 4) })],
      ['segment sum', () => tf.unsortedSegmentSum(rnd([5, 2], 1), tf.tensor1d([0, 1, 1, 0, 2], 'int32'), 3)],
      ['conv gradients', () => {
        const [dx, df] = tf.grads((a: tf.Tensor, k: tf.Tensor) => tf.conv1d(a as tf.Tensor3D, k as tf.Tensor3D, 1, 'same').sum())([rnd([2, 6, 3], 1), rnd([2, 3, 2], 2)]);
        const [ex, ef] = tf.grads((a: tf.Tensor, k: tf.Tensor) => tf.depthwiseConv2d(a as tf.Tensor4D, k as tf.Tensor4D, 1, 'same').sum())([rnd([1, 1, 6, 3], 3), rnd([1, 3, 3, 1], 4)]);
        return tf.addN([dx.sum(), df.sum(), ex.sum(), ef.sum()]);
      }],
      ['matMul gradients', () => {
        const [ga, gb] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b, false, true).sum())([rnd([3, 5, 4], 1), rnd([3, 6, 4], 2)]);
        return ga.sum().add(gb.sum());
      }],
    ];
    for (const [name, step] of steps) {
      it(`${name}: numTensors and backend data buffers stay flat`, async () => {
        for (const route of ['auto', 'xnnpack', 'gemm'] as ProductRoute[]) {
          setMatMulRoute(route);
          let buffers = -1;
          await expectNoLeakedTensors(
            () => {
              tf.tidy(() => step().sum()).dispose();
              const now = tf.backend().numDataIds(); // backend-level: counts kernel temporaries and views
              if (buffers >= 0) expect(now, `${name} route ${route}: backend data buffers`).to.equal(buffers);
              buffers = now;
            },
            { name: `${name} route ${route}`, iterations: 10 },
          );
        }
        setMatMulRoute('auto');
      });
    }

    it('the wasm heap stays flat over many per-slice XNNPACK calls (operators are freed)', () => {
      setMatMulRoute('xnnpack');
      try {
        const a = rnd([16, 8, 32], 1);
        const b = rnd([16, 32, 32], 2); // 16 fresh operators per call, 4 KB of packed weights each
        const run = (): void => tf.tidy(() => tf.matMul(a, b, false, true).sum()).dispose();
        for (let i = 0; i < 20; i++) run();
        const before = heapBytes();
        for (let i = 0; i < 200; i++) run();
        expect(heapBytes()).to.equal(before);
        tf.dispose([a, b]);
      } finally {
        setMatMulRoute('auto');
      }
    });
  });

  it('batchRuns folds contiguous slices and maps broadcast indices', () => {
    expect(batchRuns([4], [], [4])).to.deep.equal([{ a: 0, b: 0, out: 0, count: 4 }]);
    expect(batchRuns([], [3], [3])).to.deep.equal([
      { a: 0, b: 0, out: 0, count: 1 },
      { a: 0, b: 1, out: 1, count: 1 },
      { a: 0, b: 2, out: 2, count: 1 },
    ]);
    // a [2,3] vs b [2,1]: each b slice serves 3 consecutive a slices.
    expect(batchRuns([2, 3], [2, 1], [2, 3])).to.deep.equal([
      { a: 0, b: 0, out: 0, count: 3 },
      { a: 3, b: 1, out: 3, count: 3 },
    ]);
    // a [2,1] vs b [1,3]: out (i, j) reads a slice i, b slice j.
    expect(batchRuns([2, 1], [1, 3], [2, 3]).map((r) => [r.a, r.b, r.count])).to.deep.equal([
      [0, 0, 1], [0, 1, 1], [0, 2, 1], [1, 0, 1], [1, 1, 1], [1, 2, 1],
    ]);
  });
});
