/*
 * Batched small float32 GEMM and blocked transpose for the tfjs wasm backend (wasm SIMD128).
 *
 * This module is instantiated with tfjs-backend-wasm's own WebAssembly.Memory (it imports env.memory)
 * and works on tensors in place: every pointer below is a byte offset into the tfjs heap. Rules that
 * keep it from corrupting tfjs memory (checked by gemm.test.ts on the built module):
 *   - no static data (no data segment): no globals, no string literals, no lookup tables;
 *   - no libc (no memset/memcpy calls: the loops below are plain element loops, built -fno-builtin);
 *   - no shadow-stack use in practice (all temporaries are SIMD locals after inlining); the loader
 *     still points the exported __stack_pointer at a block it mallocs from tfjs, in case.
 *
 * Layouts (row-major, as tfjs stores tensors):
 *   op(A)[i, p] = transA ? a[p * m + i] : a[i * k + p]      (A slice stored [m, k] or [k, m])
 *   op(B)[p, j] = transB ? b[j * k + p] : b[p * n + j]      (B slice stored [k, n] or [n, k])
 *   out[i, j]   = sum_p op(A)[i, p] * op(B)[p, j]           (out slice [m, n])
 *
 * B is packed per slice into column panels of NR = 8: panel q holds op(B)[p, 8q .. 8q+7] for
 * p = 0..k-1 contiguously (k * 8 floats), zero-padded past n. The micro-kernel keeps an MR x 8 tile
 * of out (MR <= 4) in 8 f32x4 accumulators and, per p, loads one 8-wide panel row and splats MR
 * values of op(A) (v128.load32_splat: strided A needs no packing, transposed or not).
 */
#include <wasm_simd128.h>
#include <stdint.h>

#define NR 8
#define MR 4

typedef float f32;

/* Packs op(B) columns [j0, j0 + 8) into dst[k][8] (zero past n). */
static void pack_panel(const f32 *b, f32 *dst, int k, int n, int j0, int transB) {
  int cols = n - j0;
  if (cols > NR) cols = NR;
  if (!transB) {
    /* Row p of the panel = b[p * n + j0 ..]. */
    if (cols == NR) {
      for (int p = 0; p < k; p++) {
        const f32 *src = b + (intptr_t)p * n + j0;
        wasm_v128_store(dst + p * NR, wasm_v128_load(src));
        wasm_v128_store(dst + p * NR + 4, wasm_v128_load(src + 4));
      }
    } else {
      for (int p = 0; p < k; p++) {
        const f32 *src = b + (intptr_t)p * n + j0;
        f32 *d = dst + p * NR;
        int jj = 0;
        for (; jj < cols; jj++) d[jj] = src[jj];
        for (; jj < NR; jj++) d[jj] = 0.0f;
      }
    }
    return;
  }
  /* transB: panel[p][jj] = b[(j0 + jj) * k + p]; 4x4 register transposes of 4 B rows x 4 p. */
  int jj = 0;
  for (; jj + 4 <= cols; jj += 4) {
    const f32 *r0 = b + (intptr_t)(j0 + jj) * k;
    const f32 *r1 = r0 + k;
    const f32 *r2 = r1 + k;
    const f32 *r3 = r2 + k;
    int p = 0;
    for (; p + 4 <= k; p += 4) {
      v128_t x0 = wasm_v128_load(r0 + p);
      v128_t x1 = wasm_v128_load(r1 + p);
      v128_t x2 = wasm_v128_load(r2 + p);
      v128_t x3 = wasm_v128_load(r3 + p);
      /* t0 = x0[0] x1[0] x0[1] x1[1], t1 = x0[2] x1[2] x0[3] x1[3], same for x2/x3. */
      v128_t t0 = wasm_i32x4_shuffle(x0, x1, 0, 4, 1, 5);
      v128_t t1 = wasm_i32x4_shuffle(x0, x1, 2, 6, 3, 7);
      v128_t t2 = wasm_i32x4_shuffle(x2, x3, 0, 4, 1, 5);
      v128_t t3 = wasm_i32x4_shuffle(x2, x3, 2, 6, 3, 7);
      f32 *d = dst + p * NR + jj;
      wasm_v128_store(d, wasm_i64x2_shuffle(t0, t2, 0, 2));
      wasm_v128_store(d + NR, wasm_i64x2_shuffle(t0, t2, 1, 3));
      wasm_v128_store(d + 2 * NR, wasm_i64x2_shuffle(t1, t3, 0, 2));
      wasm_v128_store(d + 3 * NR, wasm_i64x2_shuffle(t1, t3, 1, 3));
    }
    for (; p < k; p++) {
      f32 *d = dst + p * NR + jj;
      d[0] = r0[p];
      d[1] = r1[p];
      d[2] = r2[p];
      d[3] = r3[p];
    }
  }
  for (; jj < cols; jj++) {
    const f32 *r = b + (intptr_t)(j0 + jj) * k;
    for (int p = 0; p < k; p++) dst[p * NR + jj] = r[p];
  }
  for (; jj < NR; jj++) {
    for (int p = 0; p < k; p++) dst[p * NR + jj] = 0.0f;
  }
}

