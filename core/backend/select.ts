/**
 * Backend selection for apps, the CLI and tests. Library code never calls this: layers and
 * optimizers run on whatever backend the host program picked.
 *
 * NL_BACKEND = 'tensorflow' (tfjs-node-gpu, else tfjs-node, when installed) | 'wasm' (default) | 'cpu'.
 * In a page (no `process`): 'wasm' (default), 'webgl', 'webgpu' (after the page imports
 * @tensorflow/tfjs-backend-webgpu) or 'cpu'; pass {wasmPaths} where the .wasm files are served.
 */
import * as tf from '@tensorflow/tfjs';
import { registerProjectKernels } from './kernels';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu' | 'webgl' | 'webgpu';
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu', 'webgl', 'webgpu'];

export interface SelectBackendOptions {
  /** Where tfjs-backend-wasm fetches its .wasm files (a URL prefix ending in '/'); for pages. */
  wasmPaths?: string;
}

/** NL_BACKEND from the environment, or undefined (pages have no `process`). */
export function envBackend(): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.NL_BACKEND;
}

export interface BackendInfo {
  /** What was asked for (argument or NL_BACKEND). */
  requested: BackendName;
  /** tf.getBackend() after selection: 'tensorflow' | 'wasm' | 'cpu'. */
  active: string;
  /** One sentence: which backend runs and why. */
  reason: string;
  /** Project kernels registered for the active backend (see core/backend/kernels). */
  kernels: string[];
}

export function parseBackendName(value: string | undefined): BackendName {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '') return 'wasm';
  if ((BACKEND_NAMES as readonly string[]).includes(v)) return v as BackendName;
  throw new Error(
    `NL_BACKEND: unknown backend '${value}'; allowed values: ${BACKEND_NAMES.join(', ')}`,
  );
}

function tryRequire(id: string): boolean {
  if (typeof require !== 'function') return false; // a page: no optional Node packages
  try {
    // A computed id keeps bundlers and tsc from resolving optional peers at build time.
    const req: NodeRequire = require;
    req(id);
    return true;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') return false;
    throw new Error(`failed to load ${id}: ${(e as Error).message}`);
  }
}

async function loadWasm(wasmPaths?: string): Promise<void> {
  // Side-effect import: registers the 'wasm' backend factory with tfjs-core. A dynamic import, not
  // require(): a require() of a tfjs package makes bundlers (esbuild) take the packages' CommonJS "main"
  // builds, and a page bundle then holds two copies of tfjs-core (tensors without ops).
  const mod = (await import('@tensorflow/tfjs-backend-wasm')) as typeof import('@tensorflow/tfjs-backend-wasm') & { default?: typeof import('@tensorflow/tfjs-backend-wasm') };
  const setWasmPaths = mod.setWasmPaths ?? mod.default?.setWasmPaths;
  if (wasmPaths !== undefined && tf.findBackend('wasm') == null && setWasmPaths) setWasmPaths(wasmPaths);
}

async function activate(name: string): Promise<boolean> {
  const ok = await tf.setBackend(name);
  if (ok) await tf.ready();
  return ok && tf.getBackend() === name;
}

/**
 * Select and initialise a backend. Throws (never silently falls back) when the requested
 * backend cannot start, except 'tensorflow', which falls back to wasm with the reason stated.
 */
export async function selectBackend(
  requested: BackendName | string = envBackend() ?? 'wasm',
  log: (msg: string) => void = () => {},
  options: SelectBackendOptions = {},
): Promise<BackendInfo> {
  const want = parseBackendName(requested);
  let active: string;
  let reason: string;
  if (want === 'tensorflow') {
    const pkg = tryRequire('@tensorflow/tfjs-node-gpu')
      ? '@tensorflow/tfjs-node-gpu'
      : tryRequire('@tensorflow/tfjs-node')
        ? '@tensorflow/tfjs-node'
        : null;
    if (pkg && (await activate('tensorflow'))) {
      active = 'tensorflow';
      reason = `NL_BACKEND=tensorflow: using native libtensorflow from ${pkg}`;
    } else {
      await loadWasm(options.wasmPaths);
      if (!(await activate('wasm'))) throw new Error('backend: tensorflow unavailable and wasm failed to initialise');
      active = 'wasm';
      reason = pkg
        ? `NL_BACKEND=tensorflow: ${pkg} is installed but setBackend('tensorflow') failed; fell back to wasm`
        : 'NL_BACKEND=tensorflow: neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed; fell back to wasm';
    }
  } else if (want === 'wasm') {
    await loadWasm(options.wasmPaths);
    if (!(await activate('wasm'))) {
      throw new Error("backend: setBackend('wasm') returned false (is @tensorflow/tfjs-backend-wasm installed with its .wasm files?)");
    }
    active = 'wasm';
    reason = 'wasm (default): XNNPACK SIMD kernels plus the project kernels';
  } else if (want === 'webgl' || want === 'webgpu') {
    if (tf.findBackendFactory(want) == null) {
      throw new Error(
        want === 'webgpu'
          ? "backend: 'webgpu' is not registered; import '@tensorflow/tfjs-backend-webgpu' in the page first"
          : "backend: 'webgl' is not registered (it comes with @tensorflow/tfjs)",
      );
    }
    if (!(await activate(want))) {
      throw new Error(`backend: setBackend('${want}') failed (${want === 'webgpu' ? 'no navigator.gpu adapter' : 'no WebGL context'} here; Node has neither: use wasm)`);
    }
    active = want;
    reason = `${want}: GPU backend of the page`;
  } else {
    if (!(await activate('cpu'))) throw new Error("backend: setBackend('cpu') returned false");
    active = 'cpu';
    reason = 'NL_BACKEND=cpu: pure-JS reference backend (slow; for checks)';
  }
  const kernels = registerProjectKernels(active);
  const info: BackendInfo = { requested: want, active, reason, kernels };
  log(`[nested-learning] backend=${active} (${reason}); project kernels: ${kernels.length ? kernels.join(', ') : 'none'}`);
  return info;
}
