import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { NlContinuumMemorySystem } from '../plugins/cms';
import { NestedModel, NestedTrainer, SCHEDULER_TOKENS, tokenSquaredError } from '../plugins/scheduler';
import { builtinPlugins, createDefaultRuntime } from './builtin';

describe('registry/builtin', () => {
  it('loads every first-party plugin and registers their classes', () => {
    const rt = createDefaultRuntime();
    expect(rt.plugins().map((p) => p.name)).to.deep.equal(builtinPlugins().map((p) => p.name));
    for (const cn of ['NlAssociativeMemory', 'NlLinearAttention', 'NlContinuumMemorySystem']) {
      expect(rt.layers().has(cn), cn).to.equal(true);
      expect(tf.serialization.SerializationMap.getMap().classNameMap[cn], cn).to.not.equal(undefined);
    }
    expect(rt.optimizers().get('NlTransformOptimizer')).to.equal('core');
  });

  it('plugin transforms are available by name (optimizers plugin) and usable as a tf.Optimizer', () => {
    const rt = createDefaultRuntime();
    const opt = rt.createOptimizer('NlTransformOptimizer', { transform: 'adamw', config: { learningRate: 0.1 } });
    const w = tf.variable(tf.tensor([1, -2]));
    opt.minimize(() => w.square().sum() as tf.Scalar);
    // AdamW's first step moves each weight by ~lr against the gradient's sign.
    const v = Array.from(w.dataSync());
    expect(v[0]).to.be.closeTo(0.9, 1e-3);
    expect(v[1]).to.be.closeTo(-1.9, 1e-3);
    expect(rt.transform('m3', { learningRate: 0.01 }).name).to.match(/m3/);
    tf.dispose([w]);
    opt.dispose();
  });

  it('the scheduler plugin offers a NestedTrainer factory through the container', () => {
    const rt = createDefaultRuntime();
    const factory = rt.get(SCHEDULER_TOKENS.NestedTrainerFactory);
    const cms = rt.createLayer<NlContinuumMemorySystem>('NlContinuumMemorySystem', {
      levels: [{ period: 2, learningRate: 0.1 }],
    });
    const trainer = factory(new NestedModel([cms]), { loss: tokenSquaredError, optimizer: tf.train.sgd(0.01) });
    expect(trainer).to.be.instanceOf(NestedTrainer);
  });
});
