/**
 * npm run export -- RUN_DIR OUT_DIR: exports the latest checkpoint of a `nl train --out RUN_DIR` run as a
 * tfjs LayersModel (OUT_DIR/model.json + weights.bin; tokenizer in its metadata), loadable with
 * LanguageModel.load / tf.loadLayersModel in Node (file://) and in a page (http(s)://). See run/export.ts.
 */
import 'reflect-metadata';
import { selectBackend } from '../core/backend';
import { exportRun } from '../run';

(async () => {
  const [runDir, outDir] = process.argv.slice(2);
  if (!runDir || !outDir) {
    process.stderr.write('usage: npm run export -- RUN_DIR OUT_DIR   (RUN_DIR: a `nl train --out` directory)\n');
    process.exit(2);
  }
  await selectBackend();
  const r = await exportRun(runDir, outDir);
  process.stdout.write(`exported step ${r.step} of ${runDir} to ${r.dir} (model.json + weights.bin, ${(r.bytes / 1024).toFixed(0)} KiB)\n`);
})().catch((e: Error) => {
  process.stderr.write(`export: ${e.message}\n`);
  process.exit(1);
});
