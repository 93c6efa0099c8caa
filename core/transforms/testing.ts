/**
 * Test helper for transform authors: runs a GradientTransform by hand over a list of gradient
 * records (plain numbers in, plain numbers out), applying updates to the parameters like an
 * optimizer would. Not exported from the transforms index (test code; it reads values back).
 */
import * as tf from '@tensorflow/tfjs';
import type { GradientTransform, NamedTensors } from './transform';

/** Runs `t` from `params0` over `gradSeq` (step i+1 gets gradSeq[i]); returns each step's updates
 * and the final params and state. Parameters and gradients are 1-D. */
export function runTransform(
  t: GradientTransform,
  params0: Record<string, number[]>,
  gradSeq: Array<Record<string, number[]>>,
): { updates: Array<Record<string, number[]>>; params: Record<string, number[]>; state: Record<string, number[]> } {
  let params: NamedTensors = {};
  for (const [k, v] of Object.entries(params0)) params[k] = tf.tensor1d(v);
  let state = t.init(params);
  const updates: Array<Record<string, number[]>> = [];
  gradSeq.forEach((gs, i) => {
    const grads: NamedTensors = {};
    for (const [k, v] of Object.entries(gs)) grads[k] = tf.tensor1d(v);
    const r = t.update(grads, state, params, i + 1);
    const u: Record<string, number[]> = {};
    for (const [k, v] of Object.entries(r.updates)) u[k] = Array.from(v.dataSync());
    updates.push(u);
    const nextParams: NamedTensors = {};
    for (const k of Object.keys(params)) nextParams[k] = params[k].add(r.updates[k] ?? tf.zerosLike(params[k]));
    tf.dispose([params, grads, state, r.updates]);
    params = nextParams;
    state = r.state;
  });
  const out = { updates, params: {} as Record<string, number[]>, state: {} as Record<string, number[]> };
  for (const [k, v] of Object.entries(params)) out.params[k] = Array.from(v.dataSync());
  for (const [k, v] of Object.entries(state)) out.state[k] = Array.from(v.dataSync());
  tf.dispose([params, state]);
  return out;
}
