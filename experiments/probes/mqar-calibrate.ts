/**
 * MQAR budget calibration: runs the mqar experiment's full config for the given kinds with a test-accuracy
 * learning curve (mean over the in-range pair counts every `--every` steps) and prints the rows as JSON
 * lines (one per kind and pair count; the curve is on every row).
 *
 *   node -r ts-node/register/transpile-only experiments/probes/mqar-calibrate.ts --kinds deltanet,transformer --steps 3000 --every 250 \
 *     [--seed 1] [--mixer '{"staticK":true}']   (--mixer: fields merged into every kind's mixer config)
 *     [--mixer-spec '{"className":"NlSelfModifyingTitans","config":{"numHeads":2,"chunkSize":8,"memChunkSize":8}}'] (replaces the mixer)
 *     [--ffn '{"className":"NlGatedMlp","config":{"expansion":2.6667}}']   (replaces the block's ffn)
 */
import { selectBackend } from '../../core/backend';
import { mqar, type MqarConfig } from '../mqar';
import type { ModelKind } from '../models';
import type { LayerSpec } from '../../plugins/hope';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt;
}

async function main(): Promise<void> {
  await selectBackend('wasm');
  const steps = Number(arg('steps', '3000'));
  const every = Number(arg('every', '250'));
  const lr = Number(arg('lr', '0.003'));
  const seed = Number(arg('seed', '1'));
  for (const [name, v] of Object.entries({ steps, every, lr, seed })) if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: expected a positive number`);
  const json = (flag: string): Record<string, unknown> | undefined => {
    try {
      return JSON.parse(arg(flag, 'null')) ?? undefined;
    } catch (e) {
      throw new Error(`--${flag}: not JSON: ${(e as Error).message}`);
    }
  };
  const mixer = json('mixer');
  const mixerSpec = json('mixer-spec') as LayerSpec | undefined;
  const ffn = json('ffn') as LayerSpec | undefined;
  const full = mqar.config('full');
  const cfg: MqarConfig = { ...full, sizes: { ...full.sizes, ...(mixer ? { mixer } : {}), ...(mixerSpec ? { mixerSpec } : {}), ...(ffn ? { ffn } : {}) }, kinds: arg('kinds', 'deltanet,transformer').split(',') as ModelKind[], steps, evalEvery: every, learningRate: lr, learningRateByKind: {}, seeds: [1] };
  const res = await mqar.run.call({ ...mqar, config: () => cfg }, { smoke: false, out: '', seed, log: (l) => process.stderr.write(`${l}\n`) });
  const patch = { ...(mixer ? { mixer } : {}), ...(mixerSpec ? { mixerSpec } : {}), ...(ffn ? { ffn } : {}) };
  for (const r of res.rows) console.log(JSON.stringify({ ...r, lr, ...patch, date: new Date().toISOString() }));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
