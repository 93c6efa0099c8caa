/**
 * A `file://` IOHandler for Node, for use with the pure-JS tfjs packages (tfjs-node, which ships
 * one, cannot be installed everywhere). On-disk layout is the one tfjs-node writes and reads:
 *
 *   dir/model.json   {modelTopology, weightsManifest: [{paths: ['weights.bin'], weights: [...]}],
 *                     format, generatedBy, convertedBy, [trainingConfig], [signature],
 *                     [userDefinedMetadata], [modelInitializer], [initializerSignature]}
 *   dir/weights.bin  all weight values back to back in manifest order (optimizer weights, with
 *                    group 'optimizer', follow the model weights when includeOptimizer is set)
 *
 * Saving is atomic (see atomic-write.ts): weights.bin is replaced first and model.json last, so a
 * failed save leaves the previous model loadable. Loading accepts 'file://dir/model.json' and
 * 'file://dir', any number of weight groups and shards, and checks every shard's byte length
 * against the manifest before tfjs decodes anything.
 */
import * as tf from '@tensorflow/tfjs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { writeFilesAtomic, toChunks, type AtomicFsOps } from './atomic-write';
import { describeByteMismatch, measureWeightBytes, validateWeightsManifest } from './weights-manifest';

export const FILE_URL_SCHEME = 'file://';
export const MODEL_JSON_FILENAME = 'model.json';
export const WEIGHTS_BINARY_FILENAME = 'weights.bin';

export interface FileSystemOptions {
  /** Replace file-system primitives used while saving (fault injection in tests). */
  fsOps?: Partial<AtomicFsOps>;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** Reads a file as bytes, turning "does not exist" into an error that names it and its role. */
async function readBytes(file: string, role: string, note = ''): Promise<Buffer> {
  const what = `${role} ${file}${note ? ` (${note})` : ''}`;
  try {
    return await fsp.readFile(file);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new Error(`fileSystem load: ${what} does not exist`);
    if (errnoCode(e) === 'EISDIR') throw new Error(`fileSystem load: ${what} is a directory, not a file`);
    throw new Error(`fileSystem load: cannot read ${what}: ${(e as Error).message}`, { cause: e });
  }
}

/** An ArrayBuffer holding exactly the bytes of `b` (Node may hand out views into a larger pool). */
function exactArrayBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** Manifest paths are plain names relative to model.json's directory; refuse escapes. */
function resolveWeightPath(dir: string, rel: string, jsonPath: string, at: string): string {
  if (path.isAbsolute(rel)) {
    throw new Error(`fileSystem load: ${jsonPath}: ${at} '${rel}' is absolute; weight paths must be relative to the model.json directory`);
  }
  const full = path.resolve(dir, rel);
  const back = path.relative(dir, full);
  if (back.startsWith('..') || path.isAbsolute(back)) {
    throw new Error(`fileSystem load: ${jsonPath}: ${at} '${rel}' points outside the model directory ${dir}`);
  }
  return full;
}

/** tf.io.IOHandler that saves to a directory and loads from a model.json (or its directory). */
export class FileSystemIOHandler implements tf.io.IOHandler {
  /** Brand checked by registerFileSystemRouter (instanceof fails across duplicate module copies). */
  readonly nlFileSystemHandler = true;
  /** Absolute path given to fileSystem(): the save directory, or model.json / its directory. */
  readonly path: string;
  private readonly fsOps: Partial<AtomicFsOps> | undefined;

  constructor(target: string, options: FileSystemOptions = {}) {
    if (typeof target !== 'string' || target === '') {
      throw new Error(`fileSystem: path must be a non-empty string, got ${JSON.stringify(target)}`);
    }
    this.path = path.resolve(target);
    this.fsOps = options.fsOps;
  }

  async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
    const dir = this.path;
    if (artifacts.modelTopology instanceof ArrayBuffer) {
      throw new Error(`fileSystem save (${dir}): binary (GraphDef) model topology is not supported; only JSON topologies`);
    }
    if (artifacts.getWeightStream !== undefined && artifacts.weightData === undefined) {
      throw new Error(`fileSystem save (${dir}): streamed weights (getWeightStream) are not supported; pass weightData`);
    }
    const specs = artifacts.weightSpecs ?? [];
    const chunks = artifacts.weightData === undefined ? [] : toChunks(artifacts.weightData, 'weightData');
    // Refuse to write a weights file that could not be read back.
    const validSpecs = validateWeightsManifest([{ paths: [WEIGHTS_BINARY_FILENAME], weights: specs }], `fileSystem save (${dir})`)[0].weights;
    const mismatch = describeByteMismatch(measureWeightBytes(validSpecs, chunks));
    if (mismatch !== null) {
      throw new Error(`fileSystem save (${dir}): the model's weightData is ${mismatch}; nothing was written`);
    }
    await this.createOrVerifyDirectory(dir);

