/**
 * Byte-level BPE (byte-pair encoding; Sennrich et al. 2016, byte-level as in GPT-2), written for this
 * project: small, deterministic, and exact on any bytes.
 *
 * Tokens 0..255 are the bytes themselves (byte fallback: every input encodes, nothing is ever
 * unknown); token 256 + i is merge i, the concatenation of its pair (a, b). decode(encode(x)) == x for
 * any byte string, so for any UTF-8 text.
 *
 * Pre-tokenization (both in training and encoding): the bytes are cut into chunks and merges never
 * cross a chunk boundary. A chunk is a run of whitespace, or an optional single leading space followed
 * by a run of one byte class: letters (ASCII letters and every byte >= 0x80, so multi-byte UTF-8
 * characters stay with words), digits, or other punctuation. A whitespace run followed by a word
 * leaves its last space to that word (" whale"). Chunks longer than `maxChunk` bytes are cut.
 *
 * Training (trainBpe): count the distinct chunks, then repeat: take the most frequent adjacent pair
 * (ties: the smaller (a, b), i.e. a * 65536 + b), record it as the next merge, and rewrite only the
 * chunks that contain it. Pair counts are updated incrementally (each rewritten chunk's old pairs
 * subtracted, its new pairs added) and the most frequent pair is found with a max-heap with lazy
 * deletion (an entry whose count is stale is dropped when popped), so a merge costs O(length of the
 * affected chunks + log(#pairs)) rather than a pass over the corpus. Stops at the requested size or
 * when no pair occurs twice.
 *
 * Encoding a chunk: repeatedly merge (every occurrence, left to right) the adjacent pair of lowest
 * merge rank, which reproduces training's rewriting of the same chunk; chunks are cached.
 */

export const BPE_FORMAT = 'nested-learning/bpe-tokenizer';
export const BPE_VERSION = 1;
/** Pair keys are a * 65536 + b, so token ids must stay below 65536. */
export const MAX_BPE_VOCAB = 65536;
export const DEFAULT_MAX_CHUNK = 64;
/** Largest maxChunk a tokenizer file may declare. */
export const MAX_CHUNK_LIMIT = 4096;

/** What is saved with a checkpoint (tokenizer.json). */
export interface BpeJson {
  format: typeof BPE_FORMAT;
  version: number;
  /** The configured vocabulary size (model rows); 256 + merges.length <= vocabSize. */
  vocabSize: number;
  maxChunk: number;
  /** merges[i] = [a, b]: token 256 + i is token a followed by token b (a, b < 256 + i). */
  merges: Array<[number, number]>;
}

const LETTER = 0;
const DIGIT = 1;
const SPACE = 2;
const PUNCT = 3;

function byteClass(b: number): number {
  if ((b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b >= 0x80) return LETTER;
  if (b >= 48 && b <= 57) return DIGIT;
  if (b === 32 || (b >= 9 && b <= 13)) return SPACE;
  return PUNCT;
}

/** Calls `emit(start, end)` for each pre-tokenization chunk of `bytes`, in order; the chunks tile the input. */
export function forEachChunk(bytes: Uint8Array, maxChunk: number, emit: (start: number, end: number) => void): void {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const start = i;
    let c = byteClass(bytes[i]);
    if (c === SPACE) {
      let j = i;
      while (j < n && byteClass(bytes[j]) === SPACE) j++;
      // leave a final ' ' to the following word: "  whale" -> " ", " whale"
      if (j < n && j - i > 1 && bytes[j - 1] === 32) j--;
      else if (j < n && j - i === 1 && bytes[i] === 32) {
        // a single space: the word takes it
        i++;
        c = byteClass(bytes[i]);
        while (i < n && byteClass(bytes[i]) === c && i - start < maxChunk) i++;
        emit(start, i);
        continue;
      }
      i = Math.min(j, start + maxChunk);
      emit(start, i);
      continue;
    }
    while (i < n && byteClass(bytes[i]) === c && i - start < maxChunk) i++;
    emit(start, i);
  }
}

/** A max-heap of (count, key): larger count first, then smaller key. Entries can be stale (lazy deletion). */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i];
    const cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i];
    this.counts[i] = this.counts[j];
    this.counts[j] = c;
    const k = this.keys[i];
    this.keys[i] = this.keys[j];
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): { count: number; key: number } | null {
    const n = this.keys.length;
    if (n === 0) return null;
    const top = { count: this.counts[0], key: this.keys[0] };
    this.swap(0, n - 1);
    this.counts.pop();
    this.keys.pop();
    let i = 0;
    const m = n - 1;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < m && this.above(l, best)) best = l;
      if (r < m && this.above(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
    return top;
  }
}

