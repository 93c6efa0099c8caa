import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose, expectNoLeakedTensors } from '../../../core/testing';
import { NlContinuumMemorySystem } from '../../cms';
import { NlLinearAttention } from '../../linear-attention';
import { tokenSquaredError } from '../losses';
import { NestedModel } from '../../../core';
import { NestedTrainer, type NestedTrainerOptions } from '../trainer';
import { DataParallelTrainer } from './coordinator';
import { loopbackPair } from './loopback';
import type { WireTensor } from './protocol';
import { serveReplica, type ReplicaHandle } from './replica';

const D = 4;
const TOL = { rtol: 1e-4, atol: 1e-6 };

/** Linear attention (per-sequence state) + Dense + a CMS whose levels fire in context at 2 and 4 tokens. */
function build(opts: Partial<NestedTrainerOptions> = {}): ReplicaHandle {
  const model = new NestedModel([
    { layer: new NlLinearAttention({ numHeads: 1, rule: 'delta' }), residual: true },
    tf.layers.dense({ units: D }),
    new NlContinuumMemorySystem({ levels: [{ period: 2, learningRate: 0.05 }, { period: 4, learningRate: 0.02 }], expansion: 2 }),
  ]);
  const optimizer = tf.train.adam(0.05);
  const trainer = new NestedTrainer(model, { loss: tokenSquaredError, optimizer, clipNorm: 0.5, ...opts });
  tf.tidy(() => model.build(tf.zeros([1, 1, D])));
  let done = false;
  const dispose = (): void => {
    if (done) return; // the replica side disposes its handle on close
    done = true;
    trainer.dispose();
    optimizer.dispose();
    model.stages.forEach((s) => s.layer.weights.forEach((w) => w.dispose()));
  };
  return { trainer, dispose };
}

async function weightsOf(tr: NestedTrainer): Promise<Map<string, Float32Array>> {
  const { tensors, owned } = await tr.exportCheckpoint();
  const m = new Map(tensors.filter((t) => !t.key.startsWith('state/') && !t.key.startsWith('outer/')).map((t) => [t.key, t.tensor.dataSync() as Float32Array]));
  tf.dispose(owned);
  return m;
}

function fromWireMap(ws: WireTensor[]): Map<string, Float32Array> {
  return new Map(ws.map((w) => [w.key, w.data as Float32Array]));
}

/** rank 0 + (ranks - 1) loopback replicas built with `build`, starting from `ref`'s weights. */
async function startLoopback(ref: NestedTrainer, ranks: number, opts: Partial<NestedTrainerOptions> = {}): Promise<{ dp: DataParallelTrainer; handles: ReplicaHandle[] }> {
  const handles: ReplicaHandle[] = [];
  const local = build(opts);
  handles.push(local);
  const { meta, tensors, owned } = await ref.exportCheckpoint();
  await local.trainer.importCheckpoint(meta, new Map(tensors.map((t) => [t.key, t.tensor])));
  tf.dispose(owned);
  const transports = Array.from({ length: ranks - 1 }, () => {
    const p = loopbackPair();
    void serveReplica(p.replica, () => {
      const h = build(opts);
      handles.push(h);
      return h;
    });
    return p.coordinator;
  });
  return { dp: await DataParallelTrainer.start(local.trainer, transports, null), handles };
}

function batch(seed: number, b: number, t: number): { x: tf.Tensor; y: tf.Tensor } {
  return { x: tf.randomNormal([b, t, D], 0, 1, 'float32', seed), y: tf.randomNormal([b, t, D], 0, 1, 'float32', seed + 100) };
}

