/**
 * Trainer checkpoints: a directory with `checkpoint.json` (format, clocks, meta, tensor index) and
 * `tensors.bin` (float32/int32 little-endian, back to back), written as one atomic commit with
 * core/io writeFilesAtomic (the JSON, which publishes the set, is renamed last). Holds the model
 * weights (meta-learned initial states and every other parameter), the outer optimizer's state, pending
 * outer gradients (gradient accumulation), and the open context: level clocks, fast weights, pending
 * chunk accumulators, inner-transform state and every other carried memory state.
 *
 * Integrity (version 2): every tensor has a CRC-32 in the index. Saving refuses a non-finite float
 * tensor (no checkpoint with a NaN/Inf weight is ever published). Loading reads only regular files of
 * bounded size, checks the index before reading tensors.bin (keys unique, dtypes, shapes, sizes = shape x
 * 4 bytes, offsets aligned, back to back, the file size), then each tensor's checksum and finiteness;
 * every error names the file and the tensor. Version 1 files (no checksums) still load, with the other
 * checks.
 *
 * Node only: the file functions load core/io (node:fs) when first called, not at import, so the
 * scheduler's index.ts still bundles for a page; the documented door is nested-learning/plugins/scheduler/node.
 */
import * as tf from '@tensorflow/tfjs';
import { crc32 } from '../../core/crc32';
import type { AtomicFsOps } from '../../core/io';
import { validateTrainerMeta, type NestedTrainer, type TrainerCheckpointMeta } from './trainer';

/** core/io, loaded on first use (a require bundlers do not follow: browser bundles never see node:fs). */
function nodeIo(what: string): typeof import('../../core/io') {
  const req: NodeRequire | undefined = typeof require === 'function' ? require : undefined;
  if (!req) throw new Error(`${what}: trainer checkpoints are files; this needs Node (nested-learning/plugins/scheduler/node)`);
  return req('../../core/io') as typeof import('../../core/io');
}
const joinPath = (dir: string, name: string): string => (dir.endsWith('/') || dir.endsWith('\\') ? dir + name : `${dir}/${name}`);

export const CHECKPOINT_FORMAT = 'nested-learning/nested-trainer-checkpoint';
export const CHECKPOINT_VERSION = 2;
const JSON_NAME = 'checkpoint.json';
const BIN_NAME = 'tensors.bin';
/** Limits checked before reading. */
export const MAX_CHECKPOINT_JSON_BYTES = 64 << 20;
export const MAX_CHECKPOINT_BIN_BYTES = 16 * 2 ** 30;
const MAX_TENSORS = 1 << 20;

interface TensorEntry {
  key: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  offset: number;
  bytes: number;
  /** CRC-32 of the tensor's bytes (version 2). */
  crc32?: number;
}

interface CheckpointJson {
  format: string;
  version: number;
  meta: TrainerCheckpointMeta;
  tensors: TensorEntry[];
}

/** First non-finite element of a float array, or -1. */
function firstNonFinite(v: Float32Array): number {
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return i;
  return -1;
}

export interface SaveCheckpointOptions {
  /** File-system primitives of the atomic write (fault injection in tests). */
  fsOps?: Partial<AtomicFsOps>;
}

export async function saveTrainerCheckpoint(trainer: NestedTrainer, dir: string, opts: SaveCheckpointOptions = {}): Promise<void> {
  const { meta, tensors, owned } = await trainer.exportCheckpoint();
  try {
    const entries: TensorEntry[] = [];
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const { key, tensor } of tensors) {
      if (tensor.dtype !== 'float32' && tensor.dtype !== 'int32') throw new Error(`saveTrainerCheckpoint: tensor '${key}' has unsupported dtype ${tensor.dtype}`);
      const data = await tensor.data(); // checkpoint boundary: reading back is the point
      if (tensor.dtype === 'float32') {
        const bad = firstNonFinite(data as Float32Array);
        if (bad >= 0) throw new Error(`saveTrainerCheckpoint: refusing to save ${dir}: tensor '${key}' holds a non-finite value (${(data as Float32Array)[bad]} at element ${bad})`);
      }
      const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      entries.push({ key, shape: [...tensor.shape], dtype: tensor.dtype, offset, bytes: bytes.byteLength, crc32: crc32(bytes) });
      chunks.push(bytes);
      offset += bytes.byteLength;
    }
    const json: CheckpointJson = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, meta, tensors: entries };
    await nodeIo('saveTrainerCheckpoint').writeFilesAtomic(
      [
        { path: joinPath(dir, BIN_NAME), data: chunks },
        { path: joinPath(dir, JSON_NAME), data: JSON.stringify(json, null, 1) },
      ],
      opts.fsOps ? { fsOps: opts.fsOps } : {},
    );
  } finally {
    tf.dispose(owned);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown, max = Number.MAX_SAFE_INTEGER): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;

