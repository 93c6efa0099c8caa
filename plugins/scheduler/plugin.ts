/** Manifest of the scheduler plugin: the nested trainer, offered to the container as a factory service. */
import { ContainerModule } from 'inversify';
import { definePlugin, token } from '../../core';
import type { NestedModel } from '../../core';
import { NestedTrainer, type NestedTrainerOptions } from './trainer';

/** Builds a NestedTrainer for a model; bound in the runtime's container by this plugin. */
export type NestedTrainerFactory = (model: NestedModel, options: NestedTrainerOptions) => NestedTrainer;
export const SCHEDULER_TOKENS = {
  NestedTrainerFactory: token<NestedTrainerFactory>('scheduler/NestedTrainerFactory'),
} as const;

export const schedulerPlugin = definePlugin({
  name: 'scheduler',
  version: '0.1.0',
  description:
    'NestedTrainer: segments contexts at level boundaries, one backward pass per segment for outer parameters ' +
    'and in-context fast weights (Eq. 71), memorize/resetMemory, checkpoints with level clocks.',
  capabilities: ['trainer', 'scheduler'],
  module: new ContainerModule(({ bind }) => {
    const factory: NestedTrainerFactory = (model, options) => new NestedTrainer(model, options);
    bind(SCHEDULER_TOKENS.NestedTrainerFactory).toConstantValue(factory);
  }),
});

export default schedulerPlugin;
