/**
 * The composition root. createRuntime({plugins}) validates plugin manifests, registers their tfjs
 * classes for (de)serialisation, loads their Inversify modules into one container, and exposes a
 * small API to list plugins/capabilities and build layers and optimizers from plain configs.
 *
 * Data flows one way: config -> registry -> plugins' layers/optimizers -> model -> trainer.
 */
import 'reflect-metadata';
import * as tf from '@tensorflow/tfjs';
import { Container } from 'inversify';
import {
  BUILTIN_INNER_LOSSES,
  TOKENS,
  catalog,
  catalogInnerLoss,
  catalogLayerClass,
  catalogTransform,
  innerLossOwners,
  layerClassOwner,
  type InnerLoss,
  type LayerClass,
  type Logger,
  type OptimizerClass,
  type PluginCatalog,
  type PluginManifest,
  type Token,
  registerSerializable,
} from '../core';
import { createTransform, type GradientTransform } from '../core/transforms';
import { NlTransformOptimizer } from '../core/transforms/optimizer';
import { checkLayerConfigKeys } from '../core/validate';

/** Classes that core itself provides; registered by every runtime under the owner name 'core'. */
const CORE_OPTIMIZERS: readonly OptimizerClass[] = [NlTransformOptimizer as unknown as OptimizerClass];

export interface RuntimeOptions {
  /** Plugin manifests to load, in any order (dependencies are checked, not ordered). */
  plugins: readonly PluginManifest[];
  /** Where the runtime reports what it loaded. Default: silent. */
  logger?: Logger;
}

export interface Runtime {
  /** The single Inversify container (plugins' ContainerModules are loaded into it). */
  readonly container: Container;
  /** Loaded manifests, in load order. */
  plugins(): readonly PluginManifest[];
  /** capability -> names of the plugins that declare it. */
  capabilities(): Readonly<Record<string, readonly string[]>>;
  hasCapability(capability: string): boolean;
  /** Registered layer class names -> plugin name. */
  layers(): ReadonlyMap<string, string>;
  /** Registered optimizer class names -> plugin name. */
  optimizers(): ReadonlyMap<string, string>;
  /** Builds a layer from its registered class name and a plain (JSON) config. */
  createLayer<L extends tf.layers.Layer = tf.layers.Layer>(className: string, config?: object): L;
  /** Builds an optimizer from its registered class name and a plain (JSON) config. */
  createOptimizer<O extends tf.Optimizer = tf.Optimizer>(className: string, config?: object): O;
  /** Inner loss by name (core built-ins + plugin contributions). */
  innerLoss(name: string): InnerLoss;
  /** Gradient transform by registered name. */
  transform(name: string, config?: Record<string, unknown>): GradientTransform;
  /** tf.loadLayersModel with a check that every class in model.json is provided by a loaded plugin. */
  loadLayersModel(path: string | tf.io.IOHandler): Promise<tf.LayersModel>;
  /** Resolves a service by typed token. */
  get<T>(tok: Token<T>): T;
  /** Resolves every service bound to a multi-bound token (e.g. TOKENS.InnerLoss). */
  getAll<T>(tok: Token<T>): T[];
}

/**
 * Optimizer className -> {class, plugin} for every optimizer class any runtime in this process registered.
 * (Layer classes, inner losses and transforms live in the catalogue, core/catalog.ts.)
 */
const REGISTERED_OPTIMIZERS = new Map<string, { cls: unknown; plugin: string }>();

/** First-party plugins by the class names they provide, for "load plugin X" hints (filled lazily). */
const classHints = new Map<string, string>();
/** Adds className -> plugin-name hints (first-party plugins add theirs in registry/builtin.ts). */
export function addClassHints(hints: ReadonlyMap<string, string>): void {
  for (const [k, v] of hints) classHints.set(k, v);
}

function fail(msg: string): never {
  throw new Error(`createRuntime: ${msg}`);
}

