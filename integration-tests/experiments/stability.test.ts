/**
 * `nl exp stability --smoke` through runExperiment: one row per (kind, phase, stream), finite positive
 * norms, ratios computed from the stored values, the verdict from the 'hope' rows, no leaked tensors.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { getExperiment, runExperiment, type ResultFile } from '../../experiments';

describe('experiments: stability (smoke size)', function () {
  this.timeout(180000);
  let out: string;
  before(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-exp-stab-'));
  });
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  it('rows per (kind, phase, stream) with finite norms and consistent ratios; no leaked tensors', async () => {
    const before = tf.memory().numTensors;
    const w = await runExperiment(getExperiment('stability'), { smoke: true, out, seed: 1 });
    const j = JSON.parse(fs.readFileSync(w.json, 'utf8')) as ResultFile;
    expect(j.rows).to.have.length(2 * 2 * 3);
    for (const r of j.rows) {
      const m0 = Number(r['memory@64']);
      const m1 = Number(r['memory@256']);
      expect(m0).to.be.greaterThan(0);
      expect(Number.isFinite(m1)).to.equal(true);
      expect(Number(r.memoryRatio)).to.be.closeTo(m1 / m0, 2e-3 * (m1 / m0) + 1e-3);
      expect(Number(r.readRatio)).to.be.closeTo(Number(r['read@256']) / Number(r['read@64']), 5e-3);
      expect(r.allFinite).to.equal(true);
    }
    expect(new Set(j.rows.map((r) => `${r.kind}/${r.phase}/${r.stream}`)).size).to.equal(12);
    expect(tf.memory().numTensors).to.equal(before);
  });
});