/* Stores the first `cols` (1..8) lanes of lo|hi to c. */
static inline __attribute__((always_inline)) void store_row(f32 *c, v128_t lo, v128_t hi, int cols) {
  if (cols == NR) {
    wasm_v128_store(c, lo);
    wasm_v128_store(c + 4, hi);
    return;
  }
  v128_t v = lo;
  if (cols >= 4) {
    wasm_v128_store(c, lo);
    c += 4;
    cols -= 4;
    v = hi;
  }
  if (cols >= 2) {
    wasm_v128_store64_lane(c, v, 0);
    c += 2;
    cols -= 2;
    v = wasm_i64x2_shuffle(v, v, 1, 1);
  }
  if (cols == 1) wasm_v128_store32_lane(c, v, 0);
}

/* Loads the first `cols` (1..8) floats of c into lo|hi (zeros past cols; reads nothing past them). */
static inline __attribute__((always_inline)) void load_row(const f32 *c, v128_t *lo, v128_t *hi, int cols) {
  if (cols == NR) {
    *lo = wasm_v128_load(c);
    *hi = wasm_v128_load(c + 4);
    return;
  }
  f32 t[NR];
  for (int j = 0; j < NR; j++) t[j] = j < cols ? c[j] : 0.0f;
  *lo = wasm_f32x4_make(t[0], t[1], t[2], t[3]);
  *hi = wasm_f32x4_make(t[4], t[5], t[6], t[7]);
}

/*
 * out tile [mr x cols] (+)= op(A)[rows i0.., p0 .. p0+kc) @ panel rows. `a` points at op(A)[i0, p0];
 * consecutive rows are `rs` floats apart and consecutive p are `cs` floats apart. With `accumulate` the
 * tile starts from the current contents of c (a later k block), else from zero. mr is a compile-time
 * constant at every call site, so the code over rows unrolls and the accumulators stay SIMD locals.
 */
