/** Gradient transforms (optax-style optimizers), their registry and the tf.Optimizer adapter. */
export * from './transform';
export * from './sgd';
export * from './momentum';
export * from './combinators';
export * from './schedules';
export * from './registry';
export * from './optimizer';
export * from './validate';
