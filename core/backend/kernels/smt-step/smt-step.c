/*
 * One token of the 'stable' self-modifying Titans mixer (plugins/self-modifying-titans/ops/stable.ts at
 * T = 1), forward only, for every sequence of the batch and every head, in one call on the tfjs wasm heap.
 *
 * Same safety rules as gemm.c (this module is instantiated over tfjs-backend-wasm's own memory; checked by
 * smt-step.test.ts on the built module): no static data (no globals, no literals other than immediate
 * float constants, no tables), no libc (exp/tanh below are polynomial; sqrt/floor are wasm instructions),
 * no shadow-stack use (every temporary lives in the scratch block the caller passes).
 *
 * Layouts (row-major, as tfjs stores tensors): x [B, D]; projection kernels [D, D] (y = x W); state rows
 * W1 [dh, dz], W2 [dz, dh]: phase-1 memories at row (b * nm + m) * H + h of W1/W2/S1/S2 ([B, NM, H, ., .]),
 * M_mem at row b * H + h of mW1/mW2/mS1/mS2 ([B, H, ., .]). S = the chunk-start snapshots. Outputs: y [B, D]
 * and the running matrices after the token (new buffers; snapshots and clocks are handled by the caller).
 *
 * Per (b, h), memories in state order k (unless static), v (unless static), eta, alpha (weight decay), q
 * (adaptive q); M(x) = x + W1 hn(W2 x), hn(z) = act(z) / |act(z)| (eps inside the root):
 *   x^_k = l2(x W_k)_h, x^_v = l2(x W_v)_h, x^_q = l2(x W_q)_h, x^ = l2(x_h)      inputs (eta, alpha read x^)
 *   out_m = M_m(input_m) at the snapshot                                          (Eq. 90: chunk-start reads)
 *   k = l2(out_k) | x^_k, v = l2(out_v) | x^_v, q = l2(out_q) | x^_q
 *   beta = etaMax sigmoid(mean(out_eta) + b_eta[h]); alpha = alphaMin + (1 - alphaMin) sigmoid(mean(out_alpha) + b_alpha[h]) | 1
 *   every memory (phase-1 rows: b1 = slowRate beta; M_mem: b1 = beta; b2 = slowRate beta for all), at its snapshot:
 *     read at k: z = S2 k, hk = hn(z), e = k + S1 hk - vhat, vhat = l2(v + S1 hn(S2 v))
 *     u = ((S1^T e) - hk <hk, S1^T e>) / |act(z)| o act'(z), clipped to |u| <= clip
 *     W2' = alpha W2 - b2 u k^T
 *     W1' = alpha W1 + b1 ((vhat - k) - W1 hk) hk^T    (dgd: exact delta rule at the running W1)
 *         = alpha W1 - b1 e hk^T                       (no dgd)
 *   o = q + W1' hn(W2' q)  (M_mem after the write)
 *   y = (o * rsqrt(mean_h(o^2) + eps) * gain * sigmoid(x W_gate)) W_o
 * Returns a bit mask of the sentinel checks that saw a non-finite value (bit m: memory m's read out_m,
 * bit nm: o), 0 when all finite or when checks are off.
 */
#include <wasm_simd128.h>
#include <stdint.h>

typedef float f32;

#define L2_EPS 1e-6f

#define F_HAS_K 1
#define F_HAS_V 2
#define F_HAS_ALPHA 4
#define F_HAS_Q 8
#define F_DGD 16
#define F_TANH 32
#define F_CHECK 64

static inline __attribute__((always_inline)) f32 hsum(v128_t a) {
  return (wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1)) + (wasm_f32x4_extract_lane(a, 2) + wasm_f32x4_extract_lane(a, 3));
}

/* sum_i a[i] b[i] */
static f32 dot(const f32 *a, const f32 *b, int n) {
  v128_t s0 = wasm_f32x4_splat(0.0f);
  v128_t s1 = wasm_f32x4_splat(0.0f);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_v128_load(a + i), wasm_v128_load(b + i)));
    s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(wasm_v128_load(a + i + 4), wasm_v128_load(b + i + 4)));
  }
  for (; i + 4 <= n; i += 4) s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_v128_load(a + i), wasm_v128_load(b + i)));
  f32 s = hsum(wasm_f32x4_add(s0, s1));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

