import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { withBackend } from '../testing';
import {
  describeByteMismatch,
  fixedWeightBytes,
  measureWeightBytes,
  validateWeightsManifest,
} from './weights-manifest';

type Spec = tf.io.WeightsManifestEntry;

/** uint32 little-endian length prefix followed by the UTF-8 bytes (tfjs string weight layout). */
function stringBytes(...values: string[]): Uint8Array {
  const parts: number[] = [];
  for (const v of values) {
    const b = Buffer.from(v, 'utf8');
    parts.push(b.length & 255, (b.length >> 8) & 255, (b.length >> 16) & 255, (b.length >>> 24) & 255, ...b);
  }
  return Uint8Array.from(parts);
}

describe('core/io weights-manifest', () => {
  // Hand-computed sizes: elements x bytes per stored value.
  const specs: Spec[] = [
    { name: 'f', shape: [2, 3], dtype: 'float32' }, // 6 x 4 = 24
    { name: 'i', shape: [4], dtype: 'int32' }, // 4 x 4 = 16
    { name: 'b', shape: [5], dtype: 'bool' }, // 5 x 1 = 5
    { name: 'c', shape: [2], dtype: 'complex64' }, // 2 x 8 = 16
    { name: 'q8', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', min: -1, scale: 0.1 } }, // 3 x 1 = 3
    { name: 'q16', shape: [2, 2], dtype: 'float32', quantization: { dtype: 'float16' } }, // 4 x 2 = 8
    { name: 'scalar', shape: [], dtype: 'float32' }, // 1 x 4 = 4
    { name: 'empty', shape: [0, 7], dtype: 'float32' }, // 0
  ];

  it('fixedWeightBytes matches hand-computed sizes, null for strings', () => {
    expect(specs.map(fixedWeightBytes)).to.deep.equal([24, 16, 5, 16, 3, 8, 4, 0]);
    expect(fixedWeightBytes({ name: 's', shape: [2], dtype: 'string' })).to.equal(null);
  });

  it('measureWeightBytes reads string lengths from the data and spans shard boundaries', () => {
    const fixed = 24 + 16 + 5 + 16 + 3 + 8 + 4;
    const strs = stringBytes('ab', 'xyz'); // 4 + 2 + 4 + 3 = 13 bytes
    expect(strs.byteLength).to.equal(13);
    const all = [...specs, { name: 's', shape: [2], dtype: 'string' } as Spec];
    const data = new Uint8Array(fixed + 13);
    data.set(strs, fixed);
    // Cut into 3 shards, one cut inside the first string's length prefix.
    const shards = [data.subarray(0, 10), data.subarray(10, fixed + 2), data.subarray(fixed + 2)];
    expect(measureWeightBytes(all, shards)).to.deep.equal({ expected: fixed + 13, exact: true, actual: fixed + 13 });
    expect(describeByteMismatch(measureWeightBytes(all, shards))).to.equal(null);

    const short = measureWeightBytes(all, [data.subarray(0, fixed + 13 - 1)]);
    expect(describeByteMismatch(short)).to.equal(`truncated: holds ${fixed + 12} bytes but the weight specs need ${fixed + 13} bytes`);
    const long = measureWeightBytes(all, [data, new Uint8Array(3)]);
    expect(describeByteMismatch(long)).to.equal(`oversized: holds ${fixed + 16} bytes but the weight specs need only ${fixed + 13} bytes`);
    // Data ending inside the first length prefix: only a lower bound is known (2 prefixes).
    const cut = measureWeightBytes(all, [data.subarray(0, fixed + 2)]);
    expect(cut).to.deep.equal({ expected: fixed + 8, exact: false, actual: fixed + 2 });
    expect(describeByteMismatch(cut)).to.contain('need at least');
  });

  it('agrees with tfjs encodeWeights for every dtype', async () => {
    // cpu: wasm has no Complex kernel, and the byte layout does not depend on the backend.
    const { data, specs: encoded } = await withBackend('cpu', async () => {
      const tensors = {
        f: tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]),
        i: tf.tensor1d([1, -2, 3], 'int32'),
        b: tf.tensor1d([true, false], 'bool'),
        c: tf.complex([1, 2], [3, 4]),
        s: tf.tensor1d(['hello', '', 'wörld'], 'string'),
      };
      const out = await tf.io.encodeWeights(tensors);
      tf.dispose(Object.values(tensors));
      return out;
    });
    const check = measureWeightBytes(encoded, [new Uint8Array(data)]);
    expect(check.exact).to.equal(true);
    expect(check.expected).to.equal(data.byteLength);
    // 24 + 12 + 2 + 16 + (4+5 + 4+0 + 4+6) = 77
    expect(data.byteLength).to.equal(77);
  });

  it('validateWeightsManifest names the file and the JSON path of a bad entry', () => {
    const where = '/m/model.json';
    const ok = [{ paths: ['weights.bin'], weights: specs }];
    expect(validateWeightsManifest(ok, where)).to.equal(ok);
    const cases: Array<[unknown, string]> = [
      [{}, `${where}: weightsManifest must be an array`],
      [[{ paths: 'w.bin', weights: [] }], `${where}: weightsManifest[0].paths must be an array`],
      [[{ paths: ['w.bin'] }], `${where}: weightsManifest[0].weights must be an array`],
      [[{ paths: [], weights: [specs[0]] }], `${where}: weightsManifest[0].paths is empty`],
      [[{ paths: ['w'], weights: [{ name: 'k', shape: [2], dtype: 'float64' }] }], `weightsManifest[0].weights[0].dtype "float64" of weight 'k'`],
      [[{ paths: ['w'], weights: [{ name: 'k', shape: [2.5], dtype: 'float32' }] }], `weightsManifest[0].weights[0].shape must be an array of non-negative integers`],
      [[{ paths: ['w'], weights: [{ shape: [2], dtype: 'float32' }] }], `weightsManifest[0].weights[0].name`],
      [
        [{ paths: ['w'], weights: [specs[0], { name: 'k', shape: [2], dtype: 'float32', quantization: { dtype: 'int4' } }] }],
        `weightsManifest[0].weights[1].quantization.dtype "int4" of weight 'k' is not one of uint8, uint16, float16`,
      ],
      [
        [{ paths: ['w'], weights: [{ name: 'k', shape: [2], dtype: 'float32', quantization: { dtype: 'uint8' } }] }],
        `needs numeric 'scale' and 'min'`,
      ],
      [
        [{ paths: ['w'], weights: [{ name: 'k', shape: [2], dtype: 'int32', quantization: { dtype: 'float16' } }] }],
        `float16 quantization of weight 'k' needs dtype float32`,
      ],
      [[{ paths: ['w'], weights: [{ name: 'k', shape: [2], dtype: 'float32', group: 'opt' }] }], `.group "opt"`],
    ];
    for (const [manifest, message] of cases) {
      expect(() => validateWeightsManifest(manifest, where), message).to.throw(message);
    }
  });
});
