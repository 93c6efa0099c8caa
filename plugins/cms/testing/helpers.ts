/** Test helpers: deterministic weights, CMS construction from reference weights, state snapshots. */
import * as tf from '@tensorflow/tfjs';
import type { MemoryState } from '../../../core';
import { fastKey, NlContinuumMemorySystem } from '../layer';
import type { CmsLevelConfig } from '../config';
import type { Mat, RefBlock, RefConfig } from './reference';

/** Deterministic pseudo-random numbers in [-scale, scale). */
export function rng(seed: number): (scale?: number) => number {
  let s = seed >>> 0 || 1;
  return (scale = 1) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  };
}

export function randMat(r: (s?: number) => number, rows: number, cols: number, scale: number): Mat {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => r(scale)));
}

export function randBlock(r: (s?: number) => number, d: number, h: number, bias = true): RefBlock {
  return {
    w1: randMat(r, d, h, 0.6),
    b1: Array.from({ length: h }, () => (bias ? r(0.2) : 0)),
    w2: randMat(r, h, d, 0.6),
    b2: Array.from({ length: d }, () => (bias ? r(0.2) : 0)),
  };
}

export interface CmsCase extends RefConfig {
  useBias?: boolean;
  hidden: number;
  transforms?: Array<CmsLevelConfig['transform']>;
}

/** A built CMS whose initial weights are `init` (and mix when independent). */
export function makeCms(c: CmsCase, init: RefBlock[], d: number, name?: string): NlContinuumMemorySystem {
  const layer = new NlContinuumMemorySystem({
    name,
    levels: c.levels.map((l, i) => ({
      period: l.period,
      learningRate: l.learningRate,
      hiddenDim: c.hidden,
      ...(c.transforms?.[i] ? { transform: c.transforms[i] } : {}),
    })),
    variant: c.variant,
    activation: c.activation,
    residual: c.residual,
    useBias: c.useBias ?? true,
  });
  layer.build([null, null, d]);
  init.forEach((b, l) => {
    layer.variable(l, 'w1').write(tf.tensor2d(b.w1));
    layer.variable(l, 'w2').write(tf.tensor2d(b.w2));
    if (c.useBias ?? true) {
      layer.variable(l, 'b1').write(tf.tensor1d(b.b1));
      layer.variable(l, 'b2').write(tf.tensor1d(b.b2));
    }
  });
  if (c.variant === 'independent') {
    const mix = layer.getWeights().length; // mix is the last weight
    const ws = layer.getWeights();
    ws[mix - 1] = tf.tensor1d(c.mix!);
    layer.setWeights(ws);
  }
  return layer;
}

/** Level l's fast weights of sequence b as a RefBlock (reads back: test use only). */
export function fastBlock(state: MemoryState, l: number, b: number, bias = true): RefBlock {
  const get = (w: string): unknown => (state[fastKey(l, w)].arraySync() as unknown[])[b]; // no new tensors
  const w1 = get('w1') as Mat;
  const w2 = get('w2') as Mat;
  return {
    w1,
    w2,
    b1: bias ? (get('b1') as number[]) : w1[0].map(() => 0),
    b2: bias ? (get('b2') as number[]) : w2[0].map(() => 0),
  };
}

export const flatBlock = (b: RefBlock): number[] => [...b.w1.flat(), ...b.b1, ...b.w2.flat(), ...b.b2];