/** Every non-overlapping occurrence of (a, b), left to right, replaced by z. */
function mergeWord(w: readonly number[], a: number, b: number, z: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < w.length; i++) {
    if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
      out.push(z);
      i++;
    } else out.push(w[i]);
  }
  return out;
}

function checkVocab(vocabSize: number, where: string): void {
  if (!Number.isInteger(vocabSize) || vocabSize <= 256 || vocabSize > MAX_BPE_VOCAB) {
    throw new Error(`${where}: must be an integer in [257, ${MAX_BPE_VOCAB}] (256 byte tokens, then the merges), got ${vocabSize}`);
  }
}

/**
 * Learns up to `vocabSize - 256` merges from `bytes` (the training split). Deterministic: the same
 * bytes and sizes give the same merges. Stops early when no adjacent pair occurs twice.
 */
export function trainBpe(bytes: Uint8Array, vocabSize: number, opts: { maxChunk?: number } = {}): BpeTokenizer {
  checkVocab(vocabSize, 'data.vocabSize');
  const maxChunk = opts.maxChunk ?? DEFAULT_MAX_CHUNK;
  // 1. distinct chunks and their frequencies
  const freq = new Map<string, number>();
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  forEachChunk(bytes, maxChunk, (s, e) => {
    const k = buf.toString('latin1', s, e);
    freq.set(k, (freq.get(k) ?? 0) + 1);
  });
  const words: number[][] = [];
  const counts: number[] = [];
  for (const [k, c] of freq) {
    const w = new Array<number>(k.length);
    for (let i = 0; i < k.length; i++) w[i] = k.charCodeAt(i);
    words.push(w);
    counts.push(c);
  }
  // 2. pair counts, where each pair occurs (word indices; may hold stale entries), and the heap
  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  words.forEach((w, wi) => {
    for (let i = 0; i + 1 < w.length; i++) {
      const key = w[i] * MAX_BPE_VOCAB + w[i + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + counts[wi]);
      let s = where.get(key);
      if (!s) where.set(key, (s = new Set()));
      s.add(wi);
    }
  });
  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);
  // 3. merges
  const merges: Array<[number, number]> = [];
  while (256 + merges.length < vocabSize) {
    let top = heap.pop();
    while (top && pairCount.get(top.key) !== top.count) top = heap.pop(); // drop stale entries
    if (!top || top.count < 2) break;
    const a = Math.floor(top.key / MAX_BPE_VOCAB);
    const b = top.key % MAX_BPE_VOCAB;
    const z = 256 + merges.length;
    merges.push([a, b]);
    const delta = new Map<number, number>();
    const add = (key: number, d: number): void => {
      delta.set(key, (delta.get(key) ?? 0) + d);
    };
    for (const wi of where.get(top.key) ?? []) {
      const w = words[wi];
      const nw = mergeWord(w, a, b, z);
      if (nw.length === w.length) continue; // stale entry: the pair is no longer in this word
      const c = counts[wi];
      for (let i = 0; i + 1 < w.length; i++) add(w[i] * MAX_BPE_VOCAB + w[i + 1], -c);
      for (let i = 0; i + 1 < nw.length; i++) {
        const key = nw[i] * MAX_BPE_VOCAB + nw[i + 1];
        add(key, c);
        if (nw[i] === z || nw[i + 1] === z) {
          let s = where.get(key);
          if (!s) where.set(key, (s = new Set()));
          s.add(wi);
        }
      }
      words[wi] = nw;
    }
    where.delete(top.key);
    for (const [key, d] of delta) {
      if (d === 0) continue;
      const c = (pairCount.get(key) ?? 0) + d;
      if (c > 0) {
        pairCount.set(key, c);
        heap.push(c, key);
      } else pairCount.delete(key);
    }
  }
  return new BpeTokenizer({ format: BPE_FORMAT, version: BPE_VERSION, vocabSize, maxChunk, merges });
}

/** A trained byte-level BPE: encode / decode, token byte lengths (for bits per byte), JSON for checkpoints. */
export class BpeTokenizer {
  readonly kind = 'bpe' as const;
  /** The configured vocabulary size (model rows); ids are < 256 + merges.length <= vocabSize. */
  readonly vocabSize: number;
  readonly maxChunk: number;
  readonly merges: ReadonlyArray<readonly [number, number]>;
  /** byteLengths[id]: bytes token `id` stands for. */
  readonly byteLengths: Int32Array;
  private readonly pieces: Uint8Array[];
  private readonly rank = new Map<number, number>();
  private readonly cache = new Map<string, Int32Array>();

