import * as tf from '@tensorflow/tfjs';
import { selectBackend, type BackendName } from '../backend/select';

/** Backends the test kit runs specs on. Native 'tensorflow' joins when NL_TEST_TENSORFLOW=1. */
export function testBackends(): BackendName[] {
  const list: BackendName[] = ['cpu', 'wasm'];
  if (process.env.NL_TEST_TENSORFLOW === '1') list.push('tensorflow');
  return list;
}

/**
 * Registers `describe(title [backend])` blocks, one per test backend; each switches to its
 * backend before its specs and restores the previous backend afterwards.
 */
export function forEachBackend(title: string, body: (backend: BackendName) => void): void {
  for (const backend of testBackends()) {
    describe(`${title} [${backend}]`, function () {
      let previous = '';
      before(async function () {
        previous = tf.getBackend();
        await selectBackend(backend);
      });
      after(async function () {
        if (previous && previous !== tf.getBackend()) await selectBackend(previous);
      });
      body(backend);
    });
  }
}

/** Runs `fn` with `backend` active, then restores the previous backend. */
export async function withBackend<T>(backend: BackendName, fn: () => T | Promise<T>): Promise<T> {
  const previous = tf.getBackend();
  await selectBackend(backend);
  try {
    return await fn();
  } finally {
    if (previous !== tf.getBackend()) await selectBackend(previous);
  }
}
