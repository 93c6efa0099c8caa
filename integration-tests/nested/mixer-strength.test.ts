/**
 * The self-modifying Titans memory retrieves at initialisation: its cross-token sensitivity (how much the
 * output at token T moves when token T - 8 changes, relative to a change of token T itself; the measure of
 * experiments/probes/mixer-strength.ts) is at least DeltaNet's at the same width, for the default
 * ('stable') parameterisation. The 'paper' parameterisation's value is printed beside it (it is ~0: inert).
 */
import { expect } from 'chai';
import { nlRuntime } from '../../run';
import { withSeededRandom } from '../../experiments/models';
import { crossTokenSensitivity } from '../../experiments/probes/sensitivity';
import type { LayerSpec } from '../../plugins/hope';

const mean = (spec: LayerSpec): number => {
  const seeds = [1, 2, 3, 4];
  const v = seeds.map((s) => withSeededRandom(s, () => crossTokenSensitivity(spec, 8, 32, 16, 4)));
  return v.reduce((a, b) => a + b, 0) / v.length;
};

describe('integration: in-context memory strength at initialisation (width 32, 2 heads, lag 8)', () => {
  before(() => nlRuntime());

  it("self-modifying Titans ('stable', the default) >= DeltaNet; 'paper' is far below", function () {
    this.timeout(60_000);
    const deltanet = mean({ className: 'NlLinearAttention', config: { numHeads: 2, rule: 'delta', chunkSize: 8 } });
    const stable = mean({ className: 'NlSelfModifyingTitans', config: { numHeads: 2, chunkSize: 8, memChunkSize: 8 } });
    const paper = mean({ className: 'NlSelfModifyingTitans', config: { numHeads: 2, chunkSize: 8, memChunkSize: 8, parameterization: 'paper' } });
    console.log(`      cross-token sensitivity: deltanet ${deltanet.toFixed(3)}, smt stable ${stable.toFixed(3)}, smt paper ${paper.toFixed(4)}`);
    expect(deltanet).to.be.greaterThan(0.05); // the reference memory retrieves (the measure can tell)
    expect(stable).to.be.at.least(deltanet);
    expect(paper).to.be.lessThan(deltanet / 10);
  });
});
