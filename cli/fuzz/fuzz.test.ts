/**
 * Fuzz suite of `nl` (issue 16): several hundred generated bad inputs - configs, data files, checkpoints,
 * command-line arguments (cli/fuzz/cases.ts) - run in process (cli/fuzz/harness.ts). Every one must be
 * refused with a non-zero exit and ONE line that names the field / option / file, no stack trace, and
 * nothing half-written. The counts per category are printed; `cli/fuzz/report.ts` prints the same counts
 * from a crash-tolerant child process (for code that still crashes).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { generateCases, makeFixtures, type Fixtures } from './cases';
import { countOutcomes, formatCounts, runCase, type CaseResult } from './harness';

describe('nl fuzz: generated bad inputs are refused clearly (issue 16)', function () {
  this.timeout(900000);
  let root = '';
  let fx: Fixtures;
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-fuzz-'));
    fx = await makeFixtures(root);
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('>= 300 generated cases over configs, data, checkpoints and CLI arguments: 0 crash, 0 silent, 0 unclear; no leaked tensors', async () => {
    const cases = generateCases(fx);
    expect(cases.length).to.be.greaterThanOrEqual(300);
    expect(new Set(cases.map((c) => c.id)).size).to.equal(cases.length);
    const before = tf.memory().numTensors;
    const results: CaseResult[] = [];
    for (const c of cases) results.push(await runCase(c));
    const counts = countOutcomes(results);
    console.log(formatCounts(counts));
    const bad = results.filter((r) => r.outcome !== 'clear');
    expect(bad.map((r) => `${r.outcome} ${r.id}: ${r.line} [${r.why ?? ''}]`)).to.deep.equal([]);
    for (const cat of ['config', 'data', 'checkpoint', 'cli']) expect(counts[cat]?.tried ?? 0, cat).to.be.greaterThan(20);
    expect(tf.memory().numTensors).to.equal(before);
  });
});
