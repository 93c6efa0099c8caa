/**
 * The toy problem of the paper's Figure 4: psi(r, theta) = r^2 + k (r - theta + a sin(w r))^2 from
 * (r, theta) = (-3.5, 2); minimum psi = 0 at (0, 0). Shared by toy.test.ts (which pins the measured
 * behaviour) and `nl exp optimizers` (which reports it).
 */
import * as tf from '@tensorflow/tfjs';
import type { GradientTransform } from '../../core';

export interface ToyConfig {
  k: number;
  a: number;
  w: number;
  /** Step budget; the run stops at psi < 1e-4. */
  maxSteps: number;
  /** Record psi every `curveEvery` steps (and at the last step). */
  curveEvery: number;
  /** Record (r, theta) after each of the first `trace` steps (default 0: none). */
  trace?: number;
}

export interface ToyResult {
  /** Steps until psi < 1e-4; maxSteps + 1 if never; -1 if it diverged (non-finite or > 1e8). */
  steps: number;
  curve: Array<{ step: number; psi: number }>;
  /** (r, theta) after each of the first `cfg.trace` steps (toyRun with cfg.trace > 0; always for toyRunFloat64). */
  trace?: Array<[number, number]>;
}

/** psi and its gradient in float64: e = r - theta + a sin(w r); dpsi/dr = 2r + 2k e (1 + a w cos(w r)), dpsi/dtheta = -2k e. */
export function toyPsi64(r: number, th: number, cfg: Pick<ToyConfig, 'k' | 'a' | 'w'>): { psi: number; grad: [number, number] } {
  const e = r - th + cfg.a * Math.sin(cfg.w * r);
  return { psi: r * r + cfg.k * e * e, grad: [2 * r + 2 * cfg.k * e * (1 + cfg.a * cfg.w * Math.cos(cfg.w * r)), -2 * cfg.k * e] };
}

/** The toy's optimizers written out in float64 (a reference for the float32 transforms; backend-free step counts). */
export type Toy64Optimizer =
  | { kind: 'momentum'; learningRate: number; alpha: number } // Eq. 33: m = alpha m - lr g
  | { kind: 'delta'; learningRate: number; alpha: number; beta: number; keyNorm: 'none' | 'frobenius' }; // Eq. 49: m = m (alpha I - beta k k^T) - lr g

/** toyRun in float64 with the optimizer written out (2-vector p, m; k k^T the [2, 2] outer product). */
export function toyRunFloat64(o: Toy64Optimizer, cfg: Omit<ToyConfig, 'trace'>): ToyResult {
  let p: [number, number] = [-3.5, 2];
  let m: [number, number] = [0, 0];
  const curve: Array<{ step: number; psi: number }> = [{ step: 0, psi: toyPsi64(p[0], p[1], cfg).psi }];
  const trace: Array<[number, number]> = [];
  for (let i = 1; i <= cfg.maxSteps; i++) {
    const g = toyPsi64(p[0], p[1], cfg).grad;
    if (o.kind === 'momentum') m = [o.alpha * m[0] - o.learningRate * g[0], o.alpha * m[1] - o.learningRate * g[1]];
    else {
      const n = o.keyNorm === 'frobenius' ? Math.hypot(g[0], g[1]) + 1e-12 : 1;
      const k = [g[0] / n, g[1] / n];
      const km = k[0] * m[0] + k[1] * m[1]; // (k k^T) m = k (k . m)
      m = [o.alpha * m[0] - o.beta * k[0] * km - o.learningRate * g[0], o.alpha * m[1] - o.beta * k[1] * km - o.learningRate * g[1]];
    }
    p = [p[0] + m[0], p[1] + m[1]];
    if (trace.length < 16) trace.push([p[0], p[1]]);
    const val = toyPsi64(p[0], p[1], cfg).psi;
    if (!Number.isFinite(val) || val > 1e8) {
      curve.push({ step: i, psi: Number.isFinite(val) ? val : 1e8 });
      return { steps: -1, curve, trace };
    }
    if (i % cfg.curveEvery === 0 || val < 1e-4) curve.push({ step: i, psi: val });
    if (val < 1e-4) return { steps: i, curve, trace };
  }
  return { steps: cfg.maxSteps + 1, curve, trace };
}

/** Figure 4 toy: psi along the run (every `every` steps) and steps to psi < 1e-4 (maxSteps + 1 never, -1 diverged). */
export function toyRun(t: GradientTransform, cfg: ToyConfig): ToyResult {
  const psi = (p: tf.Tensor): tf.Scalar =>
    tf.tidy(() => {
      const r = p.slice(0, 1);
      const th = p.slice(1, 1);
      return r.square().add(r.sub(th).add(r.mul(cfg.w).sin().mul(cfg.a)).square().mul(cfg.k)).sum() as tf.Scalar;
    });
  const grad = tf.grad(psi);
  let p: tf.Tensor = tf.tensor1d([-3.5, 2]);
  let s = t.init({ p });
  const curve: Array<{ step: number; psi: number }> = [];
  const trace: Array<[number, number]> = [];
  const v0 = psi(p);
  curve.push({ step: 0, psi: v0.dataSync()[0] });
  v0.dispose();
  let steps = cfg.maxSteps + 1;
  for (let i = 1; i <= cfg.maxSteps; i++) {
    const g = grad(p);
    const r = t.update({ p: g }, s, { p }, i);
    const np = p.add(r.updates.p);
    tf.dispose([g, p, s, r.updates]);
    p = np;
    s = r.state;
    if (trace.length < (cfg.trace ?? 0)) trace.push(Array.from(p.dataSync()) as [number, number]);
    const v = psi(p);
    const val = v.dataSync()[0]; // 2 scalars: the toy is sequential by nature
    v.dispose();
    if (!Number.isFinite(val) || val > 1e8) {
      curve.push({ step: i, psi: Number.isFinite(val) ? val : 1e8 });
      steps = -1;
      break;
    }
    if (i % cfg.curveEvery === 0 || val < 1e-4) curve.push({ step: i, psi: val });
    if (val < 1e-4) {
      steps = i;
      break;
    }
  }
  tf.dispose([p, s]);
  return { steps, curve, ...(cfg.trace ? { trace } : {}) };
}

