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

export { firstInvalidUtf8, decodeUtf8Strict } from '../utf8';
import { decodeUtf8Strict } from '../utf8';

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

export { crc32 } from '../crc32';
