/** The browser-test page: selectBackend as a page calls it, then a probe (globalThis.nlProbe(backend, 'hope' | 'layers')). */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm'; // registers the wasm backend and its flags (selectBackend would load it too)
import { selectBackend } from 'nested-learning/core/backend';
import { runLayerProbe, runProbe, type ProbeResult } from './probe';

export type PageProbe = (backend: string, probe: 'hope' | 'layers', flags?: Record<string, boolean | number>) => Promise<ProbeResult & { reason: string; defaultBackendError: string | null; ms: number }>;
const page = globalThis as unknown as { nlProbe: PageProbe; nlReady: boolean };

tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false); // the single-threaded SIMD build, as in Node

page.nlProbe = async (backend: string, probe: 'hope' | 'layers', flags: Record<string, boolean | number> = {}) => {
  const t0 = performance.now();
  for (const [k, v] of Object.entries(flags)) tf.env().set(k, v);
  // selectBackend() with no argument reads NL_BACKEND from process.env in Node; in a page it must not throw.
  let defaultBackendError: string | null = null;
  try {
    if (backend === 'wasm') await selectBackend(undefined, () => {}, { wasmPaths: './' });
  } catch (e) {
    defaultBackendError = String((e as Error).message);
  }
  const info = await selectBackend(backend, () => {}, { wasmPaths: './' });
  const r = probe === 'hope' ? await runProbe() : await runLayerProbe();
  return { ...r, reason: info.reason, defaultBackendError, ms: performance.now() - t0 };
};
page.nlReady = true;
