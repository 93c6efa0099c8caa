/**
 * The outer (meta-parameter) side of NestedTrainer: the accumulation window of outer gradients (sums over
 * the pieces since the last outer step, by tf.Variable name), the divergence guard on their global norm,
 * the global-norm clip and the optimizer step (paper Eqs. 19-20: the slowest level).
 * NestedTrainer orchestrates; the segmentation of a piece is core/scheduler.ts segmentCuts.
 */
import * as tf from '@tensorflow/tfjs';

/** What the guard found about the mean outer gradient (the trainer adds the step number). */
export interface GradientFinding {
  kind: 'non-finite gradient' | 'exploding gradient';
  /** The global norm. */
  value: number;
  /** "the gradient of '<weight>' in layer '<layer>' (stage i)", the first non-finite or the largest. */
  where: string;
}

export class OuterAccumulator {
  /** Outer gradients summed over the pieces of the current window (by variable name). */
  pending: Map<string, tf.Tensor> = new Map();
  /** Pieces in the current window. */
  pieces = 0;
  /** Outer optimizer steps taken so far. */
  steps = 0;

  /** Adds `g` to the window's sum for `name` (inside tf.tidy: the sum is kept, `g` is not). */
  add(name: string, g: tf.Tensor): void {
    const prev = this.pending.get(name);
    this.pending.set(name, tf.keep(prev ? prev.add(g) : g.clone()));
    if (prev) prev.dispose();
  }

  /** Drops the window (its gradients and piece count). */
  clear(): void {
    tf.dispose([...this.pending.values()]);
    this.pending.clear();
    this.pieces = 0;
  }

  /**
   * Averages the window over its pieces, checks the global norm against `maxGradNorm` (and finiteness), clips
   * it to `clipNorm` and applies it with `optimizer`. Returns null when applied (window cleared, steps + 1),
   * else what the guard found, with the window untouched (the caller refuses the step). `labels`: readable
   * names by variable name, asked for only when the guard fires.
   */
  step(optimizer: tf.Optimizer, clipNorm: number | undefined, maxGradNorm: number, labels: () => Map<string, string>): GradientFinding | null {
    const k = this.pieces;
    const names = [...this.pending.keys()];
    const normT = tf.tidy(() => tf.sqrt(tf.addN(names.length ? names.map((n) => this.pending.get(n)!.div(k).square().sum()) : [tf.scalar(0)])));
    const norm = normT.dataSync()[0]; // one sync per outer step: the guard must know before applying
    normT.dispose();
    if (!Number.isFinite(norm) || norm > maxGradNorm) return this.finding(names, k, norm, labels());
    tf.tidy(() => {
      let gs = names.map((n) => this.pending.get(n)!.div(k));
      if (clipNorm !== undefined) {
        const factor = tf.minimum(1, tf.div(clipNorm, tf.scalar(norm).add(1e-12))); // float32, as before the guard
        gs = gs.map((g) => g.mul(factor));
      }
      const named: tf.NamedTensorMap = {};
      names.forEach((n, i) => (named[n] = gs[i]));
      optimizer.applyGradients(named);
    });
    this.clear();
    this.steps++;
    return null;
  }

  /** Where the bad gradient is: the first non-finite one, else the largest. */
  private finding(names: string[], k: number, norm: number, label: Map<string, string>): GradientFinding {
    let where = '';
    let worst = -1;
    let nonFinite = false; // the loop stops at the first non-finite gradient, so this is "any is non-finite"
    for (const n of names) {
      const g = this.pending.get(n)!;
      const [fin, sq] = tf.tidy(() => [tf.all(tf.isFinite(g)).dataSync()[0], g.div(k).square().sum().dataSync()[0]]);
      if (!fin) {
        nonFinite = true;
        where = `the gradient of ${label.get(n) ?? `'${n}'`}`;
        break;
      }
      if (sq > worst) {
        worst = sq;
        where = `the gradient of ${label.get(n) ?? `'${n}'`} (largest, norm ${Math.sqrt(sq).toPrecision(3)})`;
      }
    }
    const kind = Number.isNaN(norm) || nonFinite ? 'non-finite gradient' : 'exploding gradient';
    return { kind, value: norm, where };
  }
}
