/**
 * Inner objectives of associative memories (paper Eq. 6: M* = argmin_M L~(M(K); V)).
 * Each loss gives its value and its analytic gradient w.r.t. the prediction, so memory updates are
 * written as ordinary tensor ops (no nested tf.grad: tfjs second derivatives are unreliable).
 *
 * Shapes: pred and target are [..., d]; value reduces the last axis -> [...]; grad is [..., d].
 */
import * as tf from '@tensorflow/tfjs';

export interface InnerLoss {
  /** Registered name, e.g. 'l2', 'dot', 'cosine'. */
  readonly name: string;
  /** Per-row loss, reducing the last axis: [..., d] -> [...]. */
  value(pred: tf.Tensor, target: tf.Tensor): tf.Tensor;
  /** dL/dpred, same shape as pred. */
  grad(pred: tf.Tensor, target: tf.Tensor): tf.Tensor;
}

/** L = 1/2 ||p - t||^2, dL/dp = p - t. GD on it with a linear memory is the delta rule. */
export const l2Loss: InnerLoss = {
  name: 'l2',
  value: (p, t) => tf.tidy(() => p.sub(t).square().sum(-1).mul(0.5)),
  grad: (p, t) => tf.tidy(() => p.sub(t)),
};

/** L = -<p, t>, dL/dp = -t. GD on it with a linear memory is the Hebbian rule (Eq. 18). */
export const dotLoss: InnerLoss = {
  name: 'dot',
  value: (p, t) => tf.tidy(() => p.mul(t).sum(-1).neg()),
  grad: (_p, t) => tf.tidy(() => t.neg()),
};

const COS_EPS = 1e-6;
/**
 * L = -cos(p, t) = -<p, t> / (|p| |t|),
 * dL/dp = -( t / (|p||t|) - <p,t> p / (|p|^3 |t|) ). GD on it with normalised keys gives Oja-like updates.
 */
export const cosineLoss: InnerLoss = {
  name: 'cosine',
  value: (p, t) =>
    tf.tidy(() => {
      const np = p.norm('euclidean', -1).add(COS_EPS);
      const nt = t.norm('euclidean', -1).add(COS_EPS);
      return p.mul(t).sum(-1).div(np.mul(nt)).neg();
    }),
  grad: (p, t) =>
    tf.tidy(() => {
      const np = p.norm('euclidean', -1, true).add(COS_EPS);
      const nt = t.norm('euclidean', -1, true).add(COS_EPS);
      const dot = p.mul(t).sum(-1, true);
      return t.div(np.mul(nt)).sub(p.mul(dot).div(np.pow(3).mul(nt))).neg();
    }),
};

export type BuiltinInnerLossName = 'l2' | 'dot' | 'cosine';
export const BUILTIN_INNER_LOSSES: Readonly<Record<BuiltinInnerLossName, InnerLoss>> = {
  l2: l2Loss,
  dot: dotLoss,
  cosine: cosineLoss,
};

/** The catalogue's inner-loss table (core/catalog.ts): losses contributed by plugins, name -> {loss, owner}. */
const contributed = new Map<string, { loss: InnerLoss; owner: string }>();

/**
 * Adds a plugin's inner loss to the catalogue (the registry does this for every manifest's innerLosses).
 * A name already bound to another loss (a built-in or another plugin's) is refused, naming both owners.
 */
export function registerInnerLoss(loss: InnerLoss, owner: string): void {
  const builtin = (BUILTIN_INNER_LOSSES as Record<string, InnerLoss>)[loss.name];
  const prev = builtin ? { loss: builtin, owner: 'core' } : contributed.get(loss.name);
  if (prev && prev.loss !== loss) throw new Error(`inner loss '${loss.name}' of '${owner}' is already provided by '${prev.owner}' (a different loss)`);
  if (!prev) contributed.set(loss.name, { loss, owner });
}

/** Every inner loss name in the catalogue -> its owner ('core' for the built-ins). */
export function innerLossOwners(): ReadonlyMap<string, string> {
  return new Map([...Object.keys(BUILTIN_INNER_LOSSES).map((n): [string, string] => [n, 'core']), ...[...contributed].map(([n, e]): [string, string] => [n, e.owner])]);
}

/**
 * Looks up an inner loss by name: the built-ins, then the catalogue (every loss a loaded plugin
 * contributed); `field` names the config field in the error. Layers and transforms resolve their
 * `innerLoss` config field here.
 */
export function getInnerLoss(name: string, field = 'innerLoss'): InnerLoss {
  const found = (BUILTIN_INNER_LOSSES as Record<string, InnerLoss>)[name] ?? contributed.get(name)?.loss;
  if (!found) {
    const allowed = [...new Set([...Object.keys(BUILTIN_INNER_LOSSES), ...contributed.keys()])];
    throw new Error(`${field}: unknown inner loss '${name}'; allowed: ${allowed.join(', ')} (others come from a loaded plugin's innerLosses)`);
  }
  return found;
}
