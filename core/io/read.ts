/**
 * Guarded reads for Node (configs, data files, checkpoints): a file is opened without blocking (a FIFO
 * cannot hang the reader), must be a regular file (not a directory, device such as /dev/zero, socket or
 * FIFO; symbolic links to regular files are followed), is size-checked BEFORE any byte is read, and
 * every error is one line naming the file. Text is decoded as strict UTF-8 (an invalid sequence is an
 * error with its byte offset, never replaced by U+FFFD); JSON errors name the file.
 */
import * as fs from 'node:fs';

/** Explains an fs error code in words (one line; the file is named by the caller). */
export function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOENT':
      return 'does not exist';
    case 'ELOOP':
      return 'is a symbolic link loop (or too many levels of links)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'a parent in the path is not a folder';
    case 'EISDIR':
      return 'is a folder, expected a file';
    case 'ENAMETOOLONG':
      return 'the path is too long';
    case 'EROFS':
      return 'is on a read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return (e as Error)?.message?.split('\n')[0] ?? String(e);
  }
}

/** What a non-regular file is, in words. */
export function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return st.isFile() ? 'a regular file' : 'not a regular file';
}

export interface ReadOptions {
  /** Largest accepted size in bytes (checked before reading). */
  maxBytes: number;
  /** How the file is named in errors; default the path in quotes. */
  label?: string;
}

/** Reads a whole regular file (see the module comment). */
export function readRegularFile(file: string, opts: ReadOptions): Buffer {
  const label = opts.label ?? `'${file}'`;
  if (typeof file !== 'string' || file === '') throw new Error(`${label}: the path is empty`);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw new Error(`${label}: ${describeFsError(e)}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new Error(`${label}: is a folder, expected a file`);
    if (!st.isFile()) throw new Error(`${label}: is ${fileKind(st)}, not a regular file`);
    if (st.size > opts.maxBytes) throw new Error(`${label}: ${st.size} bytes, more than the limit of ${opts.maxBytes}`);
    const buf = Buffer.allocUnsafe(st.size);
    let off = 0;
    while (off < st.size) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, off, st.size - off, off);
      } catch (e) {
        throw new Error(`${label}: ${describeFsError(e)}`);
      }
      if (n === 0) break; // shrank while reading
      off += n;
    }
    return off === st.size ? buf : buf.subarray(0, off);
  } finally {
    fs.closeSync(fd);
  }
}

/** Byte offset of the first invalid UTF-8 sequence in `b`, or -1 when all of it is valid UTF-8. */
export function firstInvalidUtf8(b: Uint8Array): number {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return -1;
  } catch {
    // locate it (slow path, only on failure)
  }
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f; // no UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    if (i + len > n) return i;
    if (b[i + 1] < lo || b[i + 1] > hi) return i;
    for (let k = 2; k < len; k++) if (b[i + k] < 0x80 || b[i + k] > 0xbf) return i;
    i += len;
  }
  return -1; // (the decoder disagreed; treat as valid)
}

/** Strict UTF-8 decoding: invalid bytes are an error naming `label` and the byte offset. A leading BOM is dropped. */
export function decodeUtf8Strict(b: Uint8Array, label: string): string {
  const at = firstInvalidUtf8(b);
  if (at >= 0) {
    const bytes = Array.from(b.subarray(at, Math.min(b.length, at + 4)), (x) => `0x${x.toString(16).padStart(2, '0')}`).join(' ');
    throw new Error(`${label}: invalid UTF-8 at byte ${at} (${bytes})`);
  }
  return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(b);
}

/** Reads a regular file as strict UTF-8 text. */
export function readTextFile(file: string, opts: ReadOptions): string {
  return decodeUtf8Strict(readRegularFile(file, opts), opts.label ?? `'${file}'`);
}

/** Reads and parses a JSON file; every error names the file. */
export function readJsonFile(file: string, opts: ReadOptions): unknown {
  const label = opts.label ?? `'${file}'`;
  const text = readTextFile(file, { ...opts, label });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${label}: not valid JSON: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** CRC-32 (IEEE 802.3, as zlib / PNG) of `b`; `crc` continues a previous value. */
export function crc32(b: Uint8Array, crc = 0): number {
  let t = CRC_TABLE;
  if (!t) {
    t = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      t[n] = c;
    }
    CRC_TABLE = t;
  }
  let c = ~crc;
  for (let i = 0; i < b.length; i++) c = t[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
let CRC_TABLE: Int32Array | null = null;
