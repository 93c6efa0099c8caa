/**
 * NlContinuumMemorySystem through NestedTrainer gives the values it gave before the pure CMS op
 * (plugins/cms/ops) replaced the layer's own update code: outputs, per-token losses, the whole carried
 * state (fast weights, accumulators, child states, transform state), level clocks and, for train(), the
 * variables after the outer steps. The numbers in testing/trainer-golden.json were recorded on the wasm
 * backend from the code before that refactor (commit of this test); re-record with NL_RECORD_CMS_GOLDEN=1
 * only when a change of the numbers is intended.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { assertClose } from '../../core/testing';
import { NestedModel } from '../../core';
import { NestedTrainer, tokenSquaredError, type PartialChunkPolicy } from '../scheduler';
import { makeCms, randBlock, randMat, rng, type CmsCase } from './testing/helpers';

const D = 3;
const H = 4;
const FILE = path.join(__dirname, 'testing', 'trainer-golden.json');
const RECORD = process.env.NL_RECORD_CMS_GOLDEN === '1';

interface GoldenCase {
  name: string;
  cms: CmsCase;
  batch: number;
  pieces: number[];
  policy: PartialChunkPolicy;
  /** 'memorize' the pieces as one context, or 'train' each piece as its own context (SGD outer step). */
  kind: 'memorize' | 'train';
  gradientMode?: 'full' | 'stop';
}

const CASES: GoldenCase[] = [
  {
    name: 'sequential, relu, periods 2/3/0, momentum on level 1, carry over pieces 5+6',
    cms: {
      levels: [{ period: 2, learningRate: 0.1 }, { period: 3, learningRate: 0.05, momentum: 0.5 }, { period: 0, learningRate: 0 }],
      variant: 'sequential',
      activation: 'relu',
      residual: true,
      hidden: H,
      transforms: [undefined, { transform: 'momentum', config: { learningRate: 1, beta: 0.5 } }, undefined],
    },
    batch: 2,
    pieces: [5, 6],
    policy: 'carry',
    kind: 'memorize',
  },
  {
    name: 'nested, tanh, periods 4/2, flush over pieces 5+4',
    cms: { levels: [{ period: 4, learningRate: 0.2 }, { period: 2, learningRate: 0.1 }], variant: 'nested', activation: 'tanh', residual: true, hidden: H },
    batch: 2,
    pieces: [5, 4],
    policy: 'flush',
    kind: 'memorize',
  },
  {
    name: 'independent, tanh, no bias, periods 2/3, train 2 contexts (full meta-gradients)',
    cms: { levels: [{ period: 2, learningRate: 0.1 }, { period: 3, learningRate: 0.1 }], variant: 'independent', activation: 'tanh', residual: true, hidden: H, mix: [0.7, -0.4], useBias: false },
    batch: 2,
    pieces: [7, 7],
    policy: 'carry',
    kind: 'train',
  },
  {
    name: 'sequential, linear, no residual, periods 3/0, train 2 contexts (stop), flush',
    cms: { levels: [{ period: 3, learningRate: 0.3 }, { period: 0, learningRate: 0 }], variant: 'sequential', activation: 'linear', residual: false, hidden: 2 },
    batch: 3,
    pieces: [4, 4],
    policy: 'flush',
    kind: 'train',
    gradientMode: 'stop',
  },
];

type Json = Record<string, unknown>;

function runCase(c: GoldenCase, seed: number): Json {
  const r = rng(seed);
  const init = c.cms.levels.map(() => randBlock(r, D, c.cms.hidden, c.cms.useBias ?? true));
  const cms = makeCms(c.cms, init, D, `golden${seed}`);
  const train = c.kind === 'train';
  const tr = new NestedTrainer(new NestedModel([cms]), {
    loss: tokenSquaredError,
    partialChunk: c.policy,
    gradientMode: c.gradientMode ?? 'full',
    ...(train ? { optimizer: tf.train.sgd(0.05) } : {}),
  });
  const out: Json = { outputs: [], tokenLosses: [], losses: [], clocks: [] };
  c.pieces.forEach((n, i) => {
    const x = tf.tensor3d(Array.from({ length: c.batch }, () => randMat(r, n, D, 1)));
    const y = tf.tensor3d(Array.from({ length: c.batch }, () => randMat(r, n, D, 1)));
    const res = train ? tr.train(x, y, { collect: true }) : tr.memorize(x, y, { newContext: i === 0, collect: true });
    (out.outputs as unknown[]).push(res.outputs!.arraySync());
    (out.tokenLosses as unknown[]).push(res.tokenLosses!.arraySync());
    (out.losses as number[]).push(res.loss);
    (out.clocks as unknown[]).push(tr.levelClocks().map((k) => [k.tokensSeen, k.updatesFired, k.tokensPending]));
    tf.dispose([x, y, res.outputs!, res.tokenLosses!]);
  });
  const st = tr.memoryState(0)!;
  out.state = Object.fromEntries(Object.keys(st).sort().map((k) => [k, st[k].arraySync()]));
  out.variables = cms.weights.map((w) => w.read().arraySync());
  tr.dispose();
  for (const w of cms.weights) w.dispose();
  return out;
}

describe('plugin cms: NlContinuumMemorySystem through NestedTrainer equals the values recorded before the pure op', () => {
  const golden: Record<string, Json> = RECORD || !fs.existsSync(FILE) ? {} : JSON.parse(fs.readFileSync(FILE, 'utf8'));
  after(() => {
    if (RECORD) fs.writeFileSync(FILE, JSON.stringify(golden) + '\n');
  });
  CASES.forEach((c, i) => {
    it(c.name, () => {
      const got = runCase(c, 100 + i);
      if (RECORD) {
        golden[c.name] = got;
        return;
      }
      const want = golden[c.name];
      expect(want, `no recorded values for '${c.name}' in ${FILE}`).to.not.equal(undefined);
      expect(Object.keys(got.state as Json)).to.deep.equal(Object.keys(want.state as Json), 'state keys');
      expect(got.clocks).to.deep.equal(want.clocks, 'level clocks');
      const tol = { rtol: 1e-5, atol: 1e-6 };
      assertClose(got.losses as number[], want.losses as number[], { ...tol, name: 'losses' });
      (want.outputs as number[][][][]).forEach((o, p) => assertClose((got.outputs as number[][][][])[p], o, { ...tol, name: `outputs of piece ${p}` }));
      (want.tokenLosses as number[][][]).forEach((o, p) => assertClose((got.tokenLosses as number[][][])[p], o, { ...tol, name: `token losses of piece ${p}` }));
      for (const [k, v] of Object.entries(want.state as Record<string, number[]>)) assertClose((got.state as Record<string, number[]>)[k], v, { ...tol, name: `state ${k}` });
      (want.variables as number[][]).forEach((v, j) => assertClose((got.variables as number[][])[j], v, { ...tol, name: `variable ${j}` }));
    });
  });
});