/* y += a x */
static void axpy(f32 *y, f32 a, const f32 *x, int n) {
  v128_t va = wasm_f32x4_splat(a);
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(y + i), wasm_f32x4_mul(va, wasm_v128_load(x + i))));
  for (; i < n; i++) y[i] += a * x[i];
}

/* out = al w + a x */
static void scale_axpy(f32 *out, f32 al, const f32 *w, f32 a, const f32 *x, int n) {
  v128_t val = wasm_f32x4_splat(al);
  v128_t va = wasm_f32x4_splat(a);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t r = wasm_f32x4_add(wasm_f32x4_mul(val, wasm_v128_load(w + i)), wasm_f32x4_mul(va, wasm_v128_load(x + i)));
    wasm_v128_store(out + i, r);
  }
  for (; i < n; i++) out[i] = al * w[i] + a * x[i];
}

static void zero(f32 *y, int n) {
  for (int i = 0; i < n; i++) y[i] = 0.0f;
}

static void copy(f32 *y, const f32 *x, int n) {
  for (int i = 0; i < n; i++) y[i] = x[i];
}

static inline f32 rsqrt(f32 s) {
  return 1.0f / __builtin_sqrtf(s);
}

/* a *= rsqrt(|a|^2 + eps) (core l2Normalize) */
static void l2norm(f32 *a, int n) {
  f32 r = rsqrt(dot(a, a, n) + L2_EPS);
  for (int i = 0; i < n; i++) a[i] *= r;
}

static inline int finite(f32 x) {
  union {
    f32 f;
    uint32_t u;
  } c;
  c.f = x;
  return (c.u & 0x7f800000u) != 0x7f800000u;
}

static int all_finite(const f32 *a, int n) {
  int ok = 1;
  for (int i = 0; i < n; i++) ok &= finite(a[i]);
  return ok;
}

/* e^x, Cephes expf (range reduction by ln 2, degree-6 polynomial; ~1 ulp). */
static f32 f_exp(f32 x) {
  if (x != x) return x;
  if (x > 88.72283905206835f) return __builtin_inff();
  if (x < -103.972084f) return 0.0f;
  f32 fn = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  f32 r = x - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  f32 p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  int n = (int)fn;
  union {
    int32_t i;
    f32 f;
  } s;
  if (n < -126) { /* subnormal results: scale in two steps */
    s.i = (n + 126 + 127) << 23;
    p *= s.f;
    s.i = 1 << 23; /* 2^-126 */
    return p * s.f;
  }
  if (n > 127) {
    s.i = (127 + 127) << 23;
    return p * s.f * 2.0f;
  }
  s.i = (n + 127) << 23;
  return p * s.f;
}

static inline f32 sigmoid(f32 x) {
  return 1.0f / (1.0f + f_exp(-x));
}

static f32 f_tanh(f32 z) {
  f32 a = z < 0.0f ? -z : z;
  f32 t;
  if (a != a) return z;
  if (a < 0.25f) {
    f32 a2 = a * a; /* z - z^3/3 + 2z^5/15 - 17z^7/315 + 62z^9/2835 */
    t = a * (1.0f + a2 * (-0.333333333f + a2 * (0.133333333f + a2 * (-0.053968254f + a2 * 0.021869489f))));
  } else if (a > 9.0f) {
    t = 1.0f;
  } else {
    f32 e = f_exp(-2.0f * a);
    t = (1.0f - e) / (1.0f + e);
  }
  return z < 0.0f ? -t : t;
}

/*
 * e^x on 4 lanes: the f_exp polynomial with x clamped to [-87.33, 88] (results stay normal; NaN propagates
 * through min/max). Only used inside act(): silu(z) = z / (1 + e^-z) and tanh, where the clamp changes
 * nothing above float precision (|z| > 87 gives act within 1e-37 of its limit).
 */
