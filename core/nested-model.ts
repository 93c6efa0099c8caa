/**
 * NestedModel: the model description NestedTrainer accepts. An ordered stack of stages, each a tfjs
 * layer applied to the previous stage's output ([B, T, D] -> [B, T, D']), optionally with a residual
 * connection (y = x + layer(x)). Stages that implement StatefulSequenceLayer (CMS, NlLinearAttention,
 * NlAssociativeMemory, ...) receive and return explicit memory state, carried across segments of a
 * context; other layers (Dense, LayerNormalization, ...) are applied as usual and keep no state.
 * Stages that implement InContextLearner (core/stateful.ts) also learn in context (Eq. 71).
 */
import * as tf from '@tensorflow/tfjs';
import { disposeState, type MemoryState } from './memory-state';
import { isInContextLearner, isStatefulSequenceLayer, type InContextLearner, type StatefulSequenceLayer } from './stateful';

export interface NestedStage {
  layer: tf.layers.Layer;
  /** y = x + layer(x) (shapes must match). Default false. */
  residual?: boolean;
}

/** Per stage: its memory state (null for stateless stages). */
export type StageStates = Array<MemoryState | null>;

export class NestedModel {
  readonly stages: readonly Required<NestedStage>[];

  constructor(stages: ReadonlyArray<tf.layers.Layer | NestedStage>) {
    if (!Array.isArray(stages) || stages.length === 0) throw new Error('NestedModel.stages: must be a non-empty array of layers or {layer, residual}');
    const names = new Set<string>();
    this.stages = stages.map((s, i) => {
      const st: NestedStage = s instanceof tf.layers.Layer ? { layer: s } : s;
      if (!st || !(st.layer instanceof tf.layers.Layer)) throw new Error(`NestedModel.stages[${i}].layer: must be a tfjs layer`);
      if (st.residual !== undefined && typeof st.residual !== 'boolean') throw new Error(`NestedModel.stages[${i}].residual: must be a boolean`);
      if (names.has(st.layer.name)) throw new Error(`NestedModel.stages[${i}].layer: duplicate layer name '${st.layer.name}' (level ids use layer names)`);
      names.add(st.layer.name);
      return { layer: st.layer, residual: st.residual ?? false };
    });
  }

  isStateful(i: number): boolean {
    return isStatefulSequenceLayer(this.stages[i].layer);
  }

  /** The stage as an in-context learner, or null. */
  learner(i: number): InContextLearner | null {
    const l = this.stages[i].layer;
    return isInContextLearner(l) ? l : null;
  }

  /** Builds every layer by running the first token of `x` [B, T, D] through the stack (no state kept). */
  build(x: tf.Tensor): void {
    if (this.stages.every((s) => s.layer.built)) return;
    tf.tidy(() => {
      let h = x.slice([0, 0], [1, 1]); // [1, 1, ...]
      this.stages.forEach((s, i) => {
        const y = this.isStateful(i) ? (s.layer as unknown as StatefulSequenceLayer).forward(h, null).y : (s.layer.apply(h) as tf.Tensor);
        h = s.residual ? h.add(y) : y;
      });
    });
  }

  /** Trainable variables of every stage, deduplicated (tf.Variable, as the optimizer sees them). */
  trainableVariables(): tf.Variable[] {
    const seen = new Set<string>();
    const out: tf.Variable[] = [];
    for (const s of this.stages) {
      for (const lv of s.layer.trainableWeights) {
        const v = lv.read() as tf.Variable;
        if (!seen.has(v.name)) {
          seen.add(v.name);
          out.push(v);
        }
      }
    }
    return out;
  }

  /** Fresh context states (the meta-learned initial memories) for `batchSize` sequences. */
  initialStates(batchSize: number): StageStates {
    return this.stages.map((s, i) => (this.isStateful(i) ? (s.layer as unknown as StatefulSequenceLayer).initialState(batchSize) : null));
  }

  /**
   * Runs x [B, T, D] through the stack from `states` (not disposed); returns the output and the new
   * states (owned by the caller). Runs in the caller's scope (no tidy) so it can sit under a gradient tape.
   * `probe` sees each stage's output (after its residual), e.g. for finiteness checks.
   */
  forward(x: tf.Tensor, states: StageStates, probe?: (stage: number, y: tf.Tensor) => void): { y: tf.Tensor; states: StageStates } {
    let h = x;
    const next: StageStates = [];
    this.stages.forEach((s, i) => {
      let y: tf.Tensor;
      if (this.isStateful(i)) {
        const r = (s.layer as unknown as StatefulSequenceLayer).forward(h, states[i]);
        y = r.y;
        next.push(r.state);
      } else {
        y = s.layer.apply(h) as tf.Tensor;
        next.push(null);
      }
      h = s.residual ? h.add(y) : y;
      probe?.(i, h);
    });
    return { y: h, states: next };
  }

  /** Runs the stack from fresh states and returns y only (like model.predict for one context). */
  predict(x: tf.Tensor): tf.Tensor {
    this.build(x);
    return tf.tidy(() => {
      const r = this.forward(x, this.initialStates(x.shape[0]));
      return r.y;
    });
  }
}

export function disposeStates(states: StageStates | null | undefined): void {
  for (const s of states ?? []) disposeState(s);
}