static inline __attribute__((always_inline)) void micro(
    const int mr, int kc, const f32 *a, int rs, int cs, const f32 *panel, f32 *c, int ldc, int cols, int accumulate) {
  v128_t lo0 = wasm_f32x4_splat(0.0f), hi0 = lo0, lo1 = lo0, hi1 = lo0;
  v128_t lo2 = lo0, hi2 = lo0, lo3 = lo0, hi3 = lo0;
  if (accumulate) {
    load_row(c, &lo0, &hi0, cols);
    if (mr > 1) load_row(c + ldc, &lo1, &hi1, cols);
    if (mr > 2) load_row(c + 2 * ldc, &lo2, &hi2, cols);
    if (mr > 3) load_row(c + 3 * ldc, &lo3, &hi3, cols);
  }
  const f32 *a0 = a;
  const f32 *a1 = a + rs;
  const f32 *a2 = a + 2 * rs;
  const f32 *a3 = a + 3 * rs;
  for (int p = 0; p < kc; p++) {
    v128_t b0 = wasm_v128_load(panel);
    v128_t b1 = wasm_v128_load(panel + 4);
    panel += NR;
    v128_t x = wasm_v128_load32_splat(a0);
    lo0 = wasm_f32x4_add(lo0, wasm_f32x4_mul(x, b0));
    hi0 = wasm_f32x4_add(hi0, wasm_f32x4_mul(x, b1));
    a0 += cs;
    if (mr > 1) {
      x = wasm_v128_load32_splat(a1);
      lo1 = wasm_f32x4_add(lo1, wasm_f32x4_mul(x, b0));
      hi1 = wasm_f32x4_add(hi1, wasm_f32x4_mul(x, b1));
      a1 += cs;
    }
    if (mr > 2) {
      x = wasm_v128_load32_splat(a2);
      lo2 = wasm_f32x4_add(lo2, wasm_f32x4_mul(x, b0));
      hi2 = wasm_f32x4_add(hi2, wasm_f32x4_mul(x, b1));
      a2 += cs;
    }
    if (mr > 3) {
      x = wasm_v128_load32_splat(a3);
      lo3 = wasm_f32x4_add(lo3, wasm_f32x4_mul(x, b0));
      hi3 = wasm_f32x4_add(hi3, wasm_f32x4_mul(x, b1));
      a3 += cs;
    }
  }
  store_row(c, lo0, hi0, cols);
  if (mr > 1) store_row(c + ldc, lo1, hi1, cols);
  if (mr > 2) store_row(c + 2 * ldc, lo2, hi2, cols);
  if (mr > 3) store_row(c + 3 * ldc, lo3, hi3, cols);
}

/*
 * Cache blocking for large slices: k in blocks of KC (a KC x 8 panel block is 8 KiB, L1) and rows in
 * blocks of MC (an MC x KC block of A is 64 KiB, L2), so A is not streamed from memory once per
 * panel. Partial sums are stored to out between k blocks in float32, exactly what the accumulators
 * hold, so the result equals the unblocked sum bit for bit. Small slices are one block.
 */
#define KC 256
#define MC 64

/*
 * One slice: out[m, n] = op(A)[m, k] @ op(B)[k, n] from the packed panels of op(B). With `upper`
 * (a product known to be symmetric, m == n) only the tiles that hold some out[i, j] with i <= j are
 * computed (rows below j0 + 8 for panel j0); the caller mirrors the rest (mirror_upper).
 */
static void slice_product(const f32 *a, const f32 *packed, f32 *out, int m, int k, int n, int transA, int upper) {
  const int rs = transA ? 1 : k;
  const int cs = transA ? m : 1;
  const int panels = (n + NR - 1) / NR;
  for (int p0 = 0; p0 < k; p0 += KC) {
    const int kc = k - p0 < KC ? k - p0 : KC;
    const int acc = p0 > 0;
    for (int i0 = 0; i0 < m; i0 += MC) {
      const int i1all = m - i0 < MC ? m : i0 + MC;
      for (int q = 0; q < panels; q++) {
        const f32 *panel = packed + (intptr_t)q * k * NR + (intptr_t)p0 * NR;
        const int j0 = q * NR;
        const int cols = n - j0 < NR ? n - j0 : NR;
        const f32 *ap = a + (intptr_t)p0 * cs;
        const int i1 = upper && j0 + NR < i1all ? (j0 + NR > i0 ? j0 + NR : i0) : i1all;
        int i = i0;
        for (; i + MR <= i1; i += MR) micro(4, kc, ap + (intptr_t)i * rs, rs, cs, panel, out + (intptr_t)i * n + j0, n, cols, acc);
        switch (i1 - i) {
          case 3: micro(3, kc, ap + (intptr_t)i * rs, rs, cs, panel, out + (intptr_t)i * n + j0, n, cols, acc); break;
          case 2: micro(2, kc, ap + (intptr_t)i * rs, rs, cs, panel, out + (intptr_t)i * n + j0, n, cols, acc); break;
          case 1: micro(1, kc, ap + (intptr_t)i * rs, rs, cs, panel, out + (intptr_t)i * n + j0, n, cols, acc); break;
          default: break;
        }
      }
    }
  }
}

