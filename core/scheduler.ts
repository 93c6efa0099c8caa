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

// ---------------------------------------------------------------------------------------------
// Level clocks as plain functions: the rules every driver of in-context levels shares (NestedTrainer,
// the CMS op of plugins/cms). Periods in tokens of the context, 0 = never; indices into `periods`.

/** Levels that reach a boundary once `tokensSeen` tokens have been seen (period divides it; Eq. 71). */
export function levelsAtBoundary(periods: readonly number[], tokensSeen: number): number[] {
  if (tokensSeen <= 0) return [];
  return periods.flatMap((p, l) => (p > 0 && tokensSeen % p === 0 ? [l] : []));
}

/** Levels with a non-empty pending chunk (tokens since their last update): what a flush applies. */
export function levelsPending(periods: readonly number[], lastUpdateAt: readonly number[], tokensSeen: number): number[] {
  return periods.flatMap((p, l) => (p > 0 && tokensSeen - lastUpdateAt[l] > 0 ? [l] : []));
}

/**
 * Segment end points (context token counts) for the piece [start, end): every level boundary inside it,
 * the multiples of `segmentLength` (default: the fastest period; none when every level is frozen) and
 * `end`, ascending. Inside a segment every fast weight is constant.
 */
export function segmentCuts(periods: readonly number[], start: number, end: number, segmentLength?: number): number[] {
  const marks = new Set<number>([end]);
  const active = periods.filter((p) => p > 0);
  for (const p of active) for (let t = (Math.floor(start / p) + 1) * p; t <= end; t += p) marks.add(t);
  const seg = segmentLength ?? (active.length ? Math.min(...active) : 0);
  if (seg > 0) for (let t = (Math.floor(start / seg) + 1) * seg; t < end; t += seg) marks.add(t);
  return [...marks].sort((a, b) => a - b);
}