static inline __attribute__((always_inline)) v128_t exp4(v128_t x) {
  x = wasm_f32x4_max(wasm_f32x4_min(x, wasm_f32x4_splat(88.0f)), wasm_f32x4_splat(-87.33654f));
  v128_t fn = wasm_f32x4_floor(wasm_f32x4_add(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)), wasm_f32x4_splat(0.5f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(fn, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(fn, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.9875691500E-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.3981999507E-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(8.3334519073E-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(4.1665795894E-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.6666665459E-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(5.0000001201E-1f));
  p = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(p, r), r), r), wasm_f32x4_splat(1.0f));
  v128_t n = wasm_i32x4_trunc_sat_f32x4(fn);
  v128_t scale = wasm_i32x4_shl(wasm_i32x4_add(n, wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, scale);
}

/* p = act(z), d = act'(z) (d may be 0: not needed) */
static void activate(int tanh_act, const f32 *z, f32 *p, f32 *d, int n) {
  int j = 0;
  const v128_t one = wasm_f32x4_splat(1.0f);
  for (; j + 4 <= n; j += 4) {
    v128_t zj = wasm_v128_load(z + j);
    if (tanh_act) {
      v128_t a = wasm_f32x4_abs(zj);
      v128_t e = exp4(wasm_f32x4_mul(a, wasm_f32x4_splat(-2.0f)));
      v128_t tl = wasm_f32x4_div(wasm_f32x4_sub(one, e), wasm_f32x4_add(one, e));
      v128_t a2 = wasm_f32x4_mul(a, a);
      v128_t ps = wasm_f32x4_add(wasm_f32x4_splat(-0.053968254f), wasm_f32x4_mul(a2, wasm_f32x4_splat(0.021869489f)));
      ps = wasm_f32x4_add(wasm_f32x4_splat(0.133333333f), wasm_f32x4_mul(a2, ps));
      ps = wasm_f32x4_add(wasm_f32x4_splat(-0.333333333f), wasm_f32x4_mul(a2, ps));
      ps = wasm_f32x4_mul(a, wasm_f32x4_add(one, wasm_f32x4_mul(a2, ps)));
      v128_t t = wasm_v128_bitselect(ps, tl, wasm_f32x4_lt(a, wasm_f32x4_splat(0.25f)));
      t = wasm_v128_bitselect(wasm_f32x4_neg(t), t, wasm_f32x4_lt(zj, wasm_f32x4_splat(0.0f)));
      wasm_v128_store(p + j, t);
      if (d) wasm_v128_store(d + j, wasm_f32x4_sub(one, wasm_f32x4_mul(t, t)));
    } else {
      v128_t sg = wasm_f32x4_div(one, wasm_f32x4_add(one, exp4(wasm_f32x4_neg(zj))));
      wasm_v128_store(p + j, wasm_f32x4_mul(zj, sg));
      if (d) wasm_v128_store(d + j, wasm_f32x4_mul(sg, wasm_f32x4_add(wasm_f32x4_mul(zj, wasm_f32x4_sub(one, sg)), one)));
    }
  }
  for (; j < n; j++) {
    f32 zj = z[j];
    if (tanh_act) {
      f32 t = f_tanh(zj);
      p[j] = t;
      if (d) d[j] = 1.0f - t * t;
    } else {
      f32 sg = sigmoid(zj);
      p[j] = zj * sg;
      if (d) d[j] = sg * (zj * (1.0f - sg) + 1.0f);
    }
  }
}

/* y = x W, x [n], W [n, m] row-major */
static void vecmat(const f32 *x, const f32 *w, f32 *y, int n, int m) {
  zero(y, m);
  for (int i = 0; i < n; i++) axpy(y, x[i], w + (intptr_t)i * m, m);
}

/* [sum a0, sum a1, sum a2, sum a3] */
static inline __attribute__((always_inline)) v128_t reduce4(v128_t a0, v128_t a1, v128_t a2, v128_t a3) {
  v128_t t0 = wasm_f32x4_add(wasm_i32x4_shuffle(a0, a1, 0, 4, 1, 5), wasm_i32x4_shuffle(a0, a1, 2, 6, 3, 7));
  v128_t t1 = wasm_f32x4_add(wasm_i32x4_shuffle(a2, a3, 0, 4, 1, 5), wasm_i32x4_shuffle(a2, a3, 2, 6, 3, 7));
  return wasm_f32x4_add(wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5), wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
}

/* y = W x, W [m, n] row-major (m dot products; 4 rows at a time when n % 4 == 0) */
static void matvec(const f32 *w, const f32 *x, f32 *y, int m, int n) {
  int j = 0;
  if ((n & 3) == 0) {
    for (; j + 4 <= m; j += 4) {
      const f32 *w0 = w + (intptr_t)j * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
      v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
      for (int i = 0; i < n; i += 4) {
        v128_t xv = wasm_v128_load(x + i);
        a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(w0 + i), xv));
        a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(wasm_v128_load(w1 + i), xv));
        a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(wasm_v128_load(w2 + i), xv));
        a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(wasm_v128_load(w3 + i), xv));
      }
      wasm_v128_store(y + j, reduce4(a0, a1, a2, a3));
    }
  }
  for (; j < m; j++) y[j] = dot(w + (intptr_t)j * n, x, n);
}

