/**
 * Token-by-token reference of CMS in-context learning (Eq. 71), in plain float64 JavaScript, for tests.
 * One sequence at a time; loss per token 1/2 ||y_t - target_t||^2; gradients by hand-written backprop.
 * After token count n (1-based), every learning level with n % C(l) == 0 applies
 * W <- W - eta(l) * (sum of its gradients since its last update); 'nested' resets level l+1 to the child
 * initial state held (and updated) by level l. `flushAt` lists token counts where every non-empty
 * pending chunk is applied as well (the 'flush' policy at the end of a piece).
 */
export type Mat = number[][];
export type Vec = number[];
export interface RefBlock {
  w1: Mat; // [D][H]
  b1: Vec; // [H]
  w2: Mat; // [H][D]
  b2: Vec; // [D]
}
export interface RefConfig {
  /** momentum: the level uses the 'momentum' transform {learningRate: 1, beta: momentum} (m = beta m - sum; W += eta m). */
  levels: Array<{ period: number; learningRate: number; momentum?: number }>;
  variant: 'sequential' | 'nested' | 'independent';
  activation: 'linear' | 'relu' | 'tanh';
  residual: boolean;
  /** Independent variant aggregation weights [k]. */
  mix?: Vec;
}
export interface RefResult {
  /** y per token [T][D]. */
  outputs: Mat;
  /** Loss per token [T]. */
  losses: Vec;
  /** Weights of every level after each token count n = 1..T: snapshots[n-1][l]. */
  snapshots: RefBlock[][];
  /** Per level: sum of every gradient its weights saw (first-order meta-gradient before scaling). */
  seen: RefBlock[];
  /** Update count per level. */
  fired: number[];
}

const clone = (b: RefBlock): RefBlock => ({ w1: b.w1.map((r) => [...r]), b1: [...b.b1], w2: b.w2.map((r) => [...r]), b2: [...b.b2] });
const zerosLike = (b: RefBlock): RefBlock => ({ w1: b.w1.map((r) => r.map(() => 0)), b1: b.b1.map(() => 0), w2: b.w2.map((r) => r.map(() => 0)), b2: b.b2.map(() => 0) });
function axpy(dst: RefBlock, a: number, src: RefBlock): void {
  dst.w1.forEach((r, i) => r.forEach((_, j) => (r[j] += a * src.w1[i][j])));
  dst.b1.forEach((_, j) => (dst.b1[j] += a * src.b1[j]));
  dst.w2.forEach((r, i) => r.forEach((_, j) => (r[j] += a * src.w2[i][j])));
  dst.b2.forEach((_, j) => (dst.b2[j] += a * src.b2[j]));
}
const act = (z: number, a: RefConfig['activation']): number => (a === 'relu' ? Math.max(0, z) : a === 'tanh' ? Math.tanh(z) : z);
const dact = (z: number, a: RefConfig['activation']): number => (a === 'relu' ? (z > 0 ? 1 : 0) : a === 'tanh' ? 1 - Math.tanh(z) ** 2 : 1);

/** Forward of one block on h [D]; returns z [H], a [H], o [D]. */
function blockFwd(h: Vec, w: RefBlock, a: RefConfig['activation']): { z: Vec; a: Vec; o: Vec } {
  const H = w.b1.length;
  const D = w.b2.length;
  const z = Array.from({ length: H }, (_, j) => w.b1[j] + h.reduce((s, hv, d) => s + hv * w.w1[d][j], 0));
  const av = z.map((v) => act(v, a));
  const o = Array.from({ length: D }, (_, d) => w.b2[d] + av.reduce((s, x, j) => s + x * w.w2[j][d], 0));
  return { z, a: av, o };
}

/** Backward of one block: adds dW to g, returns dL/dh [D]. */
function blockBwd(h: Vec, w: RefBlock, f: { z: Vec; a: Vec }, dout: Vec, g: RefBlock, a: RefConfig['activation']): Vec {
  const H = w.b1.length;
  f.a.forEach((av, j) => dout.forEach((dv, d) => (g.w2[j][d] += av * dv)));
  dout.forEach((dv, d) => (g.b2[d] += dv));
  const dz = Array.from({ length: H }, (_, j) => dout.reduce((s, dv, d) => s + w.w2[j][d] * dv, 0) * dact(f.z[j], a));
  h.forEach((hv, d) => dz.forEach((dzv, j) => (g.w1[d][j] += hv * dzv)));
  dz.forEach((v, j) => (g.b1[j] += v));
  return h.map((_, d) => dz.reduce((s, dzv, j) => s + w.w1[d][j] * dzv, 0));
}

