/**
 * Trainer checkpoints: a directory with `checkpoint.json` (format, clocks, meta, tensor index) and
 * `tensors.bin` (float32/int32 little-endian, back to back), written as one atomic commit with
 * core/io writeFilesAtomic (the JSON, which publishes the set, is renamed last). Holds the model
 * weights (meta-learned initial states and every other parameter), the outer optimizer's state, pending
 * outer gradients (gradient accumulation), and the open context: level clocks, fast weights, pending
 * chunk accumulators, inner-transform state and every other carried memory state.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFilesAtomic } from '../../core/io';
import type { NestedTrainer, TrainerCheckpointMeta } from './trainer';

export const CHECKPOINT_FORMAT = 'nested-learning/nested-trainer-checkpoint';
export const CHECKPOINT_VERSION = 1;
const JSON_NAME = 'checkpoint.json';
const BIN_NAME = 'tensors.bin';

interface TensorEntry {
  key: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  offset: number;
  bytes: number;
}

interface CheckpointJson {
  format: string;
  version: number;
  meta: TrainerCheckpointMeta;
  tensors: TensorEntry[];
}

export async function saveTrainerCheckpoint(trainer: NestedTrainer, dir: string): Promise<void> {
  const { meta, tensors, owned } = await trainer.exportCheckpoint();
  try {
    const entries: TensorEntry[] = [];
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const { key, tensor } of tensors) {
      if (tensor.dtype !== 'float32' && tensor.dtype !== 'int32') throw new Error(`saveTrainerCheckpoint: tensor '${key}' has unsupported dtype ${tensor.dtype}`);
      const data = await tensor.data(); // checkpoint boundary: reading back is the point
      const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      entries.push({ key, shape: [...tensor.shape], dtype: tensor.dtype, offset, bytes: bytes.byteLength });
      chunks.push(bytes);
      offset += bytes.byteLength;
    }
    const json: CheckpointJson = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, meta, tensors: entries };
    await writeFilesAtomic([
      { path: path.join(dir, BIN_NAME), data: chunks },
      { path: path.join(dir, JSON_NAME), data: JSON.stringify(json, null, 1) },
    ]);
  } finally {
    tf.dispose(owned);
  }
}

export async function loadTrainerCheckpoint(trainer: NestedTrainer, dir: string): Promise<TrainerCheckpointMeta> {
  const jsonPath = path.join(dir, JSON_NAME);
  const json = JSON.parse(await fsp.readFile(jsonPath, 'utf8')) as CheckpointJson;
  if (json.format !== CHECKPOINT_FORMAT) throw new Error(`${jsonPath}: format must be '${CHECKPOINT_FORMAT}', got ${JSON.stringify(json.format)}`);
  if (json.version !== CHECKPOINT_VERSION) throw new Error(`${jsonPath}: version ${json.version} is not supported (expected ${CHECKPOINT_VERSION})`);
  const bin = await fsp.readFile(path.join(dir, BIN_NAME));
  const total = json.tensors.reduce((a, e) => Math.max(a, e.offset + e.bytes), 0);
  if (bin.byteLength !== total) throw new Error(`${path.join(dir, BIN_NAME)}: ${bin.byteLength} bytes, index expects ${total}`);
  const map = new Map<string, tf.Tensor>();
  try {
    for (const e of json.tensors) {
      const buf = bin.buffer.slice(bin.byteOffset + e.offset, bin.byteOffset + e.offset + e.bytes);
      const values = e.dtype === 'int32' ? new Int32Array(buf) : new Float32Array(buf);
      map.set(e.key, tf.tensor(values, e.shape, e.dtype));
    }
    await trainer.importCheckpoint(json.meta, map);
  } finally {
    tf.dispose([...map.values()]);
  }
  return json.meta;
}
