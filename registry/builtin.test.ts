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
