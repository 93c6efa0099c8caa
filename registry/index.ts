/** nested-learning/registry: the composition root. */
export { createRuntime, type Runtime, type RuntimeOptions } from './runtime';
export { builtinPlugins, createDefaultRuntime } from './builtin';