    // Field names and order as tfjs-node writes them.
    const modelJSON: Record<string, unknown> = {
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: [WEIGHTS_BINARY_FILENAME], weights: specs }],
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
    };
    if (artifacts.trainingConfig != null) modelJSON.trainingConfig = artifacts.trainingConfig;
    if (artifacts.signature != null) modelJSON.signature = artifacts.signature;
    if (artifacts.userDefinedMetadata != null) modelJSON.userDefinedMetadata = artifacts.userDefinedMetadata;
    if (artifacts.modelInitializer != null) modelJSON.modelInitializer = artifacts.modelInitializer;
    if (artifacts.initializerSignature != null) modelJSON.initializerSignature = artifacts.initializerSignature;

    try {
      await writeFilesAtomic(
        [
          { path: path.join(dir, WEIGHTS_BINARY_FILENAME), data: chunks },
          { path: path.join(dir, MODEL_JSON_FILENAME), data: JSON.stringify(modelJSON) },
        ],
        { fsOps: this.fsOps, createDirs: false },
      );
    } catch (e) {
      throw new Error(`fileSystem save (${dir}): ${(e as Error).message}`, { cause: e });
    }
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
  }

  async load(): Promise<tf.io.ModelArtifacts> {
    const jsonPath = await this.resolveModelJSONPath();
    const text = (await readBytes(jsonPath, 'model file')).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new Error(`fileSystem load: ${jsonPath} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
    const modelJSON = this.checkModelJSON(parsed, jsonPath);

    const artifacts: tf.io.ModelArtifacts = {
      modelTopology: modelJSON.modelTopology as {} | undefined,
      format: modelJSON.format as string | undefined,
      generatedBy: modelJSON.generatedBy as string | undefined,
      convertedBy: modelJSON.convertedBy as string | null | undefined,
    };
    if (modelJSON.weightsManifest !== undefined) {
      const manifest = validateWeightsManifest(modelJSON.weightsManifest, jsonPath);
      const [weightSpecs, weightData] = await this.loadWeights(manifest, jsonPath);
      artifacts.weightSpecs = weightSpecs;
      artifacts.weightData = weightData;
    }
    if (modelJSON.trainingConfig != null) artifacts.trainingConfig = modelJSON.trainingConfig as tf.io.TrainingConfig;
    if (modelJSON.signature != null) artifacts.signature = modelJSON.signature as {};
    if (modelJSON.userDefinedMetadata != null) {
      artifacts.userDefinedMetadata = modelJSON.userDefinedMetadata as { [key: string]: {} };
    }
    if (modelJSON.modelInitializer != null) artifacts.modelInitializer = modelJSON.modelInitializer as {};
    if (modelJSON.initializerSignature != null) artifacts.initializerSignature = modelJSON.initializerSignature as {};
    return artifacts;
  }

  /** 'dir/model.json' as given, or 'dir' meaning dir/model.json. */
  private async resolveModelJSONPath(): Promise<string> {
    let info;
    try {
      info = await fsp.stat(this.path);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') throw new Error(`fileSystem load: model file ${this.path} does not exist`);
      throw new Error(`fileSystem load: cannot access ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    if (!info.isDirectory()) return this.path;
    const inside = path.join(this.path, MODEL_JSON_FILENAME);
    try {
      await fsp.stat(inside);
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') {
        throw new Error(`fileSystem load: model file ${inside} does not exist (${this.path} is a directory without a ${MODEL_JSON_FILENAME})`);
      }
      throw e;
    }
    return inside;
  }

  /** The parsed file must look like a tfjs model.json; say which field is wrong otherwise. */
  private checkModelJSON(parsed: unknown, jsonPath: string): Record<string, unknown> {
    const wrong = (why: string): never => {
      throw new Error(`fileSystem load: ${jsonPath} is not a tfjs model.json: ${why}`);
    };
    if (!isRecord(parsed)) wrong(`expected a JSON object, got ${Array.isArray(parsed) ? 'an array' : typeof parsed === 'object' ? 'null' : typeof parsed}`);
    const m = parsed as Record<string, unknown>;
    if (m.modelTopology === undefined && m.weightsManifest === undefined) {
      wrong(`it has neither 'modelTopology' nor 'weightsManifest' (fields found: ${Object.keys(m).join(', ') || 'none'})`);
    }
    if (m.modelTopology !== undefined && !isRecord(m.modelTopology)) wrong(`'modelTopology' must be a JSON object`);
    if (m.format !== undefined && typeof m.format !== 'string') wrong(`'format' must be a string`);
    if (m.generatedBy !== undefined && typeof m.generatedBy !== 'string') wrong(`'generatedBy' must be a string`);
    if (m.convertedBy !== undefined && m.convertedBy !== null && typeof m.convertedBy !== 'string') {
      wrong(`'convertedBy' must be a string or null`);
    }
    if (m.trainingConfig != null && !isRecord(m.trainingConfig)) wrong(`'trainingConfig' must be a JSON object`);
    if (m.userDefinedMetadata != null && !isRecord(m.userDefinedMetadata)) wrong(`'userDefinedMetadata' must be a JSON object`);
    return m;
  }

  /** Reads every shard of every group; checks each group's bytes against its specs. */
  private async loadWeights(
    manifest: tf.io.WeightsManifestConfig,
    jsonPath: string,
  ): Promise<[tf.io.WeightsManifestEntry[], tf.io.WeightData]> {
    const dir = path.dirname(jsonPath);
    const specs: tf.io.WeightsManifestEntry[] = [];
    const buffers: ArrayBuffer[] = [];
    for (let g = 0; g < manifest.length; g++) {
      const group = manifest[g];
      const files = group.paths.map((p, i) => resolveWeightPath(dir, p, jsonPath, `weightsManifest[${g}].paths[${i}]`));
      const shards: Uint8Array[] = [];
      for (let i = 0; i < files.length; i++) {
        shards.push(await readBytes(files[i], 'weights file', `weightsManifest[${g}].paths[${i}] of ${jsonPath}`));
      }
      const mismatch = describeByteMismatch(measureWeightBytes(group.weights, shards));
      if (mismatch !== null) {
        const which = files.length === 1 ? `weights file ${files[0]}` : `weights files ${files.join(', ')} (together)`;
        throw new Error(`fileSystem load: ${which} of ${jsonPath} is ${mismatch} (weightsManifest[${g}])`);
      }
      specs.push(...group.weights);
      for (const s of shards) buffers.push(exactArrayBuffer(s));
    }
    // One buffer stays a plain ArrayBuffer (what tfjs-node returns); shards go as a list, which
    // tfjs decodes without concatenating (CompositeArrayBuffer).
    return [specs, buffers.length === 1 ? buffers[0] : buffers];
  }

  private async createOrVerifyDirectory(dir: string): Promise<void> {
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch (e) {
      if (errnoCode(e) === 'EEXIST' || errnoCode(e) === 'ENOTDIR') {
        throw new Error(`fileSystem save: ${dir} (or one of its parents) exists and is not a directory`);
      }
      throw new Error(`fileSystem save: cannot create directory ${dir}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/**
 * IOHandler for a local path. Save: `target` is a directory (created if missing) receiving
 * model.json + weights.bin. Load: `target` is a model.json or a directory holding one.
 */
export function fileSystem(target: string, options: FileSystemOptions = {}): FileSystemIOHandler {
  return new FileSystemIOHandler(target, options);
}

/** Router for tf.io: 'file://<path>' -> fileSystem(<path>); anything else (or a list) -> null. */
export function fileSystemRouter(url: string | string[]): FileSystemIOHandler | null {
  if (typeof url !== 'string' || !url.startsWith(FILE_URL_SCHEME)) return null;
  return fileSystem(url.slice(FILE_URL_SCHEME.length));
}

// tfjs types routers as never returning null, but its registry skips null ("not my URL").
const asTfRouter = fileSystemRouter as (url: string | string[]) => tf.io.IOHandler;

export type FileRouterStatus =
  /** Our routers were added by this call. */
  | 'registered'
  /** Our routers were already there (earlier call, possibly from another copy of this module). */
  | 'already-registered'
  /** Another library (e.g. tfjs-node) already handles file://; ours stay out to avoid ambiguity. */
  | 'handled-elsewhere';

const PROBE_URL = `${FILE_URL_SCHEME}${path.join(path.sep, 'nl-io-router-probe', MODEL_JSON_FILENAME)}`;

function probe(kind: 'save' | 'load'): { ours: boolean; other: boolean } {
  const handlers = kind === 'save' ? tf.io.getSaveHandlers(PROBE_URL) : tf.io.getLoadHandlers(PROBE_URL);
  const ours = handlers.some((h) => (h as Partial<FileSystemIOHandler>).nlFileSystemHandler === true);
  return { ours, other: handlers.some((h) => (h as Partial<FileSystemIOHandler>).nlFileSystemHandler !== true) };
}

/**
 * Registers save and load routers for 'file://' URLs with tfjs, so model.save('file://dir') and
 * tf.loadLayersModel('file://dir/model.json') work. Idempotent: tfjs keeps every router it is
 * given and refuses a URL that two routers accept, so this checks the live registry (not a module
 * flag) before adding anything, per direction.
 */
export function registerFileSystemRouter(): FileRouterStatus {
  let added = false;
  let foreign = false;
  for (const kind of ['save', 'load'] as const) {
    const { ours, other } = probe(kind);
    if (ours) continue;
    if (other) {
      foreign = true;
      continue;
    }
    if (kind === 'save') tf.io.registerSaveRouter(asTfRouter);
    else tf.io.registerLoadRouter(asTfRouter);
    added = true;
  }
  if (added) return 'registered';
  return foreign ? 'handled-elsewhere' : 'already-registered';
}
