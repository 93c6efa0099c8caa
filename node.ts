/**
 * nested-learning/node: the Node entry point. Everything of the main entry (importing it registers
 * every first-party class with tfjs serialisation), plus what needs Node: the `file://` IO handler,
 * registered on import as @tensorflow/tfjs-node does (model.save('file://dir'),
 * tf.loadLayersModel('file://dir/model.json')), atomic file writes and guarded reads (core/io), and
 * backend selection (core/backend: wasm with the project kernels, cpu, tfjs-node when installed).
 * The main entry, the registry and the plugins import no Node built-in, so they bundle for a page.
 */
import { registerFileSystemRouter } from './core/io';

export * from './index';
export {
  FILE_URL_SCHEME,
  MODEL_JSON_FILENAME,
  WEIGHTS_BINARY_FILENAME,
  FileSystemIOHandler,
  fileSystem,
  fileSystemRouter,
  registerFileSystemRouter,
  writeFileAtomic,
  writeFilesAtomic,
  readRegularFile,
  readTextFile,
  readJsonFile,
  type FileSystemOptions,
  type FileRouterStatus,
  type AtomicData,
  type AtomicFile,
  type AtomicWriteOptions,
  type ReadOptions,
} from './core/io';
export { selectBackend, parseBackendName, BACKEND_NAMES, type BackendName, type BackendInfo, type SelectBackendOptions } from './core/backend';

registerFileSystemRouter();
