/**
 * Headless Chromium for the browser tests, the demo screenshot and nothing else. The browser comes from
 * the npm registry: the devDependency @sparticuz/chromium ships a compressed Chromium that it unpacks
 * into the temp directory on first use (no download at install or run time). NL_CHROMIUM=/path/to/chromium
 * uses another build instead (e.g. Debian's: apt-get install chromium, then NL_CHROMIUM=/usr/bin/chromium).
 * A browser that cannot start is an error naming the command that fixes it, never a skip.
 */
import type { Browser } from 'playwright-core';

const FIX =
  'run `npm install` (it installs the devDependency @sparticuz/chromium, which ships the browser), or install Debian\'s ' +
  'Chromium (`apt-get install chromium`) and set NL_CHROMIUM=/usr/bin/chromium';

/** Flags for this machine: no sandbox (root), no background networking (closed network), SwiftShader WebGL. */
const EXTRA_ARGS = ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

export async function launchChromium(): Promise<Browser> {
  let executablePath: string;
  let args: string[];
  const override = process.env.NL_CHROMIUM;
  if (override) {
    executablePath = override;
    args = ['--no-sandbox', '--headless=new', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist', ...EXTRA_ARGS];
  } else {
    try {
      const mod = (await import('@sparticuz/chromium')) as unknown as { default: { executablePath(): Promise<string>; args: string[] } };
      const chromium = mod.default;
      executablePath = await chromium.executablePath();
      args = [...chromium.args, ...EXTRA_ARGS];
    } catch (e) {
      throw new Error(`headless Chromium is not available (${(e as Error).message.split('\n')[0]}); ${FIX}`);
    }
  }
  let pw: typeof import('playwright-core');
  try {
    pw = await import('playwright-core');
  } catch (e) {
    throw new Error(`playwright-core is not installed (${(e as Error).message.split('\n')[0]}); run \`npm install\``);
  }
  try {
    return await pw.chromium.launch({ executablePath, args, headless: true, timeout: 60_000 });
  } catch (e) {
    throw new Error(`headless Chromium at ${executablePath} did not start (${(e as Error).message.split('\n')[0]}); ${FIX}`);
  }
}
