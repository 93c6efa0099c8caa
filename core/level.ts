/**
 * A level of the nested system (paper Section 1, Eqs. 19-20): a set of parameters with its own
 * update frequency, its own objective and its own optimizer. Levels are data; the scheduler turns
 * them into a plan and the trainer executes it.
 */

/** Which gradient drives memory writes. 'full': outer gradients flow through writes inside a
 * training segment (meta-learned initial states); 'stop': reads are differentiable, writes are not. */
import { failAt, is } from './validate';

export type GradientMode = 'full' | 'stop';
export const GRADIENT_MODES: readonly GradientMode[] = ['full', 'stop'];

export interface LevelSpec {
  /** Unique id, e.g. 'outer', 'cms/0'. */
  id: string;
  /** Update period in tokens of the context stream: 1 = every token, C = every C tokens, 0 = never
   * (a frozen level inside a context; still meta-learned by the outer optimizer). */
  period: number;
  /** Names of the variables this level owns. A variable belongs to at most one level. */
  variables: readonly string[];
  /** Step size eta of this level (Eq. 71). Default 0 means no in-context change. */
  learningRate?: number;
  /** Registered gradient-transform name used to turn this level's gradients into updates. */
  transform?: string;
  /** Registered inner-loss name when the level learns from an inner objective instead of the task loss. */
  innerLoss?: string;
}

const fail: (path: string, msg: string) => never = failAt;

/** 'full' or 'stop' (a Check of the core/validate.ts kit). */
export function validateGradientMode(mode: unknown, path = 'gradientMode'): GradientMode {
  return is.oneOf(GRADIENT_MODES)(mode, path);
}

/** Validates a list of levels; errors name the field path (e.g. "levels[2].period"). */
export function validateLevels(levels: readonly LevelSpec[], path = 'levels'): void {
  if (!Array.isArray(levels)) fail(path, 'must be an array of level specs');
  const ids = new Map<string, number>();
  const owner = new Map<string, string>();
  levels.forEach((l, i) => {
    const p = `${path}[${i}]`;
    if (typeof l !== 'object' || l === null) fail(p, 'must be an object');
    if (typeof l.id !== 'string' || l.id.length === 0) fail(`${p}.id`, 'must be a non-empty string');
    if (ids.has(l.id)) fail(`${p}.id`, `duplicate id '${l.id}' (also ${path}[${ids.get(l.id)}])`);
    ids.set(l.id, i);
    is.int(0, 'an integer >= 0 (tokens; 0 = never)')(l.period, `${p}.period`);
    if (!Array.isArray(l.variables)) fail(`${p}.variables`, 'must be an array of variable names');
    for (const v of l.variables) {
      if (typeof v !== 'string') fail(`${p}.variables`, `entries must be strings, got ${JSON.stringify(v)}`);
      const prev = owner.get(v);
      if (prev !== undefined) fail(`${p}.variables`, `variable '${v}' already belongs to level '${prev}'`);
      owner.set(v, l.id);
    }
    if (l.learningRate !== undefined) is.number({ min: 0 })(l.learningRate, `${p}.learningRate`);
  });
}
