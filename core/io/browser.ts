/**
 * nested-learning/core/io in a page (the package's "browser" export condition): the same names as
 * index.ts. The platform-neutral parts (weights-manifest checks, CRC-32, file names) are the real ones;
 * everything that touches files throws, naming what to use in a page instead. Node resolves index.ts.
 */
export * from './weights-manifest';
export { crc32 } from '../crc32';
export const FILE_URL_SCHEME = 'file://';
export const MODEL_JSON_FILENAME = 'model.json';
export const WEIGHTS_BINARY_FILENAME = 'weights.bin';

function nodeOnly(name: string): never {
  throw new Error(
    `nested-learning/core/io: ${name} reads or writes files and needs Node; in a page save and load models with ` +
      "tfjs's own handlers ('indexeddb://name', 'downloads://name', http(s) URLs, tf.io.browserFiles, tf.io.withSaveHandler)",
  );
}
const stub = (name: string) => (..._args: unknown[]): never => nodeOnly(name);

export const NODE_FS_OPS = Object.freeze({});
export const toChunks = stub('toChunks');
export const writeFileAtomic = stub('writeFileAtomic');
export const writeFilesAtomic = stub('writeFilesAtomic');
export const describeFsError = (e: unknown): string => String((e as Error)?.message ?? e);
export const fileKind = stub('fileKind');
export const readRegularFile = stub('readRegularFile');
export const readTextFile = stub('readTextFile');
export const readJsonFile = stub('readJsonFile');
export const fileSystem = stub('fileSystem');
export const fileSystemRouter = stub('fileSystemRouter');
export const registerFileSystemRouter = stub('registerFileSystemRouter');
export class FileSystemIOHandler {
  constructor() {
    nodeOnly('FileSystemIOHandler');
  }
}
export { firstInvalidUtf8, decodeUtf8Strict } from '../utf8';
