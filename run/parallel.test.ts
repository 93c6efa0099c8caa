import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose } from '../core/testing';
import { loadPreset } from './config';
import { startRunWorkers } from './parallel';
import { createRun, disposeRun } from './run';

/** hope-tiny made smaller: 1 HOPE block (self-modifying Titans + CMS levels at 8 and 16 tokens), T = 32. */
function tinyConfig(): unknown {
  const c = loadPreset('hope-tiny');
  const block = c.model.blocks[0];
  return {
    ...c,
    model: {
      ...c.model,
      dModel: 16,
      blocks: [
        {
          className: block.className,
          repeat: 1,
          config: {
            mixer: { className: 'NlSelfModifyingTitans', config: { numHeads: 2, chunkSize: 8, memChunkSize: 8 } },
            ffn: { className: 'NlContinuumMemorySystem', config: { variant: 'sequential', expansion: 2, levels: [{ period: 8, learningRate: 0.01 }, { period: 16, learningRate: 0.01 }] } },
          },
        },
      ],
    },
    training: { ...c.training, batchSize: 3, seqLength: 32, optimizer: 'adamw', learningRate: 0.01, weightDecay: 0.01 },
  };
}

describe('cli: nl train --workers (data parallelism over worker_threads)', () => {
  it('2 workers (this thread + 1 worker thread) == 1 worker: losses and weights after 2 steps; the worker replica is identical to rank 0', async () => {
    const cfg = tinyConfig();
    const ref = createRun(cfg);
    const r = createRun(cfg); // same seed: same initial weights
    const dp = await startRunWorkers(r, 2, process.env.NL_BACKEND ?? 'wasm');
    try {
      for (let step = 0; step < 2; step++) {
        const ids = tf.tidy(() => tf.randomUniform([3, 33], 0, 256, 'int32', step + 1));
        const x = ids.slice([0, 0], [3, 32]);
        const y = ids.slice([0, 1], [3, 32]);
        const want = ref.trainer.train(x, y);
        const got = await dp.train(x, y);
        tf.dispose([ids, x, y]);
        expect(got.slices).to.deep.equal([2, 1]);
        expect(got.loss).to.be.closeTo(want.loss, 1e-5 * want.loss);
      }
      const a = await ref.trainer.exportCheckpoint();
      const b = await r.trainer.exportCheckpoint();
      const bm = new Map(b.tensors.map((t) => [t.key, t.tensor]));
      const reps = await dp.replicaWeights();
      const rm = new Map(reps[0].map((w) => [w.key, w.data]));
      for (const { key, tensor } of a.tensors.filter((t) => t.key.startsWith('var/'))) {
        const mine = bm.get(key)!.dataSync();
        assertClose([...mine], [...tensor.dataSync()], { rtol: 1e-4, atol: 1e-6, name: key });
        expect([...rm.get(key)!], `worker replica ${key}`).to.deep.equal([...mine]);
      }
      tf.dispose([...a.owned, ...b.owned]);
    } finally {
      await dp.close();
      disposeRun(ref);
      disposeRun(r);
    }
  });
});

describe('cli: default --workers', () => {
  it('NL_WORKERS when set (validated), else all cores; 1 on the tensorflow backend', () => {
    const { defaultWorkers, availableCores } = require('./parallel') as typeof import('./parallel');
    expect(defaultWorkers('wasm', { NL_WORKERS: '3' })).to.equal(3);
    expect(defaultWorkers('wasm', {})).to.equal(availableCores());
    expect(defaultWorkers('tensorflow', {})).to.equal(1);
    expect(() => defaultWorkers('wasm', { NL_WORKERS: '0' })).to.throw('NL_WORKERS');
  });
});
