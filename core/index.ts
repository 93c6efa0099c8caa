/**
 * nested-learning/core: contracts and shared machinery. Imports tfjs only (never a backend, never
 * a plugin). Backend selection lives in nested-learning/core/backend (apps and tests only).
 */
export * from './level';
export * from './scheduler';
export * from './inner-loss';
export * from './memory-state';
export * from './plugin';
export * from './tokens';
export * from './ops';
export * from './transforms';
export * from './stateful';
export * from './profiling';
export * from './validate';
export * from './random';
export * from './nested-model';
export * from './catalog';
export * from './serialization';
export { crc32 } from './crc32';
