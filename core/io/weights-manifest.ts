/**
 * Checks for the tfjs weights manifest (model.json `weightsManifest`) and for the byte length of
 * the weight data it describes. Weights are stored back to back, in manifest order, as raw
 * little-endian values: float32/int32 4 bytes, bool 1, complex64 8 (re, im float32 pairs),
 * quantized weights 1 (uint8) or 2 (uint16, float16) bytes per value, and each string element as
 * a uint32 byte length followed by its bytes. A weight group's shards are that group's bytes cut
 * into consecutive files.
 */
import type * as tf from '@tensorflow/tfjs';

type WeightsManifestEntry = tf.io.WeightsManifestEntry;
type WeightsManifestConfig = tf.io.WeightsManifestConfig;

/** Bytes per value of each stored (unquantized) weight dtype; 'string' is variable-length. */
export const WEIGHT_DTYPE_BYTES: Readonly<Record<'float32' | 'int32' | 'bool' | 'complex64', number>> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
};

/** Bytes per stored value of each quantization dtype. */
export const QUANTIZATION_DTYPE_BYTES: Readonly<Record<'uint8' | 'uint16' | 'float16', number>> = {
  uint8: 1,
  uint16: 2,
  float16: 2,
};

const WEIGHT_DTYPES: readonly string[] = ['float32', 'int32', 'bool', 'string', 'complex64'];
const STRING_LENGTH_BYTES = 4;

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Validates one manifest entry; `where` names the file, `at` the JSON path of the entry.
 * Throws an Error naming both for anything tfjs could not decode.
 */
export function validateWeightSpec(spec: unknown, where: string, at: string): WeightsManifestEntry {
  const bad = (what: string): never => {
    throw new Error(`${where}: ${at}${what}`);
  };
  if (!isRecord(spec)) bad(' must be an object {name, shape, dtype}');
  const s = spec as Record<string, unknown>;
  if (typeof s.name !== 'string' || s.name === '') bad('.name must be a non-empty string');
  if (!Array.isArray(s.shape) || !s.shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
    bad(`.shape must be an array of non-negative integers (weight '${String(s.name)}')`);
  }
  if (typeof s.dtype !== 'string' || !WEIGHT_DTYPES.includes(s.dtype)) {
    bad(`.dtype ${JSON.stringify(s.dtype)} of weight '${String(s.name)}' is not one of ${WEIGHT_DTYPES.join(', ')}`);
  }
  if (s.group !== undefined && s.group !== 'model' && s.group !== 'optimizer') {
    bad(`.group ${JSON.stringify(s.group)} of weight '${String(s.name)}' must be 'model' or 'optimizer'`);
  }
  if (s.quantization !== undefined) {
    const q = s.quantization;
    if (!isRecord(q)) bad(`.quantization of weight '${String(s.name)}' must be an object`);
    const qr = q as Record<string, unknown>;
    const qd = qr.dtype;
    if (qd !== 'uint8' && qd !== 'uint16' && qd !== 'float16') {
      bad(`.quantization.dtype ${JSON.stringify(qd)} of weight '${String(s.name)}' is not one of uint8, uint16, float16`);
    }
    if (qd === 'float16' && s.dtype !== 'float32') {
      bad(`.quantization: float16 quantization of weight '${String(s.name)}' needs dtype float32, got ${String(s.dtype)}`);
    }
    if ((qd === 'uint8' || qd === 'uint16') && s.dtype !== 'float32' && s.dtype !== 'int32') {
      bad(`.quantization: ${String(qd)} quantization of weight '${String(s.name)}' needs dtype float32 or int32, got ${String(s.dtype)}`);
    }
    if ((qd === 'uint8' || qd === 'uint16') && (typeof qr.scale !== 'number' || typeof qr.min !== 'number')) {
      bad(`.quantization of weight '${String(s.name)}' (${String(qd)}) needs numeric 'scale' and 'min'`);
    }
  }
  return spec as WeightsManifestEntry;
}