function validateManifests(plugins: readonly PluginManifest[]): void {
  if (!Array.isArray(plugins)) fail('options.plugins must be an array of plugin manifests');
  const names = new Map<string, number>();
  plugins.forEach((p, i) => {
    if (!p || typeof p.name !== 'string') fail(`plugins[${i}] is not a plugin manifest (use definePlugin)`);
    if (names.has(p.name)) fail(`plugin name '${p.name}' is loaded twice (plugins[${names.get(p.name)}] and plugins[${i}])`);
    names.set(p.name, i);
  });
  for (const p of plugins) {
    for (const r of p.requires ?? []) {
      if (!names.has(r)) fail(`plugin '${p.name}' requires plugin '${r}', which is not loaded; add it to options.plugins`);
    }
  }
  // Class names must be unique across the loaded plugins and across earlier registrations.
  const seen = new Map<string, string>(CORE_OPTIMIZERS.map((c) => [c.className, 'core']));
  for (const p of plugins) {
    for (const cls of [...(p.layers ?? []), ...(p.optimizers ?? [])]) {
      const cn = cls.className;
      const other = seen.get(cn);
      if (other !== undefined) fail(`class name '${cn}' is provided by both plugin '${other}' and plugin '${p.name}'`);
      seen.set(cn, p.name);
      const prev = catalog.layerClass(cn) ? { cls: catalog.layerClass(cn), plugin: layerClassOwner(cn) } : REGISTERED_OPTIMIZERS.get(cn);
      if (prev && prev.cls !== cls) {
        fail(`class name '${cn}' of plugin '${p.name}' is already registered by plugin '${prev.plugin}' with a different class`);
      }
    }
  }
  const losses = new Map<string, string>(Object.keys(BUILTIN_INNER_LOSSES).map((n) => [n, 'core']));
  for (const p of plugins) {
    for (const l of p.innerLosses ?? []) {
      const other = losses.get(l.name);
      if (other !== undefined) fail(`inner loss '${l.name}' is provided by both '${other}' and plugin '${p.name}'`);
      const earlier = innerLossOwners().get(l.name);
      if (earlier !== undefined && catalog.innerLoss(l.name) !== l) {
        fail(`inner loss '${l.name}' of plugin '${p.name}' is already in the catalogue from '${earlier}' (a different loss)`);
      }
      losses.set(l.name, p.name);
    }
  }
}

/** Walks a Keras topology JSON and collects every class_name / className. */
function collectClassNames(node: unknown, out: Set<string>): void {
  if (Array.isArray(node)) {
    for (const n of node) collectClassNames(n, out);
  } else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    const cn = o.class_name ?? o.className;
    if (typeof cn === 'string' && ('config' in o)) out.add(cn);
    for (const v of Object.values(o)) collectClassNames(v, out);
  }
}

/** Registers a class with tfjs serialisation (usually already done by importing its plugin); refuses a clash. */
function registerTf(cls: { className: string }, owner: string): void {
  const st = registerSerializable(cls, owner);
  if (typeof st === 'object') {
    fail(`class name '${cls.className}' of plugin '${owner}' is already registered with tfjs by ${st.conflict.includes(' ') ? st.conflict : `plugin '${st.conflict}'`} (a different class)`);
  }
}