/* Floats of scratch gemm_batched needs: packed B panels, plus an untransposed A slice when packA. */
__attribute__((export_name("gemm_scratch_floats"))) int gemm_scratch_floats(int m, int k, int n, int packA) {
  return ((n + NR - 1) / NR) * NR * k + (packA ? m * k : 0);
}

static void transpose_slice(const f32 *src, f32 *dst, int rows, int cols);

/*
 * out[ob] = op(A[aIdx[ob]]) @ op(B[bIdx[ob]]) for ob = 0..batch-1 (slice indices, so broadcast batch
 * dims of any shape map here). scratch: gemm_scratch_floats(m, k, n, packA) floats, 16-byte aligned.
 * B is re-packed only when its slice index changes, so a broadcast B is packed once. With transA and
 * packA, each A slice is first transposed into scratch ([k, m] -> [m, k]): for large A^T the strided
 * column reads of the micro-kernel (one cache line and often one page per p) cost more than the copy.
 */
__attribute__((export_name("gemm_batched"))) void gemm_batched(
    const f32 *a, const f32 *b, f32 *out, const int32_t *aIdx, const int32_t *bIdx, int batch,
    int m, int k, int n, int transA, int transB, int packA, f32 *scratch) {
  const intptr_t aSlice = (intptr_t)m * k;
  const intptr_t bSlice = (intptr_t)k * n;
  const intptr_t oSlice = (intptr_t)m * n;
  const int panels = (n + NR - 1) / NR;
  f32 *aPacked = scratch + (intptr_t)panels * NR * k;
  packA = packA && transA;
  int packedB = -1;
  int packedA = -1;
  for (int ob = 0; ob < batch; ob++) {
    const int bi = bIdx[ob];
    if (bi != packedB) {
      const f32 *bs = b + bi * bSlice;
      for (int q = 0; q < panels; q++) pack_panel(bs, scratch + (intptr_t)q * k * NR, k, n, q * NR, transB);
      packedB = bi;
    }
    const f32 *as = a + aIdx[ob] * aSlice;
    if (packA) {
      if (aIdx[ob] != packedA) {
        transpose_slice(as, aPacked, k, m);
        packedA = aIdx[ob];
      }
      slice_product(aPacked, scratch, out + ob * oSlice, m, k, n, 0, 0);
    } else {
      slice_product(as, scratch, out + ob * oSlice, m, k, n, transA, 0);
    }
  }
}

