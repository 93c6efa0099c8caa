/** core/io/read: regular files only, size bound before reading, strict UTF-8 with byte offsets, JSON errors name the file, CRC-32. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { crc32, firstInvalidUtf8, readJsonFile, readRegularFile, readTextFile } from './read';

describe('core/io read', () => {
  let dir = '';
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-read-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses folders, devices, FIFOs and oversized files without reading them; errors name the file', () => {
    const f = path.join(dir, 'a.txt');
    fs.writeFileSync(f, 'hello');
    expect(readRegularFile(f, { maxBytes: 5 }).toString()).to.equal('hello');
    expect(() => readRegularFile(f, { maxBytes: 4 })).to.throw(/a\.txt'?: 5 bytes, more than the limit of 4/);
    expect(() => readRegularFile(dir, { maxBytes: 10 })).to.throw(/is a folder/);
    fs.symlinkSync('/dev/zero', path.join(dir, 'zero'));
    expect(() => readRegularFile(path.join(dir, 'zero'), { maxBytes: 10 })).to.throw(/zero'?: is a character device, not a regular file/);
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    expect(() => readRegularFile(path.join(dir, 'fifo'), { maxBytes: 10 })).to.throw(/fifo'?: is a FIFO/); // no hang
    fs.symlinkSync(path.join(dir, 'l2'), path.join(dir, 'l1'));
    fs.symlinkSync(path.join(dir, 'l1'), path.join(dir, 'l2'));
    expect(() => readRegularFile(path.join(dir, 'l1'), { maxBytes: 10 })).to.throw(/l1'?: is a symbolic link loop/);
    expect(() => readRegularFile(path.join(dir, 'none'), { maxBytes: 10 })).to.throw(/none'?: does not exist/);
  });

  it('strict UTF-8: the first invalid byte offset agrees with TextDecoder on random and edge-case bytes', () => {
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let k = 0; k < 300; k++) {
      const b = Uint8Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => (rnd() < 0.6 ? 0x20 + Math.floor(rnd() * 90) : 0x80 + Math.floor(rnd() * 128)));
      let valid = true;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(b);
      } catch {
        valid = false;
      }
      const at = firstInvalidUtf8(b);
      expect(at === -1, `${Array.from(b)}`).to.equal(valid);
      if (!valid) expect(() => new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(0, at))).to.not.throw(); // everything before it is valid
    }
    for (const [bytes, at] of [[[0x61, 0x80], 1], [[0xc0, 0xaf], 0], [[0xed, 0xa0, 0x80], 0], [[0x61, 0xe2, 0x82], 1], [[0xf4, 0x90, 0x80, 0x80], 0], [[0xe2, 0x82, 0xac], -1]] as const) {
      expect(firstInvalidUtf8(Uint8Array.from(bytes))).to.equal(at);
    }
    const f = path.join(dir, 'bad.txt');
    fs.writeFileSync(f, Buffer.from([0x61, 0x62, 0xff, 0x63]));
    expect(() => readTextFile(f, { maxBytes: 100 })).to.throw(/bad\.txt'?: invalid UTF-8 at byte 2 \(0xff 0x63\)/);
    fs.writeFileSync(f, '{"a": ');
    expect(() => readJsonFile(f, { maxBytes: 100 })).to.throw(/bad\.txt'?: not valid JSON/);
  });

  it('crc32 matches the standard check value', () => {
    expect(crc32(Buffer.from('123456789'))).to.equal(0xcbf43926);
    expect(crc32(new Uint8Array(0))).to.equal(0);
  });
});
