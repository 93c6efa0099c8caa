/**
 * nested-learning: the main entry point. Re-exports the core contracts, the registry, and each
 * first-party plugin as a namespace. Backend selection and the test kit have their own entry points
 * (nested-learning/core/backend, nested-learning/core/testing) because they load backends / mocha.
 */
export * from './core';
export { createRuntime, createDefaultRuntime, builtinPlugins, type Runtime, type RuntimeOptions } from './registry';
export * as associativeMemory from './plugins/associative-memory';
export * as linearAttention from './plugins/linear-attention';
export * as cms from './plugins/cms';
export * as scheduler from './plugins/scheduler';
export * as optimizers from './plugins/optimizers';
export * as selfModifyingTitans from './plugins/self-modifying-titans';
export * as titans from './plugins/titans';
export * as hope from './plugins/hope';