  constructor(json: BpeJson, p = 'tokenizer') {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${p}: must be a JSON object`);
    for (const k of Object.keys(json)) if (!['format', 'version', 'vocabSize', 'maxChunk', 'merges'].includes(k)) throw new Error(`${p}.${k}: unknown key`);
    if (json.format !== BPE_FORMAT) throw new Error(`${p}: format must be '${BPE_FORMAT}', got ${JSON.stringify(json.format)}`);
    if (json.version !== BPE_VERSION) throw new Error(`${p}: version ${json.version} is not supported (expected ${BPE_VERSION})`);
    checkVocab(json.vocabSize, `${p}.vocabSize`);
    if (!Number.isInteger(json.maxChunk) || json.maxChunk < 1 || json.maxChunk > MAX_CHUNK_LIMIT) throw new Error(`${p}.maxChunk: must be an integer in [1, ${MAX_CHUNK_LIMIT}], got ${json.maxChunk}`);
    if (!Array.isArray(json.merges) || 256 + json.merges.length > json.vocabSize) throw new Error(`${p}.merges: must be an array of at most vocabSize - 256 = ${json.vocabSize - 256} pairs`);
    this.vocabSize = json.vocabSize;
    this.maxChunk = json.maxChunk;
    this.pieces = Array.from({ length: 256 }, (_, i) => Uint8Array.of(i));
    json.merges.forEach((m, i) => {
      const z = 256 + i;
      if (!Array.isArray(m) || m.length !== 2 || !m.every((t) => Number.isInteger(t) && t >= 0 && t < z)) throw new Error(`${p}.merges[${i}]: must be a pair of earlier token ids (< ${z}), got ${JSON.stringify(m)}`);
      const key = m[0] * MAX_BPE_VOCAB + m[1];
      if (this.rank.has(key)) throw new Error(`${p}.merges[${i}]: duplicate of merges[${this.rank.get(key)}]`);
      this.rank.set(key, i);
      const a = this.pieces[m[0]];
      const b = this.pieces[m[1]];
      // merges never cross pre-split chunks, so no token is longer than maxChunk bytes (also bounds memory)
      if (a.length + b.length > json.maxChunk) throw new Error(`${p}.merges[${i}]: makes a token of ${a.length + b.length} bytes, longer than maxChunk (${json.maxChunk})`);
      const ab = new Uint8Array(a.length + b.length);
      ab.set(a);
      ab.set(b, a.length);
      this.pieces.push(ab);
    });
    this.merges = json.merges.map((m) => [m[0], m[1]] as const);
    this.byteLengths = Int32Array.from(this.pieces, (x) => x.length);
  }

  /** Tokens actually defined (256 + merges). */
  get tokenCount(): number {
    return this.pieces.length;
  }

  private encodeChunk(bytes: Uint8Array): Int32Array {
    let w: number[] = Array.from(bytes);
    for (;;) {
      let best = -1;
      for (let i = 0; i + 1 < w.length; i++) {
        const r = this.rank.get(w[i] * MAX_BPE_VOCAB + w[i + 1]);
        if (r !== undefined && (best < 0 || r < best)) best = r;
      }
      if (best < 0) break;
      const [a, b] = this.merges[best];
      w = mergeWord(w, a, b, 256 + best);
    }
    return Int32Array.from(w);
  }

  encodeBytes(bytes: Uint8Array): Int32Array {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const parts: Int32Array[] = [];
    let total = 0;
    forEachChunk(bytes, this.maxChunk, (s, e) => {
      const k = buf.toString('latin1', s, e);
      let ids = this.cache.get(k);
      if (!ids) {
        ids = this.encodeChunk(bytes.subarray(s, e));
        if (this.cache.size < 200_000) this.cache.set(k, ids);
      }
      parts.push(ids);
      total += ids.length;
    });
    const out = new Int32Array(total);
    let o = 0;
    for (const x of parts) {
      out.set(x, o);
      o += x.length;
    }
    return out;
  }

  encode(text: string): Int32Array {
    return this.encodeBytes(new Uint8Array(Buffer.from(text, 'utf8')));
  }

  /** The bytes of one token (streaming output). */
  tokenBytes(id: number): Uint8Array {
    const b = this.pieces[id];
    if (!b) throw new Error(`tokenizer: token id ${id} outside [0, ${this.pieces.length})`);
    return b;
  }

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let n = 0;
    for (let i = 0; i < ids.length; i++) n += this.tokenBytes(ids[i]).length;
    const out = new Uint8Array(n);
    let o = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.pieces[ids[i]];
      out.set(b, o);
      o += b.length;
    }
    return out;
  }

  /** Invalid UTF-8 (a cut multi-byte character) decodes to U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return Buffer.from(this.decodeBytes(ids)).toString('utf8');
  }

  toJSON(): BpeJson {
    return { format: BPE_FORMAT, version: BPE_VERSION, vocabSize: this.vocabSize, maxChunk: this.maxChunk, merges: this.merges.map((m) => [m[0], m[1]]) };
  }
}
