/**
 * Issue 15, the browser: a page bundled with esbuild from the library's main entry runs in headless
 * Chromium (from the npm registry: @sparticuz/chromium; see app/web/chromium.ts) on wasm and on WebGL
 * (SwiftShader): it loads without console errors, selectBackend works in the page, a tiny HOPE trains
 * with the loss falling, and its logits equal the Node wasm backend's within tolerance. A browser that
 * cannot start fails the test with the command that fixes it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { buildPage } from '../../app/web/build';
import { launchChromium } from '../../app/web/chromium';
import { serveDir, type Served } from '../../app/web/serve';
import { PROBE_STEPS, runLayerProbe, runProbe, type ProbeResult } from './probe';
import type { PageProbe } from './page';

const HTML = '<!doctype html><html><head><meta charset="utf-8"><title>nested-learning browser test</title></head><body><script src="./bundle.js"></script></body></html>';

function maxRelErr(a: number[], b: number[]): number {
  let m = 0;
  const scale = Math.max(...b.map(Math.abs));
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / scale);
  return m;
}

describe('browser: headless Chromium (wasm, WebGL)', function () {
  this.timeout(120_000);
  let dir = '';
  let served: Served | null = null;
  let browser: Browser | null = null;
  let page: Page | null = null;
  const consoleErrors: string[] = [];
  const node: Record<'hope' | 'layers', ProbeResult | null> = { hope: null, layers: null };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-browser-'));
    await buildPage({ entry: path.join(__dirname, 'page.ts'), outDir: dir, html: HTML });
    served = await serveDir(dir);
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    await page.goto(served.url);
    await page.waitForFunction(() => (globalThis as unknown as { nlReady?: boolean }).nlReady === true, null, { timeout: 60_000 });
    expect(tf.getBackend()).to.equal('wasm'); // the mocha root hook's backend
    node.hope = await runProbe();
    node.layers = await runLayerProbe();
  });

  after(async () => {
    await browser?.close();
    await served?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  // HOPE on WebGL is not in the suite: SwiftShader compiles every distinct kernel as a shader on the CPU,
  // and the HOPE probe took 160-205 s there (2026-12-06); the layer probe takes ~12 s.
  const cases: Array<{ backend: string; probe: 'hope' | 'layers'; tol: number; lossTol: number }> = [
    { backend: 'wasm', probe: 'hope', tol: 1e-5, lossTol: 1e-3 },
    { backend: 'wasm', probe: 'layers', tol: 1e-5, lossTol: 1e-3 },
    { backend: 'webgl', probe: 'layers', tol: 1e-3, lossTol: 5e-2 },
  ];
  for (const c of cases) {
    it(`${c.backend}, ${c.probe === 'hope' ? 'a tiny HOPE language model (NestedTrainer)' : 'library layers in tf.sequential (fit)'}: trains with the loss falling, outputs equal Node wasm's`, async () => {
      const r = await page!.evaluate(([b, p]) => (globalThis as unknown as { nlProbe: PageProbe }).nlProbe(b, p as 'hope' | 'layers'), [c.backend, c.probe]);
      const ref = node[c.probe]!;
      expect(r.backend).to.equal(c.backend);
      if (c.backend === 'wasm') expect(r.defaultBackendError).to.equal(null); // selectBackend() with no process.env
      expect(r.losses).to.have.length(PROBE_STEPS);
      expect(r.losses.every(Number.isFinite)).to.equal(true);
      expect(r.losses[PROBE_STEPS - 1]).to.be.lessThan(r.losses[0] * 0.9);
      if (c.probe === 'hope') expect(r.leaked).to.equal(0); // (fit keeps a few tensors of its own)
      expect(r.logits.length).to.equal(ref.logits.length);
      const err = maxRelErr(r.logits, ref.logits);
      expect(err, `${c.backend} outputs vs Node wasm (max error / max |output|)`).to.be.lessThan(c.tol);
      const lossErr = Math.abs(r.losses[PROBE_STEPS - 1] - ref.losses[PROBE_STEPS - 1]) / Math.abs(ref.losses[PROBE_STEPS - 1]);
      expect(lossErr, `${c.backend} final loss vs Node wasm (relative)`).to.be.lessThan(c.lossTol);
      expect(consoleErrors, 'console errors in the page').to.deep.equal([]);
    });
  }
});