describe('plugin scheduler: data parallelism (protocol over loopback transports)', () => {
  for (const ranks of [2, 3]) {
    it(`${ranks} ranks == 1 trainer on the full batch (uneven slices, CMS levels firing in context, clip, Adam): losses, weights, optimizer state`, async () => {
      const ref = build();
      const { dp, handles } = await startLoopback(ref.trainer, ranks);
      try {
        for (let step = 0; step < 3; step++) {
          const { x, y } = batch(step + 1, 5, 7); // B = 5: slices 3/2 or 2/2/1; T = 7: boundaries at 2, 4, 6 and a carried partial chunk
          const want = ref.trainer.train(x, y);
          const got = await dp.train(x, y);
          tf.dispose([x, y]);
          expect(got.outerStep).to.equal(true);
          expect(got.slices.reduce((a, v) => a + v, 0)).to.equal(5);
          expect(Number.isFinite(want.loss)).to.equal(true);
          expect(got.loss).to.be.closeTo(want.loss, 1e-5 * Math.abs(want.loss));
        }
        const w = await weightsOf(ref.trainer);
        const w0 = await weightsOf(dp.local);
        for (const [k, v] of w) assertClose([...w0.get(k)!], [...v], { ...TOL, name: `rank 0 ${k}` });
        const reps = await dp.replicaWeights();
        expect(reps).to.have.length(ranks - 1);
        for (const r of reps) {
          const m = fromWireMap(r);
          for (const [k, v] of w0) expect([...m.get(k)!], `replica ${k} identical to rank 0`).to.deep.equal([...v]);
        }
      } finally {
        await dp.close();
        handles.forEach((h) => h.dispose());
        ref.dispose();
      }
    });
  }

  it('gradient accumulation (2 pieces per step) and more ranks than sequences (an idle rank still steps)', async () => {
    const ref = build({ accumulationSteps: 2 });
    const { dp, handles } = await startLoopback(ref.trainer, 3, { accumulationSteps: 2 });
    try {
      const steps: boolean[] = [];
      for (let i = 0; i < 4; i++) {
        const { x, y } = batch(10 + i, 2, 5); // B = 2 < 3 ranks
        const want = ref.trainer.train(x, y);
        const got = await dp.train(x, y);
        tf.dispose([x, y]);
        expect(got.slices).to.deep.equal([1, 1, 0]);
        expect(got.outerStep).to.equal(want.outerStep);
        steps.push(got.outerStep);
        expect(got.loss).to.be.closeTo(want.loss, 1e-5 * Math.abs(want.loss));
      }
      expect(steps).to.deep.equal([false, true, false, true]);
      const w0 = await weightsOf(dp.local);
      const w = await weightsOf(ref.trainer);
      for (const [k, v] of w) assertClose([...w0.get(k)!], [...v], { ...TOL, name: k });
      for (const r of await dp.replicaWeights()) for (const [k, v] of fromWireMap(r)) expect([...v]).to.deep.equal([...w0.get(k)!]);
    } finally {
      await dp.close();
      handles.forEach((h) => h.dispose());
      ref.dispose();
    }
  });

  it("divergence guard: a NaN in one rank's slice refuses the batch on every rank ('skip': reported, nothing applied; 'throw': the rank's DivergenceError)", async () => {
    for (const mode of ['skip', 'throw'] as const) {
      const ref = build({ divergence: { onDivergence: mode } });
      const { dp, handles } = await startLoopback(ref.trainer, 2, { divergence: { onDivergence: mode } });
      try {
        const before = await weightsOf(dp.local);
        const { x, y } = batch(5, 4, 4);
        const bad = tf.tidy(() => tf.concat([x.slice(0, 3), tf.fill([1, 4, D], NaN)])); // the NaN sequence is in rank 1's slice
        let err: (Error & { info?: unknown }) | null = null;
        const r = await dp.train(bad, y).catch((e: Error) => {
          err = e;
          return null;
        });
        if (mode === 'skip') {
          expect(r?.outerStep).to.equal(false);
          expect(r?.skipped, 'skip info').to.have.property('kind');
        } else {
          expect(err, 'throws').to.not.equal(null);
          expect(err!.name).to.equal('DivergenceError');
          expect(err!.info).to.have.property('kind');
        }
        const after = await weightsOf(dp.local);
        for (const [k, v] of before) expect([...after.get(k)!], `${mode}: rank 0 ${k} unchanged`).to.deep.equal([...v]);
        const ok = await dp.train(x, y); // training goes on; replicas stay identical
        expect(ok.outerStep).to.equal(true);
        const w0 = await weightsOf(dp.local);
        for (const [k, v] of fromWireMap((await dp.replicaWeights())[0])) expect([...v], k).to.deep.equal([...w0.get(k)!]);
        tf.dispose([x, y, bad]);
      } finally {
        await dp.close();
        handles.forEach((h) => h.dispose());
        ref.dispose();
      }
    }
  });

  it('measure: kernel calls and peak bytes per rank; a failing slice refuses the piece on every rank; no leaked tensors', async () => {
    const ref = build();
    const { dp, handles } = await startLoopback(ref.trainer, 2);
    try {
      const { x, y } = batch(3, 2, 4);
      const r = await dp.train(x, y, { measure: true });
      expect(r.measurement).to.have.length(2);
      for (const m of r.measurement!) {
        expect(m.kernelCalls).to.be.greaterThan(50);
        expect(m.peakBytes).to.be.greaterThan(0);
      }
      await expectNoLeakedTensors(() => dp.train(x, y), { warmup: 1, iterations: 3, name: 'DataParallelTrainer.train' });
      const bad = tf.zeros([2, 4, D + 1]); // wrong feature width
      let err: Error | null = null;
      await dp.train(bad, y).catch((e: Error) => (err = e));
      expect(err, 'mismatched input throws').to.not.equal(null);
      // the refused piece was discarded on every rank: training goes on, replicas stay identical to rank 0
      const after = await dp.train(x, y);
      expect(after.outerStep).to.equal(true);
      const w0 = await weightsOf(dp.local);
      for (const [k, v] of fromWireMap((await dp.replicaWeights())[0])) expect([...v], k).to.deep.equal([...w0.get(k)!]);
      tf.dispose([x, y, bad]);
    } finally {
      await dp.close();
      handles.forEach((h) => h.dispose());
      ref.dispose();
    }
  });
});