/* y = W x and y2 = W x2 in one pass over W */
static void matvec2(const f32 *w, const f32 *x, const f32 *x2, f32 *y, f32 *y2, int m, int n) {
  int j = 0;
  if ((n & 3) == 0) {
    for (; j + 4 <= m; j += 4) {
      const f32 *w0 = w + (intptr_t)j * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
      v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (int i = 0; i < n; i += 4) {
        v128_t xv = wasm_v128_load(x + i), xv2 = wasm_v128_load(x2 + i);
        v128_t r0 = wasm_v128_load(w0 + i), r1 = wasm_v128_load(w1 + i), r2 = wasm_v128_load(w2 + i), r3 = wasm_v128_load(w3 + i);
        a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(r0, xv));
        a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(r1, xv));
        a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(r2, xv));
        a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(r3, xv));
        b0 = wasm_f32x4_add(b0, wasm_f32x4_mul(r0, xv2));
        b1 = wasm_f32x4_add(b1, wasm_f32x4_mul(r1, xv2));
        b2 = wasm_f32x4_add(b2, wasm_f32x4_mul(r2, xv2));
        b3 = wasm_f32x4_add(b3, wasm_f32x4_mul(r3, xv2));
      }
      wasm_v128_store(y + j, reduce4(a0, a1, a2, a3));
      wasm_v128_store(y2 + j, reduce4(b0, b1, b2, b3));
    }
  }
  for (; j < m; j++) {
    y[j] = dot(w + (intptr_t)j * n, x, n);
    y2[j] = dot(w + (intptr_t)j * n, x2, n);
  }
}

/* h = act(z) / |act(z)| in place of p (d = act'(z) when d != 0); returns 1 / |act(z)| */
static f32 hidden(int tanh_act, const f32 *z, f32 *h, f32 *d, int dz) {
  activate(tanh_act, z, h, d, dz);
  f32 inv = rsqrt(dot(h, h, dz) + L2_EPS);
  for (int j = 0; j < dz; j++) h[j] *= inv;
  return inv;
}

/*
 * Memory read out = x + W1 hn(W2 x). z [dz] = W2 x, h [dz] = hn(z) (d [dz] = act'(z) when d != 0).
 * Returns 1 / |act(z)|.
 */
static f32 read_mem(int tanh_act, const f32 *w1, const f32 *w2, const f32 *x, f32 *z, f32 *h, f32 *d, f32 *out, int dh, int dz) {
  matvec(w2, x, z, dz, dh);
  f32 inv = hidden(tanh_act, z, h, d, dz);
  matvec(w1, h, out, dh, dz);
  for (int i = 0; i < dh; i++) out[i] += x[i];
  return inv;
}

__attribute__((export_name("smt_step_scratch_floats"))) int smt_step_scratch_floats(int B, int D, int dh, int dz, int nm) {
  return 7 * B * D + (nm + 8) * dh + 10 * dz + 64;
}