/* dst[c][r] = src[r][c] for one [rows, cols] slice: 32x32 tiles of 4x4 SIMD register transposes. */
static void transpose_slice(const f32 *s, f32 *d, int rows, int cols) {
  const int T = 32;
  for (int r0 = 0; r0 < rows; r0 += T) {
    const int r1 = r0 + T < rows ? r0 + T : rows;
    for (int c0 = 0; c0 < cols; c0 += T) {
      const int c1 = c0 + T < cols ? c0 + T : cols;
      int r = r0;
      for (; r + 4 <= r1; r += 4) {
        const f32 *s0 = s + (intptr_t)r * cols;
        const f32 *s1 = s0 + cols;
        const f32 *s2 = s1 + cols;
        const f32 *s3 = s2 + cols;
        int c = c0;
        for (; c + 4 <= c1; c += 4) {
          v128_t x0 = wasm_v128_load(s0 + c);
          v128_t x1 = wasm_v128_load(s1 + c);
          v128_t x2 = wasm_v128_load(s2 + c);
          v128_t x3 = wasm_v128_load(s3 + c);
          v128_t t0 = wasm_i32x4_shuffle(x0, x1, 0, 4, 1, 5);
          v128_t t1 = wasm_i32x4_shuffle(x0, x1, 2, 6, 3, 7);
          v128_t t2 = wasm_i32x4_shuffle(x2, x3, 0, 4, 1, 5);
          v128_t t3 = wasm_i32x4_shuffle(x2, x3, 2, 6, 3, 7);
          f32 *dc = d + (intptr_t)c * rows + r;
          wasm_v128_store(dc, wasm_i64x2_shuffle(t0, t2, 0, 2));
          wasm_v128_store(dc + rows, wasm_i64x2_shuffle(t0, t2, 1, 3));
          wasm_v128_store(dc + 2 * rows, wasm_i64x2_shuffle(t1, t3, 0, 2));
          wasm_v128_store(dc + 3 * rows, wasm_i64x2_shuffle(t1, t3, 1, 3));
        }
        for (; c < c1; c++) {
          f32 *dc = d + (intptr_t)c * rows + r;
          dc[0] = s0[c];
          dc[1] = s1[c];
          dc[2] = s2[c];
          dc[3] = s3[c];
        }
      }
      for (; r < r1; r++) {
        const f32 *sr = s + (intptr_t)r * cols;
        for (int c = c0; c < c1; c++) d[(intptr_t)c * rows + r] = sr[c];
      }
    }
  }
}

/* dst[bt][c][r] = src[bt][r][c] for a [batch, rows, cols] tensor. */
__attribute__((export_name("transpose_last2"))) void transpose_last2(const f32 *src, f32 *dst, int batch, int rows, int cols) {
  for (int bt = 0; bt < batch; bt++) {
    transpose_slice(src + (intptr_t)bt * rows * cols, dst + (intptr_t)bt * rows * cols, rows, cols);
  }
}

/* ---------------------------------------------------------------------------------------------
 * Newton-Schulz orthogonalisation of one matrix (plugins/optimizers/util.ts newtonSchulzBatch is the
 * reference; the same operations in the same order, so the results agree up to float rounding):
 *   X0 = G / (||G||_F + eps)
 *   wide or square (r <= c): A = X X^T [r, r];  P = b A + c A A;  X <- a X + P X
 *   tall (r > c):            A = X^T X [c, c];  P = b A + c A A;  X <- a X + X P
 * A and A A are symmetric, so only their upper tiles are computed and the rest is mirrored (bit-exact:
 * out[i, j] and out[j, i] are the same products summed in the same order). Each product packs op(B) into
 * panels and runs slice_product; the element-wise parts are SIMD loops in the same operation order as
 * the reference's kernels (fl(fl(b A) + fl(c A A)), fl(fl(a X) + fl(P X))).
 */

static inline int pad4(int x) { return (x + 3) & ~3; }
static inline int pad8(int x) { return (x + NR - 1) / NR * NR; }

/* Floats of scratch newton_schulz needs for an [r, c] matrix: B panels, A, A A (or P) and one X buffer. */
__attribute__((export_name("ns_scratch_floats"))) int ns_scratch_floats(int r, int c) {
  const int s = r <= c ? r : c;
  const int l = r <= c ? c : r;
  return pad8(s) * pad8(l) + 2 * pad4(s * s) + pad4(r * c);
}

/* out[m, n] = op(A) @ op(B) (B stored [k, n], or [n, k] with transB); upper: symmetric, mirrored. */
static void ns_product(const f32 *a, const f32 *b, f32 *out, int m, int k, int n, int transA, int transB, int upper, f32 *panels) {
  const int np = (n + NR - 1) / NR;
  for (int q = 0; q < np; q++) pack_panel(b, panels + (intptr_t)q * k * NR, k, n, q * NR, transB);
  slice_product(a, panels, out, m, k, n, transA, upper);
  if (upper) {
    for (int i = 1; i < m; i++) {
      for (int j = 0; j < i; j++) out[(intptr_t)i * n + j] = out[(intptr_t)j * n + i];
    }
  }
}

