import { expect } from 'chai';
import { createPeriodicScheduler, levelsAtBoundary, levelsPending, segmentCuts } from './scheduler';

describe('core: level clock rules (levelsAtBoundary, levelsPending, segmentCuts)', () => {
  const periods = [2, 3, 0, 5];
  it('boundaries: a level fires when its period divides the token count; period 0 never; agrees with the scheduler plan', () => {
    const plan = createPeriodicScheduler(periods.map((period, i) => ({ id: `l${i}`, period, variables: [`v${i}`] })));
    for (let n = 0; n <= 31; n++) {
      expect(levelsAtBoundary(periods, n).map((l) => `l${l}`).sort(), `n = ${n}`).to.deep.equal([...plan.plan(n)].sort());
    }
    expect(levelsAtBoundary(periods, 30)).to.deep.equal([0, 1, 3]);
  });
  it('pending: learning levels with tokens since their last update', () => {
    expect(levelsPending(periods, [12, 12, 0, 10], 13)).to.deep.equal([0, 1, 3]);
    expect(levelsPending(periods, [12, 12, 0, 10], 12)).to.deep.equal([3]);
    expect(levelsPending(periods, [12, 12, 0, 12], 12)).to.deep.equal([]);
  });
  it('segment cuts: every boundary, multiples of the segment length (default the fastest period), and the end', () => {
    expect(segmentCuts(periods, 0, 13)).to.deep.equal([2, 3, 4, 5, 6, 8, 9, 10, 12, 13]);
    expect(segmentCuts(periods, 4, 11, 4)).to.deep.equal([5, 6, 8, 9, 10, 11]);
    expect(segmentCuts([0, 0], 3, 9)).to.deep.equal([9]);
    expect(segmentCuts([0], 0, 5, 2)).to.deep.equal([2, 4, 5]);
  });
});
