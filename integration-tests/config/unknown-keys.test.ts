/**
 * Unknown keys are refused, with the field path, in every layer config and every optimizer config of the
 * first-party plugins, by whichever road the config reaches the class: the constructor (`new cls(config)`,
 * which tfjs deserialisation also calls), fromConfig (tfjs deserialisation), the registry's createLayer; for
 * optimizers every gradient transform in the catalogue (the optimizers plugin's and core's) and
 * NlTransformOptimizer (constructor and fromConfig, the tfjs road).
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { catalog, NlTransformOptimizer } from '../../core';
import { builtinPlugins, createDefaultRuntime } from '../../registry';

/** Smallest valid config of the classes that need one ({} otherwise). A new class without one fails below. */
const MINIMAL: Record<string, Record<string, unknown>> = {
  NlResidualBlock: { mixer: { className: 'NlLinearAttention', config: {} }, ffn: { className: 'NlGatedMlp', config: {} } },
  NlTokenEmbedding: { vocabSize: 8, dModel: 4 },
  NlLmHead: { vocabSize: 8, dModel: 4 },
};
const MINIMAL_TRANSFORM: Record<string, Record<string, unknown>> = {
  scaleBySchedule: { schedule: { kind: 'constant', value: 1 } },
  chain: { transforms: [{ transform: 'sgd' }] },
  everyK: { k: 2, transform: { transform: 'sgd' } },
  partition: { rules: [], default: 'a', transforms: { a: { transform: 'sgd' } } },
};
const TYPO = { chunkSzie: 4 };

describe('registry: unknown config keys are refused with the field path, for every first-party class', () => {
  // In a hook, not at load time: the runtime fills the process-wide catalogue, which tests of other files that
  // run earlier (core's transform registry) expect without the plugins' transforms.
  let rt: ReturnType<typeof createDefaultRuntime>;
  before(() => {
    rt = createDefaultRuntime();
  });
  const classes = builtinPlugins().flatMap((p) => (p.layers ?? []).map((cls) => ({ plugin: p.name, cls })));

  it('the plugins provide layer classes to check (and every class builds from its minimal config)', () => {
    expect(classes.length).to.be.greaterThan(10);
    for (const { cls } of classes) {
      const layer = new cls({ ...(MINIMAL[cls.className] ?? {}) });
      expect(layer).to.be.instanceOf(tf.layers.Layer);
    }
  });

  for (const { plugin, cls } of builtinPlugins().flatMap((p) => (p.layers ?? []).map((c) => ({ plugin: p.name, cls: c })))) {
    it(`${plugin}: ${cls.className} refuses 'chunkSzie' (constructor, fromConfig, createLayer)`, () => {
      const cn = cls.className;
      const config = { ...(MINIMAL[cn] ?? {}), ...TYPO };
      const path = new RegExp(`${cn}\\.chunkSzie: unknown (key|option)`);
      expect(() => new cls(config), 'constructor').to.throw(path);
      expect(() => (cls as unknown as { fromConfig(c: unknown, cfg: unknown): unknown }).fromConfig(cls, config), 'fromConfig (tfjs deserialisation)').to.throw(path);
      expect(() => rt.createLayer(cn, config), 'createLayer').to.throw(/chunkSzie: unknown/);
      // the base layer args and tfjs' customObjects are not typos
      expect(() => new cls({ ...(MINIMAL[cn] ?? {}), name: `ok_${cn}`, trainable: true, dtype: 'float32' })).to.not.throw();
    });
  }

  it('every gradient transform in the catalogue (optimizers plugin and core) refuses a typo naming <name>.chunkSzie', () => {
    const names = catalog.transforms();
    for (const n of ['adamw', 'm3', 'dmgd', 'muon', 'dgd', 'sgd', 'momentum', 'chain']) expect(names).to.include(n);
    for (const n of names) {
      expect(() => catalog.transform(n)!({ ...(MINIMAL_TRANSFORM[n] ?? {}), ...TYPO }, n), n).to.throw(new RegExp(`^${n}\\.chunkSzie: unknown (key|option)`));
      expect(() => rt.transform(n, { ...(MINIMAL_TRANSFORM[n] ?? {}), ...TYPO }), n).to.throw(/chunkSzie: unknown/);
    }
  });

  it('NlTransformOptimizer refuses a typo beside transform/config: constructor and fromConfig (tfjs deserialisation)', () => {
    expect(() => new NlTransformOptimizer({ transform: 'sgd', config: { learningRate: 0.1 }, ...TYPO } as never)).to.throw(/NlTransformOptimizer\.chunkSzie: unknown/);
    expect(() => NlTransformOptimizer.fromConfig(NlTransformOptimizer, { transform: 'sgd', config: { learningRate: 0.1 }, ...TYPO })).to.throw(/NlTransformOptimizer\.chunkSzie: unknown/);
    expect(() => rt.createOptimizer('NlTransformOptimizer', { transform: 'sgd', config: { learningRate: 0.1 }, ...TYPO })).to.throw(/NlTransformOptimizer\.chunkSzie: unknown/);
    expect(() => NlTransformOptimizer.fromConfig(NlTransformOptimizer, { transform: 'sgd', config: { learningRate: 0.1, lerningRate: 1 } })).to.throw(/NlTransformOptimizer\.config\.lerningRate: unknown/);
    const ok = NlTransformOptimizer.fromConfig(NlTransformOptimizer, { transform: 'sgd', config: { learningRate: 0.1 }, customObjects: {} });
    expect(ok).to.be.instanceOf(NlTransformOptimizer);
    (ok as NlTransformOptimizer).dispose();
  });
});
