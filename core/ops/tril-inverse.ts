/**
 * The WY/UT inverse of the chunked delta rules: T = (I + N)^{-1} with
 *   N = strictly_lower(diag(beta) (Gam o K K^T)),  Gam_ij = exp(g_i - g_j)  (Gam = 1 without gates),
 * a unit lower-triangular system per chunk. tfjs has no triangular solve or matrix inverse, so both
 * methods use matmuls only.
 *
 * - 'blocked' (default): recursive doubling. If L = I + N has inverse blocks A1, A2 on two consecutive
 *   b x b diagonal blocks, the 2b x 2b diagonal block [[L11, 0], [L21, L22]] has inverse
 *   D - D E D with D = blockdiag(A1, A2) and E = [[0, 0], [L21, 0]] (exact because E D E = 0).
 *   L21 is recomputed from the 2b rows of K of that block (a small batched matmul), so nothing is
 *   sliced out of a C x C matrix (wasm's Slice kernel copies row by row, slow for short rows). Up to
 *   8 x 8 blocks the doubling runs on whole 8 x 8 matrices with masks (few ops, no slices); from
 *   b = 8 on only the b x b products -A2 L21 A1 (~C b^2 multiply-adds per matrix and level).
 *   ceil(log2 C) levels; every intermediate is an actual block of the inverse, so it is as well
 *   conditioned as forward substitution.
 * - 'series': the truncated Neumann series (I + N)^{-1} = sum_{k<C} (-N)^k (exact since N^C = 0),
 *   evaluated as (I - N)(I + N^2)(I + N^4)... with 2 full C x C matmuls per factor. Its partial
 *   products hold entries of powers of N that can be huge and cancel (keys that nearly repeat give
 *   binomial coefficients), which ruins float32: kept for comparison, not the default.
 */
import * as tf from '@tensorflow/tfjs';

export type TrilInverseMethod = 'blocked' | 'series';
export const TRIL_INVERSE_METHODS: readonly TrilInverseMethod[] = ['blocked', 'series'];

/** [n, n] 0/1 mask from a predicate on (row, col). */
function maskFrom(n: number, keep: (i: number, j: number) => boolean): tf.Tensor2D {
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (keep(i, j)) m[i * n + j] = 1;
  return tf.tensor2d(m, [n, n]);
}

/**
 * N = strictly_lower(diag(beta) (Gam o K K^T)) for k [X, C, dk], beta [X, C], g [X, C] | null -> [X, C, C].
 * Gam is formed as exp of masked log differences (only i > j), so it never overflows.
 */
export function wyMatrix(k: tf.Tensor3D, beta: tf.Tensor2D, g: tf.Tensor2D | null): tf.Tensor3D {
  return tf.tidy(() => {
    const c = k.shape[1];
    const strict = maskFrom(c, (i, j) => i > j);
    let n = tf.matMul(k, k, false, true).mul(beta.expandDims(2)).mul(strict); // [X, C, C]
    if (g) n = n.mul(tf.exp(g.expandDims(2).sub(g.expandDims(1)).mul(strict))); // Gam, i > j only
    return n as tf.Tensor3D;
  });
}

/** (I + N)^{-1} for N = wyMatrix(k, beta, g): [X, C, C]. See the file header for the methods. */
export function wyInverse(k: tf.Tensor3D, beta: tf.Tensor2D, g: tf.Tensor2D | null, method: TrilInverseMethod = 'blocked'): tf.Tensor3D {
  return method === 'series' ? seriesInverse(wyMatrix(k, beta, g)) : blockedWyInverse(k, beta, g);
}

/** (I + N)^{-1} for any strictly lower-triangular N [X, C, C] by the Neumann product ('series'). */
export function seriesInverse(nStrict: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const c = nStrict.shape[1];
    const eye = tf.eye(c).expandDims(0); // [1, C, C]
    let power = nStrict.neg() as tf.Tensor3D; // (-N)^(2^j)
    let acc = eye.add(power) as tf.Tensor3D; // sum_{k < 2} (-N)^k
    for (let covered = 2; covered < c; covered *= 2) {
      power = tf.matMul(power, power);
      acc = tf.matMul(acc, eye.add(power) as tf.Tensor3D); // now sums k < 2 * covered
    }
    return acc;
  });
}

/** Diagonal blocks up to this size are inverted on whole base x base matrices (masked doubling, no
 * slices); from there on the doubling multiplies only b x b blocks sliced from contiguous rows. */
const BASE_BLOCK = 8;

