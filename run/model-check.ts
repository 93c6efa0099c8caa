/**
 * Checks of a run config's model that need the layer classes (run before any weight is allocated):
 *  - a memory estimate (parameters x optimizer copies + activations of one batch) against a limit
 *    (8 GiB, or NL_MAX_MEMORY_GB), with the numbers in the message;
 *  - every block is constructed (not built: no weights) so the plugin's own validation runs, errors
 *    prefixed with the block's path;
 *  - unknown keys anywhere in a block config, also inside mixer / ffn configs and CMS levels, for any
 *    registered class (core/validate checkLayerConfigKeys: compared with what the layer reports back);
 *  - the cross-field constraints of the chunked algorithms against training.seqLength and between the
 *    parts of a block (core/validate checkChunkedBlock);
 *  - rates: any `learningRate` in a block config must be finite and <= MAX_RATE.
 */
import * as tf from '@tensorflow/tfjs';
import { checkChunkedBlock, checkLayerConfigKeys, isPlainObject, joinPath } from '../core/validate';
import { createSubLayer } from '../plugins/hope';
import type { RunConfig } from './config';

export const MAX_RATE = 100;

/** The memory limit in bytes (NL_MAX_MEMORY_GB, default 8). */
export function memoryLimitBytes(): number {
  const g = Number(process.env.NL_MAX_MEMORY_GB ?? 8);
  return (Number.isFinite(g) && g > 0 ? g : 8) * 2 ** 30;
}

const gib = (b: number): string => `${(b / 2 ** 30).toPrecision(3)} GiB`;

/** Rough size of a run: parameters and float32 bytes of weights + gradients + two optimizer slots + activations of one batch. */
export function estimateMemory(c: RunConfig): { parameters: number; activations: number; bytes: number; largest: string } {
  const m = c.model;
  const d = m.dModel;
  let parameters = m.vocabSize * d * (m.tieEmbeddings ? 1 : 2);
  let largest = { what: `model.vocabSize x model.dModel (${m.vocabSize} x ${d})`, n: parameters };
  const note = (what: string, n: number): void => {
    if (n > largest.n) largest = { what, n };
  };
  let blocks = 0;
  const walk = (v: unknown, path: string, repeat: number): number => {
    let p = 0;
    if (Array.isArray(v)) v.forEach((x, i) => (p += walk(x, joinPath(path, i), repeat)));
    else if (isPlainObject(v)) {
      if (typeof v.expansion === 'number' && Number.isFinite(v.expansion)) (p += 3 * v.expansion * d * d), note(`${path}.expansion (${v.expansion})`, repeat * 3 * v.expansion * d * d);
      if (typeof v.hiddenDim === 'number' && Number.isFinite(v.hiddenDim)) (p += 3 * v.hiddenDim * d), note(`${path}.hiddenDim (${v.hiddenDim})`, repeat * 3 * v.hiddenDim * d);
      for (const [k, x] of Object.entries(v)) p += walk(x, joinPath(path, k), repeat);
    }
    return p;
  };
  m.blocks.forEach((b, i) => {
    blocks += b.repeat;
    const n = b.repeat * (16 * d * d + walk(b.config ?? {}, `model.blocks[${i}].config`, b.repeat));
    note(`model.blocks[${i}] (repeat ${b.repeat} x model.dModel ${d} squared)`, b.repeat * 16 * d * d);
    parameters += n;
  });
  const t = c.training;
  const activations = t.batchSize * t.seqLength * (d * Math.max(1, blocks) * 48 + 3 * m.vocabSize);
  if (4 * activations > 16 * largest.n) largest = { what: `training.batchSize x training.seqLength (${t.batchSize} x ${t.seqLength})`, n: activations };
  return { parameters, activations, bytes: 4 * (4 * parameters + activations), largest: largest.what };
}

function walkRates(v: unknown, path: string): void {
  if (Array.isArray(v)) v.forEach((x, i) => walkRates(x, joinPath(path, i)));
  else if (isPlainObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      const p = joinPath(path, k);
      if (/learningRate$/i.test(k) && typeof x === 'number' && !(Number.isFinite(x) && x <= MAX_RATE)) throw new Error(`${p}: ${x} is not a sane rate (must be finite and <= ${MAX_RATE})`);
      walkRates(x, p);
    }
  }
}

/** Throws (one line naming the field) when the model part of `c` is invalid; see the module comment. */
export function checkModelConfig(c: RunConfig, where = 'config'): void {
  const est = estimateMemory(c);
  const limit = memoryLimitBytes();
  if (!(est.bytes <= limit)) {
    throw new Error(
      `${where} model: needs about ${gib(est.bytes)} (~${est.parameters.toExponential(2)} parameters with gradients and optimizer state, ` +
        `~${est.activations.toExponential(2)} activation floats for training.batchSize ${c.training.batchSize} x training.seqLength ${c.training.seqLength}), ` +
        `more than the limit of ${gib(limit)} (NL_MAX_MEMORY_GB); the largest part: ${est.largest}`,
    );
  }
  c.model.blocks.forEach((b, i) => {
    const path = `model.blocks[${i}]`;
    walkRates(b.config ?? {}, `${where} ${path}.config`);
    let layer: tf.layers.Layer;
    try {
      layer = createSubLayer({ className: b.className, config: b.config ?? {} }, `${path}`, `check_block${i}`);
    } catch (e) {
      const msg = (e as Error).message;
      throw new Error(msg.startsWith(path) ? `${where} ${msg}` : `${where} ${path}.config: ${msg}`);
    }
    try {
      checkLayerConfigKeys(layer, b.config, `${path}.config`);
      const rec = layer as unknown as Record<string, unknown>;
      const parts = ['mixer', 'ffn'].filter((k) => rec[k] instanceof tf.layers.Layer).map((k) => ({ layer: rec[k] as tf.layers.Layer, path: `${path}.config.${k}.config` }));
      checkChunkedBlock(parts.length ? parts : [{ layer, path: `${path}.config` }], c.training.seqLength);
      if (c.training.segmentLength !== undefined && c.training.segmentLength > c.training.seqLength) {
        throw new Error(`training.segmentLength: ${c.training.segmentLength} is larger than training.seqLength (${c.training.seqLength})`);
      }
    } catch (e) {
      throw new Error(`${where} ${(e as Error).message}`);
    }
  });
}
