/**
 * Learning-rate schedules as gradient transforms (optax-style `scale_by_schedule`):
 *   scaleBySchedule(schedule): updates = schedule(count) * incoming,  count <- count + 1
 * `count` is the number of updates this transform has made before the current one (0 on the first
 * call, as in optax), kept in the transform's own state (global slot '::schedule/count', a float32
 * scalar), so it is saved with the optimizer state (NlTransformOptimizer.getWeights, trainer
 * checkpoints) and a resumed run continues the schedule exactly. The factor is computed on the device
 * from that count (no read-back): a resumed run repeats the same float32 operations on the same count,
 * so it is bit-identical to an uninterrupted one.
 *
 * Schedules (JSON specs, `{name, ...}`; `scheduleValue` is the float64 closed form, for tests and logs):
 * - constant {value}: value.
 * - linear {init, end, steps, begin = 0}: init until `begin`, then linearly to `end` over `steps`
 *   updates, then end. Linear warm-up is {init: 0, end: peak, steps: W}.
 * - cosineDecay {init, steps, alpha = 0}: init ((1 - alpha) (1 + cos(pi min(c, steps) / steps)) / 2 + alpha).
 * - warmupConstant {init = 0, peak, warmupSteps}: linear init -> peak over warmupSteps, then peak.
 * - warmupCosineDecay {init = 0, peak, warmupSteps, steps, end = 0}: linear init -> peak over warmupSteps,
 *   then cosine from peak to end over the remaining steps - warmupSteps (steps counts the warm-up, as optax's
 *   decay_steps does), then end.
 * A schedule multiplies the updates of whatever precedes it in a chain: chain(adamw {learningRate: 1},
 * scaleBySchedule {schedule: {name: 'warmupCosineDecay', peak: 3e-3, ...}}) is AdamW with that schedule
 * (the decoupled weight decay is scheduled with it, as in optax's adamw).
 */
import * as tf from '@tensorflow/tfjs';
import { type GradientTransform, type JsonObject, type NamedTensors, stateKey, tidyResult, tidyState } from './transform';
import { checkOptions, fail, numberField, oneOfField } from './validate';

export type ScheduleName = 'constant' | 'linear' | 'cosineDecay' | 'warmupConstant' | 'warmupCosineDecay';
export const SCHEDULE_NAMES: readonly ScheduleName[] = ['constant', 'linear', 'cosineDecay', 'warmupConstant', 'warmupCosineDecay'];

export type Schedule =
  | { name: 'constant'; value: number }
  | { name: 'linear'; init: number; end: number; steps: number; begin: number }
  | { name: 'cosineDecay'; init: number; steps: number; alpha: number }
  | { name: 'warmupConstant'; init: number; peak: number; warmupSteps: number }
  | { name: 'warmupCosineDecay'; init: number; peak: number; warmupSteps: number; steps: number; end: number };

const FIELDS: Record<ScheduleName, readonly string[]> = {
  constant: ['value'],
  linear: ['init', 'end', 'steps', 'begin'],
  cosineDecay: ['init', 'steps', 'alpha'],
  warmupConstant: ['init', 'peak', 'warmupSteps'],
  warmupCosineDecay: ['init', 'peak', 'warmupSteps', 'steps', 'end'],
};

/** Validates a schedule spec; errors name the field (`${path}.steps: ...`). */
export function readSchedule(raw: unknown, path = 'schedule'): Schedule {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(path, `must be an object {name, ...} with name one of ${SCHEDULE_NAMES.map((n) => `'${n}'`).join(', ')}`);
  if ((raw as Record<string, unknown>).name === undefined) fail(`${path}.name`, `is required (one of ${SCHEDULE_NAMES.map((n) => `'${n}'`).join(', ')})`);
  const name = oneOfField(raw as Record<string, unknown>, 'name', path, SCHEDULE_NAMES, 'constant');
  const c = checkOptions(raw, ['name', ...FIELDS[name]], path);
  const steps = (key: string, dflt?: number): number => numberField(c, key, path, { integer: true, min: key === 'begin' || key === 'warmupSteps' ? 0 : 1, ...(dflt !== undefined ? { default: dflt } : {}) });
  const num = (key: string, dflt?: number): number => numberField(c, key, path, dflt !== undefined ? { default: dflt } : {});
  switch (name) {
    case 'constant':
      return { name, value: num('value') };
    case 'linear':
      return { name, init: num('init'), end: num('end'), steps: steps('steps'), begin: steps('begin', 0) };
    case 'cosineDecay':
      return { name, init: num('init'), steps: steps('steps'), alpha: numberField(c, 'alpha', path, { min: 0, max: 1, default: 0 }) };
    case 'warmupConstant':
      return { name, init: num('init', 0), peak: num('peak'), warmupSteps: steps('warmupSteps') };
    case 'warmupCosineDecay': {
      const s: Schedule = { name, init: num('init', 0), peak: num('peak'), warmupSteps: steps('warmupSteps'), steps: steps('steps'), end: num('end', 0) };
      if (s.steps <= s.warmupSteps) fail(`${path}.steps`, `must be > warmupSteps (${s.warmupSteps}): it counts the warm-up, got ${s.steps}`);
      return s;
    }
  }
}

