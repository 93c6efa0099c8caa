import 'reflect-metadata';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ContainerModule, inject, injectable } from 'inversify';
import { definePlugin, TOKENS, token, type Logger, type PluginCatalog } from '../core';
import { addClassHints, createRuntime } from './runtime';

class NlProbeA extends tf.layers.Layer {
  static className = 'NlProbeA';
  override call(x: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => (x as tf.Tensor).mul(2));
  }
}
class NlProbeB extends tf.layers.Layer {
  static className = 'NlProbeA'; // deliberately clashes with NlProbeA
}

interface Greeter {
  greet(): string;
}
const GREETER = token<Greeter>('test/Greeter');

@injectable()
class CatalogGreeter implements Greeter {
  constructor(
    @inject(TOKENS.PluginCatalog) private readonly catalog: PluginCatalog,
    @inject(TOKENS.Logger) private readonly logger: Logger,
  ) {}
  greet(): string {
    this.logger.info('greet');
    return this.catalog.plugins().map((p) => p.name).join('+');
  }
}

describe('registry/createRuntime', () => {
  const a = definePlugin({ name: 'probe-a', version: '1.0.0', layers: [NlProbeA], capabilities: ['probe', 'x'] });

  it('lists plugins, capabilities and layers, and builds a layer from a plain config', () => {
    const rt = createRuntime({ plugins: [a] });
    expect(rt.plugins().map((p) => p.name)).to.deep.equal(['probe-a']);
    expect(rt.capabilities()).to.deep.equal({ probe: ['probe-a'], x: ['probe-a'] });
    expect(rt.hasCapability('probe')).to.equal(true);
    expect(rt.hasCapability('nope')).to.equal(false);
    const layer = rt.createLayer('NlProbeA', { name: 'p1' });
    expect(layer).to.be.instanceOf(NlProbeA);
    // a key the class does not report in getConfig() (a typo) is refused, naming it (issue 16)
    expect(() => rt.createLayer('NlProbeA', { name: 'p2', factr: 2 })).to.throw(/^createLayer\(NlProbeA\)\.config\.factr: unknown key for NlProbeA/);
    const y = layer.apply(tf.tensor([1, 2])) as tf.Tensor;
    expect(Array.from(y.dataSync())).to.deep.equal([2, 4]);
    y.dispose();
    // tfjs can now deserialise it by class name.
    expect(tf.serialization.SerializationMap.getMap().classNameMap.NlProbeA[0]).to.equal(NlProbeA);
  });

  it('refuses duplicate plugin names, missing requirements and clashing class names', () => {
    expect(() => createRuntime({ plugins: [a, a] })).to.throw(/plugin name 'probe-a' is loaded twice/);
    const needs = definePlugin({ name: 'needs-c', version: '0.1.0', requires: ['probe-c'] });
    expect(() => createRuntime({ plugins: [a, needs] })).to.throw(/plugin 'needs-c' requires plugin 'probe-c', which is not loaded/);
    const b = definePlugin({ name: 'probe-b', version: '1.0.0', layers: [NlProbeB] });
    expect(() => createRuntime({ plugins: [a, b] })).to.throw(/class name 'NlProbeA' is provided by both plugin 'probe-a' and plugin 'probe-b'/);
    // A class name registered earlier by another plugin with a different class is refused too.
    createRuntime({ plugins: [a] });
    expect(() => createRuntime({ plugins: [b] })).to.throw(/'NlProbeA' of plugin 'probe-b' is already registered by plugin 'probe-a'/);
  });

  it('definePlugin enforces names, versions and the Nl class prefix', () => {
    class Bad extends tf.layers.Layer {
      static className = 'Dense2';
    }
    expect(() => definePlugin({ name: 'Bad Name', version: '1.0.0' })).to.throw(/kebab-case/);
    expect(() => definePlugin({ name: 'ok', version: '1' })).to.throw(/semver/);
    expect(() => definePlugin({ name: 'ok', version: '1.0.0', layers: [Bad] })).to.throw(/'Dense2' must start with 'Nl'/);
    expect(() => definePlugin({ name: 'ok', version: '1.0.0', requires: ['ok'] })).to.throw(/cannot require itself/);
  });

  it('loads plugin ContainerModules into one container with typed tokens', () => {
    const logged: string[] = [];
    const withModule = definePlugin({
      name: 'greeter',
      version: '0.0.1',
      module: new ContainerModule(({ bind }) => {
        bind(GREETER).to(CatalogGreeter).inSingletonScope();
      }),
    });
    const rt = createRuntime({ plugins: [a, withModule], logger: { info: (m) => logged.push(m), warn: () => {} } });
    expect(rt.get(GREETER).greet()).to.equal('probe-a+greeter');
    expect(logged.some((m) => /loaded plugins: probe-a@1.0.0, greeter@0.0.1/.test(m))).to.equal(true);
    expect(rt.getAll(TOKENS.InnerLoss).map((l) => l.name)).to.deep.equal(['l2', 'dot', 'cosine']);
  });

  it('looks up inner losses and names the unknown ones', () => {
    const rt = createRuntime({ plugins: [] });
    expect(rt.innerLoss('l2').name).to.equal('l2');
    expect(() => rt.innerLoss('nope')).to.throw(/unknown inner loss 'nope'; available: l2, dot, cosine/);
  });

  it('names the plugin to load when a known first-party class is missing', () => {
    addClassHints(new Map([['NlSomethingElse', 'some-plugin']]));
    const rt = createRuntime({ plugins: [a] });
    expect(() => rt.createLayer('NlSomethingElse', {})).to.throw(/provided by plugin 'some-plugin'/);
    expect(() => rt.createLayer('NlMissing', {})).to.throw(/no loaded plugin provides layer class 'NlMissing'.*Loaded layer classes: NlProbeA/);
  });
});
