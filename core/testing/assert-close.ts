import * as tf from '@tensorflow/tfjs';

export type Numeric = tf.Tensor | number | ArrayLike<number> | number[][] | number[][][];

export interface CloseOptions {
  /** Relative tolerance: |a - e| <= atol + rtol * |e| elementwise. Default 1e-5. */
  rtol?: number;
  /** Absolute floor, so values near zero do not demand impossible relative precision. Default 1e-6. */
  atol?: number;
  /** Name shown in the failure message. */
  name?: string;
}

function flatten(x: Numeric): { values: Float64Array; shape: number[] | null } {
  if (x instanceof tf.Tensor) {
    return { values: Float64Array.from(x.dataSync() as ArrayLike<number>), shape: x.shape };
  }
  if (typeof x === 'number') return { values: Float64Array.of(x), shape: [] };
  const out: number[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'number') out.push(v);
    else if (Array.isArray(v) || ArrayBuffer.isView(v)) for (const e of v as ArrayLike<unknown> as unknown[]) walk(e);
    else throw new Error(`assertClose: unsupported element ${String(v)}`);
  };
  walk(x);
  return { values: Float64Array.from(out), shape: null };
}

/**
 * Elementwise closeness with a relative tolerance and an absolute floor. NaN-aware: NaN matches
 * only NaN; +-Inf must match exactly. Shapes must agree when both sides are tensors.
 */
export function assertClose(actual: Numeric, expected: Numeric, opts: CloseOptions = {}): void {
  const rtol = opts.rtol ?? 1e-5;
  const atol = opts.atol ?? 1e-6;
  const name = opts.name ? `${opts.name}: ` : '';
  const a = flatten(actual);
  const e = flatten(expected);
  if (a.shape && e.shape && a.shape.join(',') !== e.shape.join(',')) {
    throw new Error(`${name}shape mismatch: actual [${a.shape}] vs expected [${e.shape}]`);
  }
  if (a.values.length !== e.values.length) {
    throw new Error(`${name}size mismatch: actual ${a.values.length} vs expected ${e.values.length}`);
  }
  let worst = -1;
  let worstExcess = 0;
  let bad = 0;
  for (let i = 0; i < a.values.length; i++) {
    const av = a.values[i];
    const ev = e.values[i];
    let ok: boolean;
    let excess: number;
    if (Number.isNaN(ev) || Number.isNaN(av)) {
      ok = Number.isNaN(ev) && Number.isNaN(av);
      excess = ok ? 0 : Infinity;
    } else if (!Number.isFinite(ev) || !Number.isFinite(av)) {
      ok = av === ev;
      excess = ok ? 0 : Infinity;
    } else {
      const diff = Math.abs(av - ev);
      const tol = atol + rtol * Math.abs(ev);
      ok = diff <= tol;
      excess = diff / tol;
    }
    if (!ok) {
      bad++;
      if (excess > worstExcess || worst < 0) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (bad > 0) {
    const av = a.values[worst];
    const ev = e.values[worst];
    throw new Error(
      `${name}${bad}/${a.values.length} elements differ (rtol=${rtol}, atol=${atol}); worst at flat index ${worst}: ` +
        `actual ${av} vs expected ${ev} (|diff| ${Math.abs(av - ev).toExponential(3)})`,
    );
  }
}

/** Max elementwise relative error |a-e| / (|e| + floor); useful in benchmark/diagnostic output. */
export function maxRelativeError(actual: tf.Tensor, expected: tf.Tensor, floor = 1e-6): number {
  const a = actual.dataSync();
  const e = expected.dataSync();
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - e[i]) / (Math.abs(e[i]) + floor));
  return m;
}