export function createRuntime(options: RuntimeOptions): Runtime {
  if (!options || typeof options !== 'object') fail('options must be an object with a plugins array');
  const plugins = options.plugins;
  validateManifests(plugins);
  const logger: Logger = options.logger ?? { info: () => {}, warn: () => {} };

  const layerOwners = new Map<string, string>();
  const optimizerOwners = new Map<string, string>();
  const layerClasses = new Map<string, LayerClass>();
  const optimizerClasses = new Map<string, OptimizerClass>();
  const extraLosses = new Map<string, InnerLoss>();
  const caps: Record<string, string[]> = {};

  for (const cls of CORE_OPTIMIZERS) {
    registerTf(cls, 'core');
    REGISTERED_OPTIMIZERS.set(cls.className, { cls, plugin: 'core' });
    optimizerOwners.set(cls.className, 'core');
    optimizerClasses.set(cls.className, cls);
  }
  for (const p of plugins) {
    for (const cls of p.layers ?? []) {
      registerTf(cls, p.name);
      catalogLayerClass(cls, p.name);
      layerOwners.set(cls.className, p.name);
      layerClasses.set(cls.className, cls);
    }
    for (const cls of p.optimizers ?? []) {
      registerTf(cls, p.name);
      REGISTERED_OPTIMIZERS.set(cls.className, { cls, plugin: p.name });
      optimizerOwners.set(cls.className, p.name);
      optimizerClasses.set(cls.className, cls);
    }
    for (const l of p.innerLosses ?? []) {
      extraLosses.set(l.name, l);
      catalogInnerLoss(l, p.name); // layers resolve `innerLoss: '<name>'` through the catalogue
    }
    for (const [name, factory] of Object.entries(p.transforms ?? {})) catalogTransform(name, factory, p.name);
    for (const c of p.capabilities ?? []) (caps[c] ??= []).push(p.name);
  }

  const container = new Container();
  const innerLoss = (name: string): InnerLoss => {
    const found = (BUILTIN_INNER_LOSSES as Record<string, InnerLoss>)[name] ?? extraLosses.get(name);
    if (!found) {
      throw new Error(`innerLoss: unknown inner loss '${name}'; available: ${[...Object.keys(BUILTIN_INNER_LOSSES), ...extraLosses.keys()].join(', ')}`);
    }
    return found;
  };
  const pluginCatalog: PluginCatalog = {
    plugins: () => plugins,
    hasCapability: (c) => (caps[c]?.length ?? 0) > 0,
    innerLoss,
    layerClass: (cn) => layerClasses.get(cn),
  };
  container.bind(TOKENS.Logger).toConstantValue(logger);
  container.bind(TOKENS.PluginCatalog).toConstantValue(pluginCatalog);
  container.bind(TOKENS.Catalog).toConstantValue(catalog);
  for (const l of [...Object.values(BUILTIN_INNER_LOSSES), ...extraLosses.values()]) {
    container.bind(TOKENS.InnerLoss).toConstantValue(l);
  }
  for (const p of plugins) {
    if (p.module) {
      try {
        const r = container.load(p.module) as unknown;
        if (r && typeof (r as Promise<void>).then === 'function') {
          throw new Error('its ContainerModule load function is async; use a synchronous module');
        }
      } catch (e) {
        fail(`plugin '${p.name}': loading its ContainerModule failed: ${(e as Error).message}`);
      }
    }
  }
  logger.info(`[nested-learning] loaded plugins: ${plugins.map((p) => `${p.name}@${p.version}`).join(', ') || 'none'}`);

  const lookupLayer = (className: string): LayerClass => {
    const cls = layerClasses.get(className);
    if (cls) return cls;
    const hint = classHints.get(className);
    throw new Error(
      `createLayer: no loaded plugin provides layer class '${className}'` +
        (hint ? `; it is provided by plugin '${hint}': add it to createRuntime({plugins})` : '') +
        `. Loaded layer classes: ${[...layerClasses.keys()].join(', ') || 'none'}`,
    );
  };

  const runtime: Runtime = {
    container,
    plugins: () => plugins,
    capabilities: () => caps,
    hasCapability: pluginCatalog.hasCapability,
    layers: () => layerOwners,
    optimizers: () => optimizerOwners,
    createLayer<L extends tf.layers.Layer>(className: string, config: object = {}): L {
      const cls = lookupLayer(className);
      if (config === null || typeof config !== 'object' || Array.isArray(config)) {
        throw new Error(`createLayer(${className}): config must be a plain object`);
      }
      const layer = new cls({ ...config }) as L;
      // unknown keys (typos) are refused for every class: the given config must be what the layer reports back
      checkLayerConfigKeys(layer, config, `createLayer(${className}).config`);
      return layer;
    },
    createOptimizer<O extends tf.Optimizer>(className: string, config: object = {}): O {
      const cls = optimizerClasses.get(className);
      if (!cls) {
        const hint = classHints.get(className);
        throw new Error(
          `createOptimizer: no loaded plugin provides optimizer class '${className}'` +
            (hint ? `; it is provided by plugin '${hint}'` : '') +
            `. Loaded optimizer classes: ${[...optimizerClasses.keys()].join(', ') || 'none'}`,
        );
      }
      return cls.fromConfig(cls, { ...config }) as O;
    },
    innerLoss,
    transform: (name, config = {}) => createTransform(name, config),
    async loadLayersModel(path: string | tf.io.IOHandler): Promise<tf.LayersModel> {
      // Read the artifacts once through tfjs's IO routers (file:// needs nested-learning/node in Node;
      // http(s)://, indexeddb://, localstorage:// work in a page), check every class name, then build.
      let handler: tf.io.IOHandler;
      const where = typeof path === 'string' ? path : 'the IO handler';
      if (typeof path === 'string') {
        const handlers = tf.io.getLoadHandlers(path);
        if (handlers.length === 0) {
          if (/^https?:\/\//.test(path)) return tf.loadLayersModel(path);
          throw new Error(
            `loadLayersModel: no IO handler for '${path}'` +
              (path.startsWith('file://') ? "; in Node, import 'nested-learning/node' (it registers the file:// handler)" : ''),
          );
        }
        handler = handlers[0];
      } else {
        handler = path;
      }
      if (typeof handler.load !== 'function') throw new Error(`loadLayersModel: ${where} cannot load`);
      const artifacts = await handler.load();
      const names = new Set<string>();
      collectClassNames(artifacts.modelTopology, names);
      const known = tf.serialization.SerializationMap.getMap().classNameMap;
      for (const cn of names) {
        if (cn in known) continue;
        // Non-layer config entries (initializers, etc.) are registered the same way, so any
        // unknown name is a class no loaded code provides.
        const hint = classHints.get(cn);
        throw new Error(
          `${where}: class '${cn}' is not registered` +
            (hint ? `; it is provided by plugin '${hint}': import it or add it to createRuntime({plugins})` : cn.startsWith('Nl')
              ? '; load the plugin that provides it (import it, or add it to createRuntime({plugins}))'
              : ''),
        );
      }
      return tf.loadLayersModel(tf.io.fromMemory(artifacts));
    },
    get<T>(tok: Token<T>): T {
      return container.get<T>(tok);
    },
    getAll<T>(tok: Token<T>): T[] {
      return container.getAll<T>(tok) as T[];
    },
  };
  return runtime;
}
