/**
 * Typed Inversify service identifiers: the one binding map of the project. Plugins bind their
 * services to these (or to their own typed tokens) in their ContainerModule; nothing resolves
 * services by bare strings.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Catalog } from './catalog';
import type { InnerLoss } from './inner-loss';
import type { PluginManifest } from './plugin';

/** A typed identifier: a symbol that remembers the type of the service bound to it. */
export type Token<T> = symbol & { readonly __service?: T };
export function token<T>(description: string): Token<T> {
  return Symbol.for(`nested-learning:${description}`) as Token<T>;
}

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

/** Read-only view of the loaded plugins, bound by the registry. */
export interface PluginCatalog {
  plugins(): readonly PluginManifest[];
  hasCapability(capability: string): boolean;
  innerLoss(name: string): InnerLoss;
  layerClass(className: string): (new (config: object) => tf.layers.Layer) | undefined;
}

export const TOKENS = {
  Logger: token<Logger>('Logger'),
  PluginCatalog: token<PluginCatalog>('PluginCatalog'),
  /** The catalogue every config name resolves through (layer classes, inner losses, transforms; core/catalog.ts). */
  Catalog: token<Catalog>('Catalog'),
  /** Every InnerLoss contributed by a plugin (multi-binding). */
  InnerLoss: token<InnerLoss>('InnerLoss'),
} as const;