/* dst[i] = fl(fl(alpha x[i]) + fl(beta y[i])) (beta_is_one: + y[i]) for i < len; dst may be x or y. */
static void ns_axpby(f32 *dst, const f32 *x, const f32 *y, int len, f32 alpha, f32 beta, int beta_is_one) {
  const v128_t va = wasm_f32x4_splat(alpha);
  const v128_t vb = wasm_f32x4_splat(beta);
  int i = 0;
  for (; i + 4 <= len; i += 4) {
    v128_t ax = wasm_f32x4_mul(wasm_v128_load(x + i), va);
    v128_t yy = wasm_v128_load(y + i);
    if (!beta_is_one) yy = wasm_f32x4_mul(yy, vb);
    wasm_v128_store(dst + i, wasm_f32x4_add(ax, yy));
  }
  for (; i < len; i++) {
    const f32 ax = x[i] * alpha;
    dst[i] = ax + (beta_is_one ? y[i] : y[i] * beta);
  }
}

/*
 * out[r, c] = NS_steps(x[r, c]) with coefficients (ca, cb, cc) and eps; x is only read (it may equal out).
 * scratch: ns_scratch_floats(r, c) floats, 16-byte aligned.
 */
__attribute__((export_name("newton_schulz"))) void newton_schulz(
    const f32 *x, f32 *out, int r, int c, int steps, f32 ca, f32 cb, f32 cc, f32 eps, f32 *scratch) {
  const int tall = r > c;
  const int s = tall ? c : r;
  const int l = tall ? r : c;
  const int size = r * c;
  f32 *panels = scratch;
  f32 *gram = panels + (intptr_t)pad8(s) * pad8(l);
  f32 *poly = gram + pad4(s * s);
  f32 *tmp = poly + pad4(s * s);
  /* Frobenius norm: float32 partial sums in 4 lanes. */
  v128_t acc = wasm_f32x4_splat(0.0f);
  int i = 0;
  for (; i + 4 <= size; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(v, v));
  }
  f32 sum = (wasm_f32x4_extract_lane(acc, 0) + wasm_f32x4_extract_lane(acc, 1)) +
            (wasm_f32x4_extract_lane(acc, 2) + wasm_f32x4_extract_lane(acc, 3));
  for (; i < size; i++) sum += x[i] * x[i];
  const f32 denom = wasm_f32x4_extract_lane(wasm_f32x4_sqrt(wasm_f32x4_splat(sum)), 0) + eps;
  /* Ping-pong between out and tmp so that the last step writes out. */
  f32 *cur = steps % 2 == 1 ? tmp : out;
  const v128_t vd = wasm_f32x4_splat(denom);
  for (i = 0; i + 4 <= size; i += 4) wasm_v128_store(cur + i, wasm_f32x4_div(wasm_v128_load(x + i), vd));
  for (; i < size; i++) cur[i] = x[i] / denom;
  for (int it = 0; it < steps; it++) {
    f32 *nxt = cur == out ? tmp : out;
    if (tall) ns_product(cur, cur, gram, s, l, s, 1, 0, 1, panels); /* X^T X: X stored [k = r, m = c] */
    else ns_product(cur, cur, gram, s, l, s, 0, 1, 1, panels);      /* X X^T: B = X stored [n = r, k = c] */
    ns_product(gram, gram, poly, s, s, s, 0, 0, 1, panels);          /* A A */
    ns_axpby(poly, gram, poly, s * s, cb, cc, 0);                     /* P = b A + c A A */
    if (tall) ns_product(cur, poly, nxt, r, c, c, 0, 0, 0, panels);   /* X P */
    else ns_product(poly, cur, nxt, r, r, c, 0, 0, 0, panels);        /* P X */
    ns_axpby(nxt, cur, nxt, size, ca, 1.0f, 1);                       /* a X + (.) */
    cur = nxt;
  }
}
