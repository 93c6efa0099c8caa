/** Test kit shared by every plugin (and third-party plugins): nested-learning/core/testing. */
export * from './assert-close';
export * from './leaks';
export * from './grad-check';
export * from './backends';
export * from './round-trip';
