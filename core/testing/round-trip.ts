import * as tf from '@tensorflow/tfjs';

/**
 * Saves `model` through an in-memory handler and loads it back (weights, topology and, when
 * `includeOptimizer`, optimizer state). The classes it uses must be registered.
 */
export async function roundTripInMemory(model: tf.LayersModel, opts: { includeOptimizer?: boolean } = {}): Promise<tf.LayersModel> {
  let saved: tf.io.ModelArtifacts | null = null;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    { includeOptimizer: opts.includeOptimizer ?? false },
  );
  if (!saved) throw new Error('roundTripInMemory: the save handler received no artifacts');
  return tf.loadLayersModel(tf.io.fromMemory(saved));
}