export function referenceRun(cfg: RefConfig, init: RefBlock[], xs: Mat, targets: Mat, flushAt: readonly number[] = []): RefResult {
  const k = cfg.levels.length;
  const learns = (l: number): boolean => cfg.levels[l].period > 0;
  const hasChild = (l: number): boolean => cfg.variant === 'nested' && l + 1 < k && learns(l) && learns(l + 1);
  const w = init.map(clone);
  const acc = init.map(zerosLike);
  const child = init.map((_, l) => (hasChild(l) ? clone(init[l + 1]) : null));
  const childAcc = init.map((_, l) => (hasChild(l) ? zerosLike(init[l + 1]) : null));
  const mom = init.map(zerosLike);
  const last = cfg.levels.map(() => 0);
  const fired = cfg.levels.map(() => 0);
  const seen = init.map(zerosLike);
  const out: RefResult = { outputs: [], losses: [], snapshots: [], seen, fired };
  xs.forEach((x, t) => {
    const grads = init.map(zerosLike);
    let y: Vec;
    if (cfg.variant === 'independent') {
      const fs = w.map((wl) => blockFwd(x, wl, cfg.activation));
      y = x.map((xv, d) => (cfg.residual ? xv : 0) + fs.reduce((s, f, l) => s + cfg.mix![l] * f.o[d], 0));
      const e = y.map((v, d) => v - targets[t][d]);
      fs.forEach((f, l) => blockBwd(x, w[l], f, e.map((v) => v * cfg.mix![l]), grads[l], cfg.activation));
    } else {
      const hs: Vec[] = [x];
      const fs: Array<{ z: Vec; a: Vec; o: Vec }> = [];
      for (let l = 0; l < k; l++) {
        const f = blockFwd(hs[l], w[l], cfg.activation);
        fs.push(f);
        hs.push(hs[l].map((hv, d) => (cfg.residual ? hv : 0) + f.o[d]));
      }
      y = hs[k];
      let dh = y.map((v, d) => v - targets[t][d]);
      for (let l = k - 1; l >= 0; l--) {
        const dIn = blockBwd(hs[l], w[l], fs[l], dh, grads[l], cfg.activation);
        dh = dIn.map((v, d) => v + (cfg.residual ? dh[d] : 0));
      }
    }
    out.outputs.push(y);
    out.losses.push(0.5 * y.reduce((s, v, d) => s + (v - targets[t][d]) ** 2, 0));
    for (let l = 0; l < k; l++) {
      axpy(seen[l], 1, grads[l]);
      if (!learns(l)) continue;
      axpy(acc[l], 1, grads[l]);
      if (l > 0 && hasChild(l - 1)) axpy(childAcc[l - 1]!, 1, grads[l]);
    }
    const n = t + 1;
    const fire = cfg.levels.map((lv, l) => learns(l) && (n % lv.period === 0 || (flushAt.includes(n) && n > last[l])));
    for (let l = 0; l < k; l++) {
      if (!fire[l]) continue;
      const eta = cfg.levels[l].learningRate;
      const beta = cfg.levels[l].momentum;
      if (beta === undefined) axpy(w[l], -eta, acc[l]);
      else {
        const m = zerosLike(acc[l]);
        axpy(m, beta, mom[l]);
        axpy(m, -1, acc[l]);
        mom[l] = m;
        axpy(w[l], eta, m);
      }
      acc[l] = zerosLike(acc[l]);
      if (child[l]) {
        axpy(child[l]!, -eta, childAcc[l]!);
        childAcc[l] = zerosLike(childAcc[l]!);
      }
      last[l] = n;
      fired[l]++;
    }
    for (let l = 0; l < k; l++) {
      if (fire[l] && child[l]) {
        w[l + 1] = clone(child[l]!);
        acc[l + 1] = zerosLike(acc[l + 1]);
      }
    }
    out.snapshots.push(w.map(clone));
  });
  return out;
}