/** Validates the index of checkpoint.json (everything but meta); errors name the file and the tensor. */
function checkIndex(json: unknown, file: string): CheckpointJson {
  if (!isObj(json)) throw new Error(`${file}: must be a JSON object`);
  for (const k of Object.keys(json)) if (!['format', 'version', 'meta', 'tensors'].includes(k)) throw new Error(`${file}: unknown key '${k}'`);
  if (json.format !== CHECKPOINT_FORMAT) throw new Error(`${file}: format must be '${CHECKPOINT_FORMAT}', got ${JSON.stringify(json.format)}`);
  if (json.version !== 1 && json.version !== CHECKPOINT_VERSION) throw new Error(`${file}: version ${JSON.stringify(json.version)} is not supported (expected 1 or ${CHECKPOINT_VERSION})`);
  const ts = json.tensors;
  if (!Array.isArray(ts)) throw new Error(`${file}: tensors must be an array, got ${JSON.stringify(ts)?.slice(0, 40)}`);
  if (ts.length > MAX_TENSORS) throw new Error(`${file}: tensors: ${ts.length} entries, more than ${MAX_TENSORS}`);
  const keys = new Set<string>();
  let expected = 0;
  ts.forEach((e: unknown, i: number) => {
    const at = `${file}: tensors[${i}]`;
    if (!isObj(e)) throw new Error(`${at}: must be {key, shape, dtype, offset, bytes${json.version === 2 ? ', crc32' : ''}}`);
    if (typeof e.key !== 'string' || e.key === '') throw new Error(`${at}.key: must be a non-empty string`);
    const name = `${at} ('${e.key}')`;
    for (const k of Object.keys(e)) if (!['key', 'shape', 'dtype', 'offset', 'bytes', 'crc32'].includes(k)) throw new Error(`${name}: unknown key '${k}'`);
    if (keys.has(e.key)) throw new Error(`${name}: duplicate key '${e.key}'`);
    keys.add(e.key);
    if (e.dtype !== 'float32' && e.dtype !== 'int32') throw new Error(`${name}.dtype: must be 'float32' or 'int32', got ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || e.shape.length > 8 || !e.shape.every((d) => isCount(d, 2 ** 31))) throw new Error(`${name}.shape: must be an array of at most 8 integers >= 0, got ${JSON.stringify(e.shape)}`);
    const size = (e.shape as number[]).reduce((a, d) => a * d, 1);
    if (!isCount(e.bytes)) throw new Error(`${name}.bytes: must be an integer >= 0, got ${JSON.stringify(e.bytes)}`);
    if (e.bytes !== size * 4) throw new Error(`${name}.bytes: ${e.bytes}, but shape [${e.shape}] of ${e.dtype} needs ${size * 4}`);
    if (!isCount(e.offset)) throw new Error(`${name}.offset: must be an integer >= 0, got ${JSON.stringify(e.offset)}`);
    if (e.offset !== expected) throw new Error(`${name}.offset: ${e.offset}, expected ${expected} (tensors are stored back to back, 4-byte aligned, without overlaps)`);
    expected += e.bytes;
    if (expected > MAX_CHECKPOINT_BIN_BYTES) throw new Error(`${name}: the tensors need more than ${MAX_CHECKPOINT_BIN_BYTES} bytes`);
    if (json.version === 2 && !isCount(e.crc32, 0xffffffff)) throw new Error(`${name}.crc32: must be an integer in [0, 2^32), got ${JSON.stringify(e.crc32)}`);
  });
  return json as unknown as CheckpointJson;
}

/**
 * Loads a checkpoint into `trainer`. Nothing of the trainer changes unless the whole checkpoint is valid
 * (index, sizes, checksums, finiteness, meta, shapes).
 */
export async function loadTrainerCheckpoint(trainer: NestedTrainer, dir: string): Promise<TrainerCheckpointMeta> {
  const jsonPath = joinPath(dir, JSON_NAME);
  const binPath = joinPath(dir, BIN_NAME);
  const { readJsonFile, readRegularFile } = nodeIo('loadTrainerCheckpoint');
  const json = checkIndex(readJsonFile(jsonPath, { maxBytes: MAX_CHECKPOINT_JSON_BYTES, label: jsonPath }), jsonPath);
  const meta = validateTrainerMeta(json.meta, `${jsonPath}: meta`);
  const total = json.tensors.reduce((a, e) => a + e.bytes, 0);
  const bin = readRegularFile(binPath, { maxBytes: total, label: binPath });
  if (bin.byteLength !== total) throw new Error(`${binPath}: ${bin.byteLength} bytes, index expects ${total}`);
  const map = new Map<string, tf.Tensor>();
  try {
    for (const e of json.tensors) {
      const raw = new Uint8Array(bin.buffer, bin.byteOffset + e.offset, e.bytes);
      if (e.crc32 !== undefined && crc32(raw) !== e.crc32) throw new Error(`${binPath}: tensor '${e.key}' fails its CRC-32 check (the file is damaged or was changed)`);
      const buf = raw.slice().buffer;
      const values = e.dtype === 'int32' ? new Int32Array(buf) : new Float32Array(buf);
      if (e.dtype === 'float32') {
        const bad = firstNonFinite(values as Float32Array);
        if (bad >= 0) throw new Error(`${binPath}: tensor '${e.key}' holds a non-finite value (${values[bad]} at element ${bad})`);
      }
      map.set(e.key, tf.tensor(values, e.shape, e.dtype));
    }
    await trainer.importCheckpoint(meta, map, jsonPath);
  } finally {
    tf.dispose([...map.values()]);
  }
  return meta;
}
