import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ByteTokenizer, SPLIT_BLOCK, loadCorpusText, loadDataset, splitTokens, trainBatch, validationBatches } from './data';

describe('cli data', () => {
  let dir = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-data-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('byte tokenizer round-trips UTF-8 text (multi-byte characters are several tokens)', () => {
    const tok = new ByteTokenizer();
    const ids = tok.encode('Ahab — Ishmael ✓');
    expect(Array.from(tok.encode('é'))).to.deep.equal([0xc3, 0xa9]);
    expect(tok.decode(ids)).to.equal('Ahab — Ishmael ✓');
  });

  it('bundled corpora load (moby-dick, sotu) with their sizes', () => {
    const m = loadCorpusText({ corpus: 'moby-dick' });
    expect(m.text).to.contain('Call me Ishmael');
    expect(m.text.length).to.be.greaterThan(1_000_000);
    const s = loadCorpusText({ corpus: 'sotu' });
    expect(s.documents).to.be.greaterThan(200);
  });

  it('split is deterministic, disjoint, every k-th block is validation, batches are pure functions of (seed, step)', () => {
    const tokens = new Uint8Array(10 * SPLIT_BLOCK).map((_, i) => Math.floor(i / SPLIT_BLOCK)); // block i holds the value i
    const { train, validation } = splitTokens(tokens, 0.2, 65);
    expect(validation.length).to.equal(2 * SPLIT_BLOCK); // blocks 4 and 9 (k = 5)
    expect(new Set(validation)).to.deep.equal(new Set([4, 9]));
    expect(train.length).to.equal(8 * SPLIT_BLOCK);
    expect(train.includes(4)).to.equal(false);
    const a = trainBatch(train, 7, 3, 16, 1);
    const b = trainBatch(train, 7, 3, 16, 1);
    const c = trainBatch(train, 8, 3, 16, 1);
    expect(a.inputs.arraySync()).to.deep.equal(b.inputs.arraySync());
    expect(a.inputs.arraySync()).to.not.deep.equal(c.inputs.arraySync());
    // targets are the inputs shifted by one token
    const text = Uint8Array.from({ length: 200 }, (_, i) => i);
    const w = trainBatch(text, 0, 2, 10, 3);
    const [xi, yi] = [w.inputs.arraySync(), w.targets.arraySync()];
    for (let r = 0; r < 2; r++) for (let j = 0; j < 10; j++) expect(yi[r][j]).to.equal(xi[r][j] + 1);
    const vb = validationBatches(validation, 2, 2, 16);
    expect(vb.length).to.equal(2);
    expect(vb[0].inputs.shape).to.deep.equal([2, 16]);
    tf.dispose([a.inputs, a.targets, b.inputs, b.targets, c.inputs, c.targets, w.inputs, w.targets, ...vb.flatMap((v) => [v.inputs, v.targets])]);
  });

  it('user files and folders: empty, binary and too-short inputs give clear errors', () => {
    const sub = path.join(dir, 'docs');
    fs.mkdirSync(sub);
    fs.writeFileSync(path.join(sub, 'a.txt'), 'x'.repeat(3000));
    fs.writeFileSync(path.join(sub, 'b.txt'), 'y'.repeat(3000));
    const ds = loadDataset({ corpus: 'files', paths: [sub], validationFraction: 0.1 }, 32);
    expect(ds.documents).to.equal(2);
    expect(ds.train.length + ds.validation.length).to.equal(6002);
    fs.writeFileSync(path.join(dir, 'empty.txt'), '');
    expect(() => loadCorpusText({ corpus: 'files', paths: [path.join(dir, 'empty.txt')] })).to.throw(/data\.paths: the files are empty/);
    fs.writeFileSync(path.join(dir, 'bin.dat'), Buffer.from([1, 2, 0, 3, 4]));
    expect(() => loadCorpusText({ corpus: 'files', paths: [path.join(dir, 'bin.dat')] })).to.throw(/data\.paths: '.*bin\.dat' looks binary/);
    expect(() => loadCorpusText({ corpus: 'files', paths: [path.join(dir, 'missing.txt')] })).to.throw(/data\.paths: '.*missing\.txt' does not exist/);
    fs.writeFileSync(path.join(dir, 'short.txt'), 'Call me Ishmael.');
    expect(() => loadDataset({ corpus: 'files', paths: [path.join(dir, 'short.txt')], validationFraction: 0.1 }, 64)).to.throw(/data: too short: 16 bytes .*training\.seqLength \+ 1 = 65/);
  });
});
