/** Per-token task losses for NestedTrainer: (y, targets) -> [B, T] (no reduction over tokens). */
import * as tf from '@tensorflow/tfjs';

/** 1/2 ||y_t - target_t||^2 per token: y, targets [B, T, D] -> [B, T]. */
export function tokenSquaredError(y: tf.Tensor, targets: tf.Tensor): tf.Tensor {
  return tf.tidy(() => y.sub(targets).square().sum(-1).mul(0.5));
}

/**
 * Softmax cross-entropy per token (next-token prediction): logits [B, T, V]; targets either int ids
 * [B, T] or one-hot / probabilities [B, T, V] -> [B, T] (nats).
 */
export function tokenCrossEntropy(logits: tf.Tensor, targets: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const v = logits.shape[logits.rank - 1];
    const p = targets.rank === logits.rank - 1 ? tf.oneHot(targets.toInt(), v) : targets; // [B, T, V]
    return tf.logSoftmax(logits).mul(p).sum(-1).neg();
  });
}