/** Validates a whole `weightsManifest` array (groups of {paths, weights}). */
export function validateWeightsManifest(manifest: unknown, where: string): WeightsManifestConfig {
  if (!Array.isArray(manifest)) {
    throw new Error(`${where}: weightsManifest must be an array of {paths, weights} groups`);
  }
  manifest.forEach((group, g) => {
    const at = `weightsManifest[${g}]`;
    if (!isRecord(group)) throw new Error(`${where}: ${at} must be an object {paths, weights}`);
    const paths = group.paths;
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string' && p !== '')) {
      throw new Error(`${where}: ${at}.paths must be an array of non-empty file names`);
    }
    if (!Array.isArray(group.weights)) throw new Error(`${where}: ${at}.weights must be an array of weight specs`);
    if (paths.length === 0 && group.weights.length > 0) {
      throw new Error(`${where}: ${at}.paths is empty but the group lists ${group.weights.length} weights`);
    }
    group.weights.forEach((w, i) => validateWeightSpec(w, where, `${at}.weights[${i}]`));
  });
  return manifest as WeightsManifestConfig;
}

function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Fixed byte size of one weight, or null for (unquantized) strings, whose size is in the data. */
export function fixedWeightBytes(spec: WeightsManifestEntry): number | null {
  const n = numElements(spec.shape);
  if (spec.quantization !== undefined) return n * QUANTIZATION_DTYPE_BYTES[spec.quantization.dtype];
  if (spec.dtype === 'string') return null;
  return n * WEIGHT_DTYPE_BYTES[spec.dtype];
}

/** Reads little-endian uint32 values at absolute offsets of data split across chunks. */
class ChunkReader {
  private readonly starts: number[] = [];
  readonly total: number;
  constructor(private readonly chunks: readonly Uint8Array[]) {
    let t = 0;
    for (const c of chunks) {
      this.starts.push(t);
      t += c.byteLength;
    }
    this.total = t;
  }
  private byteAt(offset: number): number {
    // Linear scan over chunks: string weights are rare and shards are few.
    for (let i = this.chunks.length - 1; i >= 0; i--) {
      if (offset >= this.starts[i]) return this.chunks[i][offset - this.starts[i]];
    }
    throw new RangeError(`offset ${offset}`);
  }
  uint32(offset: number): number {
    return (this.byteAt(offset) | (this.byteAt(offset + 1) << 8) | (this.byteAt(offset + 2) << 16)) + this.byteAt(offset + 3) * 2 ** 24;
  }
}

export interface ByteCheck {
  /** Bytes the specs need; a lower bound when `exact` is false (data ended inside a string). */
  expected: number;
  exact: boolean;
  /** Bytes actually present. */
  actual: number;
}

/**
 * Bytes that `specs` need, given the data that is present (string weights carry their lengths in
 * the data). Compare `expected` with `actual`: larger = truncated, smaller = trailing bytes.
 */
export function measureWeightBytes(specs: readonly WeightsManifestEntry[], chunks: readonly Uint8Array[]): ByteCheck {
  const reader = new ChunkReader(chunks);
  let offset = 0;
  for (const spec of specs) {
    const fixed = fixedWeightBytes(spec);
    if (fixed !== null) {
      offset += fixed;
      continue;
    }
    const n = numElements(spec.shape);
    for (let i = 0; i < n; i++) {
      if (offset + STRING_LENGTH_BYTES > reader.total) {
        // Cannot read the next length prefix: the data is short by at least the rest of this weight.
        return { expected: offset + (n - i) * STRING_LENGTH_BYTES, exact: false, actual: reader.total };
      }
      offset += STRING_LENGTH_BYTES + reader.uint32(offset);
    }
  }
  return { expected: offset, exact: true, actual: reader.total };
}

/** "truncated: holds 10 bytes, the weight specs need 16" style description, or null if sizes agree. */
export function describeByteMismatch(check: ByteCheck): string | null {
  if (check.exact && check.expected === check.actual) return null;
  const need = `${check.exact ? '' : 'at least '}${check.expected}`;
  if (check.actual < check.expected) {
    return `truncated: holds ${check.actual} bytes but the weight specs need ${need} bytes`;
  }
  return `oversized: holds ${check.actual} bytes but the weight specs need only ${need} bytes`;
}
