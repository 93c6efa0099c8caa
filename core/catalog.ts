/**
 * The catalogue: every part a config names is resolved here. Three tables:
 *   - layer classes (a sub-layer in a block config, `{className, config}`),
 *   - inner losses (`innerLoss: 'huber'` in a layer or optimizer config),
 *   - gradient transforms (`{transform, config}`; the table is core/transforms/registry.ts).
 *
 * The registry fills it: createRuntime({plugins}) adds each manifest's layer classes, inner losses and
 * transforms (owner = the plugin's name) and binds this catalogue in its container (TOKENS.Catalog), so a
 * third-party plugin's parts resolve by name wherever a first-party name does. Layers read it in their
 * constructors, because tfjs deserialisation builds them with `new cls(config)`, where no container is in
 * reach; nothing reads it inside call() or a training step. Names are process-wide, as tfjs's own class
 * table is: a name bound to one part is never rebound to another (the registry reports both owners).
 * Core's built-in inner losses (l2, dot, cosine) are always present.
 */
import { getInnerLoss, innerLossOwners, registerInnerLoss, type InnerLoss } from './inner-loss';
import type { LayerClass } from './plugin';
import { getTransformFactory, registerTransformFactory, transformNames } from './transforms/registry';
import type { GradientTransformFactory } from './transforms/transform';

interface Entry<T> {
  part: T;
  owner: string;
}

const layerTable = new Map<string, Entry<LayerClass>>();

/** The read side, bound in a runtime's container as TOKENS.Catalog. */
export interface Catalog {
  layerClass(className: string): LayerClass | undefined;
  innerLoss(name: string): InnerLoss | undefined;
  transform(name: string): GradientTransformFactory | undefined;
  /** name -> owner (plugin name, or 'core'). */
  layerClasses(): ReadonlyMap<string, string>;
  innerLosses(): ReadonlyMap<string, string>;
  transforms(): readonly string[];
}

export const catalog: Catalog = {
  layerClass: (cn) => layerTable.get(cn)?.part,
  innerLoss: (n) => (innerLossOwners().has(n) ? getInnerLoss(n) : undefined),
  transform: (n) => getTransformFactory(n),
  layerClasses: () => new Map([...layerTable].map(([k, e]) => [k, e.owner])),
  innerLosses: () => innerLossOwners(),
  transforms: () => transformNames(),
};

/** Adds a layer class under its className (the registry calls this for every manifest's layers). */
export function catalogLayerClass(cls: LayerClass, owner: string): void {
  const prev = layerTable.get(cls.className);
  if (prev && prev.part !== cls) {
    throw new Error(`layer class '${cls.className}' of '${owner}' is already provided by '${prev.owner}' (a different class)`);
  }
  if (!prev) layerTable.set(cls.className, { part: cls, owner });
}

/** Adds an inner loss under its name (the registry calls this for every manifest's innerLosses). */
export const catalogInnerLoss = registerInnerLoss;

/** Adds a gradient-transform factory (the registry calls this for every manifest's transforms). */
export function catalogTransform(name: string, factory: GradientTransformFactory, owner: string): void {
  registerTransformFactory(name, factory, owner);
}

/** Owner of a layer class name already in the catalogue, if any. */
export function layerClassOwner(className: string): string | undefined {
  return layerTable.get(className)?.owner;
}
