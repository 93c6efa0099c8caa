/**
 * Crash-safe file replacement for Node: write a temp file next to the target, fsync it, then
 * rename it over the target (rename within one directory is atomic on POSIX file systems, so a
 * reader sees either the old bytes or the new bytes, never a torn file).
 *
 * writeFilesAtomic replaces several files as one commit: every temp file is written and flushed
 * before the first rename, renames run in the given order (put the file that "publishes" the set,
 * e.g. model.json, last), and if a rename fails the files already renamed are put back from
 * backups. On any failure the previous files are left as they were and no temp or backup files
 * remain. Used by the file:// model handler, checkpoints and metrics.
 *
 * Limits: a crash (power loss, SIGKILL) between two renames of a multi-file commit can leave the
 * earlier files new and the later ones old, plus stray `.*.tmp` / `.*.bak` files; two processes
 * committing to the same files at once are not serialised (the last rename of each file wins).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Bytes to write: text (written as UTF-8), one buffer, or a list of chunks written back to back. */
export type AtomicData = string | Uint8Array | ArrayBuffer | ReadonlyArray<Uint8Array | ArrayBuffer>;

export interface AtomicFile {
  /** Target path (relative paths resolve against the working directory). */
  path: string;
  data: AtomicData;
}

/**
 * The file-system primitives the atomic writers use. Every field has a Node default; tests pass a
 * partial override to simulate a failure at one precise point (a failing write, rename, ...).
 */
