/** Mocha root hook: pick the backend once (NL_BACKEND, default wasm) before any spec runs. */
import 'reflect-metadata';
import { selectBackend } from '../backend/select';
import { registerFileSystemRouter } from '../io';

// Tests save to file:// as Node programs do after importing nested-learning/node (createRuntime no longer registers it).
registerFileSystemRouter();

// `nl train` in tests runs on this thread unless a test asks for workers (run/parallel.test.ts does)
process.env.NL_WORKERS ??= '1';

export const mochaHooks = {
  async beforeAll(): Promise<void> {
    const info = await selectBackend(process.env.NL_BACKEND ?? 'wasm');
    // eslint-disable-next-line no-console
    console.log(`# ${info.reason}`);
  },
};
