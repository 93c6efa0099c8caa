/** Mocha root hook: pick the backend once (NL_BACKEND, default wasm) before any spec runs. */
import 'reflect-metadata';
import { selectBackend } from '../backend/select';

export const mochaHooks = {
  async beforeAll(): Promise<void> {
    const info = await selectBackend(process.env.NL_BACKEND ?? 'wasm');
    // eslint-disable-next-line no-console
    console.log(`# ${info.reason}`);
  },
};
