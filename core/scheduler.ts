/**
 * Schedulers are pure plans: given how many tokens of the current context have been seen, which
 * levels reach an update boundary. The training loop is ordinary code that asks the plan.
 * Periods are counted in tokens of the context stream, never in optimizer steps (paper Eq. 71).
 */
import { validateLevels, type LevelSpec } from './level';

export interface Boundary {
  /** Token count at which the boundary falls (after `token` tokens of the context). */
  token: number;
  /** Ids of the levels that update there, slowest last. */
  levels: string[];
}

export interface Scheduler {
  readonly levels: readonly LevelSpec[];
  /** Ids of the levels that update once `tokensSeen` tokens (>= 1) have been seen. Pure. */
  plan(tokensSeen: number): string[];
  /** Boundaries strictly after `start` and at most `end` tokens, in order. Pure. */
  boundaries(start: number, end: number): Boundary[];
  /** The smallest non-zero period (the natural segment length), or 0 if every level is frozen. */
  fastestPeriod(): number;
}

/** Level l fires at token counts that are multiples of its period; period 0 never fires. */
export function createPeriodicScheduler(levels: readonly LevelSpec[]): Scheduler {
  validateLevels(levels);
  const sorted = [...levels].sort((a, b) => a.period - b.period);
  const active = sorted.filter((l) => l.period > 0);
  const plan = (tokensSeen: number): string[] => {
    if (!Number.isInteger(tokensSeen) || tokensSeen < 0) {
      throw new Error(`scheduler.plan: tokensSeen must be an integer >= 0, got ${tokensSeen}`);
    }
    if (tokensSeen === 0) return [];
    return active.filter((l) => tokensSeen % l.period === 0).map((l) => l.id);
  };
  return {
    levels,
    plan,
    boundaries(start: number, end: number): Boundary[] {
      const marks = new Set<number>();
      for (const l of active) {
        for (let t = (Math.floor(start / l.period) + 1) * l.period; t <= end; t += l.period) marks.add(t);
      }
      return [...marks].sort((a, b) => a - b).map((token) => ({ token, levels: plan(token) }));
    },
    fastestPeriod: () => (active.length ? active[0].period : 0),
  };
}
