/**
 * Builds a page bundle with esbuild: `entry` (TypeScript importing nested-learning like a user's page
 * would) -> OUT/bundle.js (IIFE), plus the tfjs-backend-wasm .wasm files and the given HTML. Used by
 * the demo (npm run demo:web) and the browser tests (integration-tests/browser).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface BuildOptions {
  /** TypeScript entry of the page. */
  entry: string;
  /** Output directory (created). */
  outDir: string;
  /** index.html contents (loads ./bundle.js). */
  html: string;
  /** Extra files to copy into outDir: name -> source path. */
  assets?: Record<string, string>;
  minify?: boolean;
}

const ROOT = path.resolve(__dirname, '../..');

export async function buildPage(opts: BuildOptions): Promise<{ outDir: string; bundleBytes: number }> {
  const esbuild = await import('esbuild');
  fs.mkdirSync(opts.outDir, { recursive: true });
  await esbuild.build({
    entryPoints: [opts.entry],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2020',
    conditions: ['nl-source'], // the library from source (a user's page resolves its dist the same way)
    outfile: path.join(opts.outDir, 'bundle.js'),
    minify: opts.minify ?? false,
    sourcemap: false,
    logLevel: 'error',
    absWorkingDir: ROOT,
    tsconfigRaw: { compilerOptions: { experimentalDecorators: true, useDefineForClassFields: false } },
  });
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm', { paths: [ROOT] }));
  for (const f of fs.readdirSync(wasmDir)) if (f.endsWith('.wasm')) fs.copyFileSync(path.join(wasmDir, f), path.join(opts.outDir, f));
  for (const [name, src] of Object.entries(opts.assets ?? {})) fs.copyFileSync(src, path.join(opts.outDir, name));
  fs.writeFileSync(path.join(opts.outDir, 'index.html'), opts.html);
  return { outDir: opts.outDir, bundleBytes: fs.statSync(path.join(opts.outDir, 'bundle.js')).size };
}
