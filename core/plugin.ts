/**
 * The plugin manifest: a plugin is data (its tfjs classes, inner losses, capabilities) plus an
 * optional Inversify ContainerModule for services. The registry validates and loads manifests.
 */
import type * as tf from '@tensorflow/tfjs';
import type { ContainerModule } from 'inversify';
import type { InnerLoss } from './inner-loss';
import type { GradientTransformFactory } from './transforms/transform';
import { registerSerializable } from './serialization';

/** A tfjs-layers Layer subclass with its registered class name (must start with 'Nl'). */
export type LayerClass = (new (config: any) => tf.layers.Layer) & { className: string };
/** A tf.Optimizer subclass with its registered class name (must start with 'Nl'). */
export type OptimizerClass = (new (...args: any[]) => tf.Optimizer) & {
  className: string;
  fromConfig: (cls: any, config: any) => tf.Optimizer;
};

export interface PluginManifest {
  /** Unique, kebab-case, e.g. 'linear-attention'. */
  readonly name: string;
  /** Semver of the plugin. */
  readonly version: string;
  readonly description?: string;
  /** Names of plugins that must be loaded too (their classes are available to this one). */
  readonly requires?: readonly string[];
  /** tfjs Layer classes registered for (de)serialisation; class names start with 'Nl'. */
  readonly layers?: readonly LayerClass[];
  /** tf.Optimizer classes registered for (de)serialisation; class names start with 'Nl'. */
  readonly optimizers?: readonly OptimizerClass[];
  /** Inner objectives contributed to the runtime (by unique name). */
  readonly innerLosses?: readonly InnerLoss[];
  /** Gradient-transform factories by name (used by level specs and optimizer configs). */
  readonly transforms?: Readonly<Record<string, GradientTransformFactory>>;
  /** Free-form capability tags, e.g. 'sequence-mixer', 'associative-memory', 'optimizer'. */
  readonly capabilities?: readonly string[];
  /** Optional services, loaded into the runtime's single container. */
  readonly module?: ContainerModule;
}

const NAME_RE = /^[a-z][a-z0-9]*(-[a-z0-9]+)*(\/[a-z][a-z0-9]*(-[a-z0-9]+)*)?$/;
const SEMVER_RE = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/;
export const CLASS_PREFIX = 'Nl';

/**
 * Checks a manifest's own shape (names, versions, class names), registers its layer and optimizer
 * classes with tfjs serialisation (so importing a plugin is enough for tf.loadLayersModel; idempotent,
 * and a name already held by a different class is left alone) and freezes it. Cross-plugin checks
 * (unique names, `requires`, duplicate class names) happen in the registry.
 */
export function definePlugin<M extends PluginManifest>(manifest: M): Readonly<M> {
  const where = `plugin '${(manifest as PluginManifest)?.name ?? '?'}'`;
  if (typeof manifest !== 'object' || manifest === null) throw new Error('definePlugin: manifest must be an object');
  if (typeof manifest.name !== 'string' || !NAME_RE.test(manifest.name)) {
    throw new Error(`${where}: name must be kebab-case (optionally 'scope/name'), got ${JSON.stringify(manifest.name)}`);
  }
  if (typeof manifest.version !== 'string' || !SEMVER_RE.test(manifest.version)) {
    throw new Error(`${where}: version must be semver (e.g. 1.0.0), got ${JSON.stringify(manifest.version)}`);
  }
  for (const r of manifest.requires ?? []) {
    if (typeof r !== 'string' || !NAME_RE.test(r)) throw new Error(`${where}: requires entry ${JSON.stringify(r)} is not a plugin name`);
    if (r === manifest.name) throw new Error(`${where}: a plugin cannot require itself`);
  }
  const checkClass = (kind: 'layers' | 'optimizers', cls: { className?: unknown; name?: string }, i: number): void => {
    const cn = cls?.className;
    if (typeof cn !== 'string' || cn.length === 0) {
      throw new Error(`${where}: ${kind}[${i}] (${cls?.name ?? '?'}) has no static className`);
    }
    if (!cn.startsWith(CLASS_PREFIX)) {
      throw new Error(`${where}: ${kind}[${i}] className '${cn}' must start with '${CLASS_PREFIX}' (tfjs keys deserialisation by bare class name)`);
    }
  };
  (manifest.layers ?? []).forEach((c, i) => checkClass('layers', c, i));
  (manifest.optimizers ?? []).forEach((c, i) => checkClass('optimizers', c, i));
  const lossNames = new Set<string>();
  (manifest.innerLosses ?? []).forEach((l, i) => {
    if (!l || typeof l.name !== 'string' || typeof l.value !== 'function' || typeof l.grad !== 'function') {
      throw new Error(`${where}: innerLosses[${i}] must have name, value() and grad()`);
    }
    if (lossNames.has(l.name)) throw new Error(`${where}: innerLosses[${i}] duplicate name '${l.name}'`);
    lossNames.add(l.name);
  });
  // tfjs convention: importing the module that defines a class registers it (tf.serialization.registerClass).
  // A clash is not thrown here (a module import should not fail); createRuntime refuses it with both owners.
  for (const cls of [...(manifest.layers ?? []), ...(manifest.optimizers ?? [])]) registerSerializable(cls, manifest.name);
  return Object.freeze({ ...manifest });
}