export interface AtomicFsOps {
  /** Creates `file` (which must not exist), writes `chunks` in order and fsyncs it before resolving. */
  writeNewFile(file: string, chunks: readonly Uint8Array[]): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Hard link; used to keep a backup of a file about to be replaced. */
  link(existing: string, newPath: string): Promise<void>;
  /** Fallback for link() on file systems without hard links. */
  copyFile(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
  /** Creates `dir` and its parents if missing. */
  mkdirp(dir: string): Promise<void>;
  /** Flushes a directory entry table so that renames survive a crash (best effort). */
  syncDir(dir: string): Promise<void>;
  /** True when `file` exists (any type). */
  exists(file: string): Promise<boolean>;
}

export interface AtomicWriteOptions {
  /** Replace some file-system primitives (fault injection in tests). */
  fsOps?: Partial<AtomicFsOps>;
  /** Create missing parent directories of the targets. Default true. */
  createDirs?: boolean;
}

async function defaultWriteNewFile(file: string, chunks: readonly Uint8Array[]): Promise<void> {
  // 'wx': fail instead of clobbering if the (random) temp name somehow exists.
  const handle = await fsp.open(file, 'wx', 0o666);
  try {
    for (const chunk of chunks) {
      let offset = 0;
      // FileHandle.write may write fewer bytes than asked: loop until the chunk is out.
      while (offset < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
        offset += bytesWritten;
      }
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function defaultSyncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch {
    // Some platforms (Windows, some network file systems) cannot open or fsync a directory;
    // the renames are already visible, only their durability across power loss is weaker.
  } finally {
    await handle?.close().catch(() => {});
  }
}

/** The default Node implementations of AtomicFsOps. */
export const NODE_FS_OPS: Readonly<AtomicFsOps> = Object.freeze({
  writeNewFile: defaultWriteNewFile,
  rename: (from: string, to: string) => fsp.rename(from, to),
  link: (existing: string, newPath: string) => fsp.link(existing, newPath),
  copyFile: (from: string, to: string) => fsp.copyFile(from, to),
  unlink: (file: string) => fsp.unlink(file),
  mkdirp: async (dir: string) => {
    await fsp.mkdir(dir, { recursive: true });
  },
  syncDir: defaultSyncDir,
  exists: async (file: string) => {
    try {
      await fsp.lstat(file);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  },
});

/** Normalises AtomicData into a list of byte views (no copies of binary input). */
export function toChunks(data: AtomicData, what = 'data'): Uint8Array[] {
  if (typeof data === 'string') return [Buffer.from(data, 'utf8')];
  if (data instanceof Uint8Array) return [data];
  if (data instanceof ArrayBuffer) return [new Uint8Array(data)];
  if (Array.isArray(data)) {
    return data.map((c, i) => {
      if (c instanceof Uint8Array) return c;
      if (c instanceof ArrayBuffer) return new Uint8Array(c);
      throw new TypeError(`${what}[${i}] must be a Uint8Array or ArrayBuffer`);
    });
  }
  throw new TypeError(`${what} must be a string, Uint8Array, ArrayBuffer or an array of buffers`);
}

function siblingName(target: string, kind: 'tmp' | 'bak'): string {
  // Same directory as the target, so the final rename never crosses a file-system boundary.
  const tag = `${process.pid}-${randomBytes(6).toString('hex')}`;
  return path.join(path.dirname(target), `.${path.basename(target)}.${tag}.${kind}`);
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function removeQuietly(ops: AtomicFsOps, file: string): Promise<string | null> {
  try {
    await ops.unlink(file);
    return null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return `could not remove ${file}: ${errMessage(e)}`;
  }
}

/** Atomically replaces (or creates) one file with `data`. */
export async function writeFileAtomic(file: string, data: AtomicData, opts: AtomicWriteOptions = {}): Promise<void> {
  await writeFilesAtomic([{ path: file, data }], opts);
}

/**
 * Atomically replaces (or creates) several files as one commit; renames happen in array order,
 * so list the file that makes the set visible to readers last. See the module comment.
 */
export async function writeFilesAtomic(files: readonly AtomicFile[], opts: AtomicWriteOptions = {}): Promise<void> {
  const ops: AtomicFsOps = { ...NODE_FS_OPS, ...(opts.fsOps ?? {}) };
  if (!Array.isArray(files) || files.length === 0) {
    throw new Error('writeFilesAtomic: files must be a non-empty array of {path, data}');
  }
  const targets = files.map((f, i) => {
    if (!f || typeof f.path !== 'string' || f.path === '') {
      throw new Error(`writeFilesAtomic: files[${i}].path must be a non-empty string`);
    }
    return path.resolve(f.path);
  });
  const seen = new Set<string>();
  targets.forEach((t, i) => {
    if (seen.has(t)) throw new Error(`writeFilesAtomic: files[${i}].path ${t} appears twice`);
    seen.add(t);
  });
  const chunks = files.map((f, i) => toChunks(f.data, `writeFilesAtomic: files[${i}].data`));

  const dirs = [...new Set(targets.map((t) => path.dirname(t)))];
  if (opts.createDirs ?? true) {
    for (const d of dirs) await ops.mkdirp(d);
  }

  const temps = targets.map((t) => siblingName(t, 'tmp'));
  // backups[i]: hard link to the previous content of targets[i] (only for files renamed before
  // the last one: those are the ones a later failure must roll back). null = target was absent.
  const backups: (string | null)[] = targets.map(() => null);
  let renamed = 0;
  try {
    // Phase 1: every new file fully on disk under a temp name; nothing visible changes yet.
    for (let i = 0; i < targets.length; i++) {
      try {
        await ops.writeNewFile(temps[i], chunks[i]);
      } catch (e) {
        throw new Error(`writeFilesAtomic: writing ${targets[i]} failed (temp file ${temps[i]}): ${errMessage(e)}`, { cause: e });
      }
    }
    // Phase 2: backups of files that a later failed rename would have to restore.
    for (let i = 0; i < targets.length - 1; i++) {
      if (!(await ops.exists(targets[i]))) continue;
      const bak = siblingName(targets[i], 'bak');
      try {
        await ops.link(targets[i], bak);
      } catch {
        try {
          await ops.copyFile(targets[i], bak);
        } catch (e) {
          throw new Error(`writeFilesAtomic: could not back up ${targets[i]} before replacing it: ${errMessage(e)}`, { cause: e });
        }
      }
      backups[i] = bak;
    }
    // Phase 3: commit, in order.
    for (let i = 0; i < targets.length; i++) {
      try {
        await ops.rename(temps[i], targets[i]);
      } catch (e) {
        throw new Error(`writeFilesAtomic: replacing ${targets[i]} failed: ${errMessage(e)}`, { cause: e });
      }
      renamed = i + 1;
    }
    for (const d of dirs) await ops.syncDir(d);
  } catch (e) {
    // Roll back the renames that did happen, newest first, so the previous set is restored.
    const problems: string[] = [];
    for (let i = renamed - 1; i >= 0; i--) {
      try {
        const bak = backups[i];
        if (bak !== null) {
          await ops.rename(bak, targets[i]);
          backups[i] = null;
        } else {
          await ops.unlink(targets[i]);
        }
      } catch (re) {
        problems.push(`could not restore ${targets[i]}: ${errMessage(re)}`);
      }
    }
    if (renamed > 0) for (const d of dirs) await ops.syncDir(d);
    for (const t of temps) {
      const p = await removeQuietly(ops, t);
      if (p) problems.push(p);
    }
    for (const b of backups) {
      if (b === null) continue;
      const p = await removeQuietly(ops, b);
      if (p) problems.push(p);
    }
    if (problems.length > 0) {
      const base = e instanceof Error ? e.message : String(e);
      throw new Error(`${base}; cleanup after the failure was incomplete: ${problems.join('; ')}`, { cause: e });
    }
    throw e;
  }
  // Success: the backups are no longer needed.
  for (const b of backups) {
    if (b !== null) await removeQuietly(ops, b);
  }
}
