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
}

export interface ToyResult {
  /** Steps until psi < 1e-4; maxSteps + 1 if never; -1 if it diverged (non-finite or > 1e8). */
  steps: number;
  curve: Array<{ step: number; psi: number }>;
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
  return { steps, curve };
}