__attribute__((export_name("smt_stable_step"))) int smt_stable_step(
    const f32 *x, const f32 *wk, const f32 *wv, const f32 *wq, const f32 *wg, const f32 *wo, const f32 *gain,
    const f32 *etaBias, const f32 *alphaBias,
    const f32 *W1, const f32 *W2, const f32 *S1, const f32 *S2,
    const f32 *mW1, const f32 *mW2, const f32 *mS1, const f32 *mS2,
    f32 *y, f32 *W1o, f32 *W2o, f32 *mW1o, f32 *mW2o, f32 *scratch,
    int B, int H, int dh, int dz, int flags, f32 clip, f32 etaMax, f32 alphaMin, f32 slowRate) {
  const int D = H * dh;
  const int hasK = (flags & F_HAS_K) != 0, hasV = (flags & F_HAS_V) != 0, hasA = (flags & F_HAS_ALPHA) != 0, hasQ = (flags & F_HAS_Q) != 0;
  const int dgd = (flags & F_DGD) != 0, tanh_act = (flags & F_TANH) != 0, check = (flags & F_CHECK) != 0;
  /* memory indices in state order */
  int nm = 0;
  const int iK = hasK ? nm++ : -1;
  const int iV = hasV ? nm++ : -1;
  const int iEta = nm++;
  const int iA = hasA ? nm++ : -1;
  const int iQ = hasQ ? nm++ : -1;
  const int mat = dh * dz;

  f32 *xk = scratch, *xv = xk + B * D, *xq = xv + B * D, *xg = xq + B * D, *xr = xg + B * D, *ob = xr + B * D, *val = ob + B * D;
  f32 *mo = val + B * D;            /* nm * dh */
  f32 *kk = mo + nm * dh, *vv = kk + dh, *qq = vv + dh, *outk = qq + dh, *vhat = outk + dh, *e = vhat + dh, *rr = e + dh, *oo = rr + dh;
  f32 *zk = oo + dh, *hk = zk + dz, *dk = hk + dz, *zv = dk + dz, *hv = zv + dz, *gh = hv + dz, *u = gh + dz, *z2 = u + dz, *hq = z2 + dz;
  int bad = 0;

  for (int b = 0; b < B; b++) {
    const f32 *xb = x + (intptr_t)b * D;
    vecmat(xb, wk, xk + b * D, D, D);
    vecmat(xb, wv, xv + b * D, D, D);
    vecmat(xb, wq, xq + b * D, D, D);
    vecmat(xb, wg, xg + b * D, D, D);
    copy(xr + b * D, xb, D);
    for (int h = 0; h < H; h++) {
      int o = b * D + h * dh;
      l2norm(xk + o, dh);
      l2norm(xv + o, dh);
      l2norm(xq + o, dh);
      l2norm(xr + o, dh);
    }
  }

  for (int b = 0; b < B; b++) {
    for (int h = 0; h < H; h++) {
      const int o = b * D + h * dh;
      /* phase-1 reads at the chunk-start snapshot */
      for (int m = 0; m < nm; m++) {
        const f32 *in = m == iK ? xk + o : m == iV ? xv + o : m == iQ ? xq + o : xr + o;
        const intptr_t row = (intptr_t)((b * nm + m) * H + h) * mat;
        read_mem(tanh_act, S1 + row, S2 + row, in, zk, hk, 0, mo + m * dh, dh, dz);
        if (check && !all_finite(mo + m * dh, dh)) bad |= 1 << m;
      }
      if (hasK) {
        copy(kk, mo + iK * dh, dh);
        l2norm(kk, dh);
      } else copy(kk, xk + o, dh);
      if (hasV) {
        copy(vv, mo + iV * dh, dh);
        l2norm(vv, dh);
      } else copy(vv, xv + o, dh);
      if (hasQ) {
        copy(qq, mo + iQ * dh, dh);
        l2norm(qq, dh);
      } else copy(qq, xq + o, dh);
      f32 meanEta = 0.0f;
      for (int i = 0; i < dh; i++) meanEta += mo[iEta * dh + i];
      const f32 beta = sigmoid(meanEta / (f32)dh + etaBias[h]) * etaMax;
      f32 alpha = 1.0f;
      if (hasA) {
        f32 meanA = 0.0f;
        for (int i = 0; i < dh; i++) meanA += mo[iA * dh + i];
        alpha = sigmoid(meanA / (f32)dh + alphaBias[h]) * (1.0f - alphaMin) + alphaMin;
      }
      const f32 bSlow = beta * slowRate;

      /* writes: the nm phase-1 memories, then M_mem (m == nm) */
      for (int m = 0; m <= nm; m++) {
        const int mem = m == nm;
        const intptr_t row = mem ? (intptr_t)(b * H + h) * mat : (intptr_t)((b * nm + m) * H + h) * mat;
        const f32 *w1 = (mem ? mW1 : W1) + row, *w2 = (mem ? mW2 : W2) + row, *s1 = (mem ? mS1 : S1) + row, *s2 = (mem ? mS2 : S2) + row;
        f32 *w1o = (mem ? mW1o : W1o) + row, *w2o = (mem ? mW2o : W2o) + row;
        const f32 b1 = mem ? beta : bSlow, b2 = bSlow;
        /* reads at k and v through the snapshot, one pass over each matrix for both */
        matvec2(s2, kk, vv, zk, zv, dz, dh);
        const f32 inv = hidden(tanh_act, zk, hk, dk, dz);
        hidden(tanh_act, zv, hv, 0, dz);
        matvec2(s1, hk, hv, outk, vhat, dh, dz);
        for (int i = 0; i < dh; i++) {
          outk[i] += kk[i];
          vhat[i] += vv[i];
        }
        l2norm(vhat, dh);
        for (int i = 0; i < dh; i++) e[i] = outk[i] - vhat[i];
        zero(gh, dz);
        for (int i = 0; i < dh; i++) axpy(gh, e[i], s1 + (intptr_t)i * dz, dz); /* S1^T e */
        const f32 hg = dot(hk, gh, dz);
        for (int j = 0; j < dz; j++) u[j] = (gh[j] - hk[j] * hg) * inv * dk[j];
        if (clip > 0.0f) {
          f32 sc = clip * rsqrt(dot(u, u, dz) + 1e-12f);
          if (sc < 1.0f)
            for (int j = 0; j < dz; j++) u[j] *= sc;
        }
        for (int j = 0; j < dz; j++) scale_axpy(w2o + (intptr_t)j * dh, alpha, w2 + (intptr_t)j * dh, -b2 * u[j], kk, dh);
        if (dgd) matvec(w1, hk, rr, dh, dz); /* W1 hk at the running W1 */
        for (int i = 0; i < dh; i++) {
          const f32 ri = dgd ? (vhat[i] - kk[i]) - rr[i] : -e[i];
          scale_axpy(w1o + (intptr_t)i * dz, alpha, w1 + (intptr_t)i * dz, b1 * ri, hk, dz);
        }
        if (mem) {
          /* retrieval after the write: o = q + W1' hn(W2' q) */
          read_mem(tanh_act, w1o, w2o, qq, z2, hq, 0, oo, dh, dz);
          copy(ob + o, oo, dh);
          if (check && !all_finite(oo, dh)) bad |= 1 << nm;
        }
      }
    }
  }

  /* output: per-head RMSNorm, gain, sigmoid gate, W_o */
  for (int b = 0; b < B; b++) {
    f32 *vb = val + b * D;
    for (int h = 0; h < H; h++) {
      const f32 *oh = ob + b * D + h * dh;
      const f32 r = rsqrt(dot(oh, oh, dh) / (f32)dh + L2_EPS);
      for (int i = 0; i < dh; i++) {
        const int c = h * dh + i;
        vb[c] = oh[i] * r * gain[c] * sigmoid(xg[b * D + c]);
      }
    }
    vecmat(vb, wo, y + (intptr_t)b * D, D, D);
  }
  return bad;
}