function blockedWyInverse(k: tf.Tensor3D, beta: tf.Tensor2D, g: tf.Tensor2D | null): tf.Tensor3D {
  return tf.tidy(() => {
    const [x, c, dk] = k.shape;
    let cp = 1;
    while (cp < c) cp *= 2;
    if (cp === 1) return tf.ones([x, 1, 1]) as tf.Tensor3D;
    // Pad the chunk to a power of two with k = 0, beta = 0: the padded rows of N are zero, so the
    // padded inverse is blockdiag(T, I) and its top-left C x C block is T.
    const padRows = cp - c;
    const kp = padRows ? tf.pad(k, [[0, 0], [0, padRows], [0, 0]]) : k; // [X, Cp, dk]
    const bp = padRows ? tf.pad(beta, [[0, 0], [0, padRows]]) : beta; // [X, Cp]
    const gp = g ? (padRows ? tf.pad(g, [[0, 0], [0, padRows]]) : g) : null; // [X, Cp]

    // 1) Inverses of the base x base diagonal blocks. N restricted to those blocks:
    const base = Math.min(cp, BASE_BLOCK);
    const gb = x * (cp / base);
    const kb = kp.reshape([gb, base, dk]);
    const strict = maskFrom(base, (i, j) => i > j);
    let nb = tf.matMul(kb, kb, false, true).mul(bp.reshape([gb, base, 1])).mul(strict); // [Gb, base, base]
    if (gp) {
      const gg = gp.reshape([gb, base]);
      nb = nb.mul(tf.exp(gg.expandDims(2).sub(gg.expandDims(1)).mul(strict))); // Gam, i > j only
    }
    // Doubling inside the base block on whole matrices: Inv_2b = Inv_b - Inv_b E_b Inv_b, where
    // E_b = N on the lower-left b x b of every 2b-block (E_b Inv_b E_b = 0 makes it exact); Inv_1 = I.
    const lowerLeft = (b: number): tf.Tensor2D =>
      maskFrom(base, (i, j) => Math.floor(i / (2 * b)) === Math.floor(j / (2 * b)) && i % (2 * b) >= b && j % (2 * b) < b);
    let inv: tf.Tensor = tf.eye(base).expandDims(0).sub(nb.mul(lowerLeft(1))); // Inv_2
    for (let b = 2; b < base; b *= 2) {
      inv = inv.sub(tf.matMul(tf.matMul(inv as tf.Tensor3D, nb.mul(lowerLeft(b)) as tf.Tensor3D), inv as tf.Tensor3D));
    }

    // 2) Larger blocks: [[L11, 0], [L21, L22]]^-1 = [[A1, 0], [-A2 L21 A1, A2]] with only b x b products;
    //    L21 = diag(beta2) (Gam o K2 K1^T) is recomputed from the two halves' rows of K.
    for (let b = base; b < cp; b *= 2) {
      const b2 = 2 * b;
      const groups = x * (cp / b2); // number of 2b-blocks in the whole batch
      // first (h = 0) or second (h = 1) half of every 2b-block; contiguous rows of >= 8 floats
      const half = (t: tf.Tensor, h: 0 | 1, inner: number[]): tf.Tensor =>
        t.reshape([groups, 2, inner.reduce((p, q) => p * q, 1)]).slice([0, h, 0], [groups, 1, -1]).reshape([groups, ...inner]);
      const a1 = half(inv, 0, [b, b]) as tf.Tensor3D; // [G, b, b]
      const a2 = half(inv, 1, [b, b]) as tf.Tensor3D;
      const k1 = half(kp, 0, [b, dk]) as tf.Tensor3D; // [G, b, dk]
      const k2 = half(kp, 1, [b, dk]) as tf.Tensor3D;
      let l21 = tf.matMul(k2, k1, false, true).mul(half(bp, 1, [b, 1])); // [G, b, b]
      if (gp) l21 = l21.mul(tf.exp(half(gp, 1, [b, 1]).sub(half(gp, 0, [1, b])))); // g_i - g_j <= 0 here
      const a21 = tf.matMul(tf.matMul(a2, l21 as tf.Tensor3D), a1).neg(); // [G, b, b]
      // blockdiag(A1, A2): the pair's stacked rows [2b, b] spread over the two column halves
      // (spread[i, h, j] = 1 iff row i belongs to half h), plus A21 padded into the lower-left corner.
      const spread = tf.tensor3d(
        Array.from({ length: b2 }, (_, i) => [0, 1].map((h) => new Array(b).fill(h === Math.floor(i / b) ? 1 : 0))),
      ); // [2b, 2, b]
      const blockDiag = inv.reshape([groups, b2, 1, b]).mul(spread).reshape([groups, b2, b2]);
      inv = blockDiag.add(tf.pad(a21, [[0, 0], [b, 0], [0, b]])); // [G, 2b, 2b]
    }
    const full = inv.reshape([x, cp, cp]) as tf.Tensor3D;
    return (padRows ? full.slice([0, 0, 0], [x, c, c]) : full) as tf.Tensor3D;
  });
}
