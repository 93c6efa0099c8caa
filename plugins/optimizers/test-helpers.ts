/** Test-only helpers for the optimizer tests (they read values back; never use on hot paths). */
import * as tf from '@tensorflow/tfjs';
import type { GradientTransform, NamedTensors } from '../../core';
import { NS_COEFFS } from './util';

export type Arr = number | number[] | number[][];

/**
 * Runs `t` from params0 over gradSeq (arbitrary shapes), adding updates to the params.
 * Returns each step's updates as nested arrays, and the final state (tensors the caller disposes).
 */
export function runSteps(
  t: GradientTransform,
  params0: Record<string, Arr>,
  gradSeq: Array<Record<string, Arr>>,
): { updates: Array<Record<string, Arr>>; params: Record<string, Arr>; state: NamedTensors } {
  let params: NamedTensors = {};
  for (const [k, v] of Object.entries(params0)) params[k] = tf.tensor(v);
  let state = t.init(params);
  const updates: Array<Record<string, Arr>> = [];
  gradSeq.forEach((gs, i) => {
    const grads: NamedTensors = {};
    for (const [k, v] of Object.entries(gs)) grads[k] = tf.tensor(v);
    const r = t.update(grads, state, params, i + 1);
    const u: Record<string, Arr> = {};
    for (const [k, v] of Object.entries(r.updates)) u[k] = v.arraySync() as Arr;
    updates.push(u);
    const next: NamedTensors = {};
    for (const k of Object.keys(params)) next[k] = r.updates[k] ? params[k].add(r.updates[k]) : params[k].clone();
    tf.dispose([params, grads, state, r.updates]);
    params = next;
    state = r.state;
  });
  const out: Record<string, Arr> = {};
  for (const [k, v] of Object.entries(params)) out[k] = v.arraySync() as Arr;
  tf.dispose(params);
  return { updates, params: out, state };
}

/** The quintic Newton-Schulz map on one singular value (x <- a x + b x^3 + c x^5), `steps` times. */
export function nsScalar(x0: number, steps = 5): number {
  const [a, b, c] = NS_COEFFS;
  let x = x0;
  for (let i = 0; i < steps; i++) x = a * x + b * x ** 3 + c * x ** 5;
  return x;
}