/** The schedule at update count c (0-based), float64 closed form. */
export function scheduleValue(s: Schedule, c: number): number {
  const lin = (a: number, b: number, frac: number): number => a + (b - a) * Math.min(Math.max(frac, 0), 1);
  const cos = (from: number, to: number, x: number, n: number): number => to + (from - to) * 0.5 * (1 + Math.cos((Math.PI * Math.min(x, n)) / n));
  switch (s.name) {
    case 'constant':
      return s.value;
    case 'linear':
      return lin(s.init, s.end, (c - s.begin) / s.steps);
    case 'cosineDecay':
      return cos(s.init, s.init * s.alpha, c, s.steps);
    case 'warmupConstant':
      return lin(s.init, s.peak, c / s.warmupSteps);
    case 'warmupCosineDecay':
      return c < s.warmupSteps ? lin(s.init, s.peak, c / s.warmupSteps) : cos(s.peak, s.end, c - s.warmupSteps, s.steps - s.warmupSteps);
  }
}

/** The same formula on the device: c is a float32 scalar tensor; returns a float32 scalar. */
function scheduleTensor(s: Schedule, c: tf.Scalar): tf.Scalar {
  const lin = (a: number, b: number, frac: tf.Tensor): tf.Tensor => tf.add(a, tf.mul(b - a, tf.clipByValue(frac, 0, 1)));
  const cos = (from: number, to: number, x: tf.Tensor, n: number): tf.Tensor =>
    tf.add(to, tf.mul((from - to) * 0.5, tf.add(1, tf.cos(tf.mul(Math.PI / n, tf.minimum(x, n))))));
  switch (s.name) {
    case 'constant':
      return tf.scalar(s.value);
    case 'linear':
      return lin(s.init, s.end, tf.div(tf.sub(c, s.begin), s.steps)) as tf.Scalar;
    case 'cosineDecay':
      return cos(s.init, s.init * s.alpha, c, s.steps) as tf.Scalar;
    case 'warmupConstant':
      return lin(s.init, s.peak, tf.div(c, s.warmupSteps)) as tf.Scalar;
    case 'warmupCosineDecay':
      return tf.where(
        tf.less(c, s.warmupSteps),
        lin(s.init, s.peak, tf.div(c, s.warmupSteps)),
        cos(s.peak, s.end, tf.maximum(tf.sub(c, s.warmupSteps), 0), s.steps - s.warmupSteps),
      ) as tf.Scalar;
  }
}

/** The global state key of the update count. */
export const SCHEDULE_COUNT_KEY = stateKey('', 'schedule/count');

/** updates = schedule(count) * incoming; count += 1. State: '::schedule/count' (float32 scalar). */
export function scaleBySchedule(schedule: Schedule | JsonObject, path = 'scaleBySchedule'): GradientTransform {
  const s = readSchedule(schedule, `${path}.schedule`);
  return {
    name: 'scaleBySchedule',
    config: { schedule: { ...s } as unknown as JsonObject },
    init: () => tidyState(() => ({ [SCHEDULE_COUNT_KEY]: tf.scalar(0) })),
    update: (grads, state) =>
      tidyResult(() => {
        const count = state[SCHEDULE_COUNT_KEY] as tf.Scalar | undefined;
        if (count == null) throw new Error(`${path}: state '${SCHEDULE_COUNT_KEY}' is missing (was init called?)`);
        const factor = scheduleTensor(s, count); // [] float32
        const updates: NamedTensors = {};
        for (const [k, g] of Object.entries(grads)) updates[k] = tf.mul(g, factor); // [...P]
        return { updates, state: { [SCHEDULE_COUNT_KEY]: tf.add(count, 1) } };
      }),
  };
}
