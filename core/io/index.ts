/**
 * nested-learning core/io: Node file-system IO for tfjs models (a tfjs-node compatible file://
 * handler) and atomic file writes for checkpoints and metrics. Importing this module registers
 * nothing; the registry calls registerFileSystemRouter().
 */
export * from './atomic-write';
export * from './weights-manifest';
export * from './file-system';
export * from './read';
