import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NODE_FS_OPS, writeFileAtomic, writeFilesAtomic, type AtomicFsOps } from './atomic-write';

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the promise to reject');
}

function injected(code: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`injected ${code}`);
  e.code = code;
  return e;
}

describe('core/io atomic-write', () => {
  let root = '';
  let n = 0;
  let dir = '';
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-atomic-'));
  });
  after(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });
  beforeEach(() => {
    dir = path.join(root, `case-${n++}`);
  });

  const a = () => path.join(dir, 'a.bin');
  const b = () => path.join(dir, 'b.json');
  /** Writes the "previous" pair of files and returns their bytes. */
  async function previous(): Promise<[Buffer, Buffer]> {
    await writeFilesAtomic([
      { path: a(), data: Uint8Array.from([1, 2, 3]) },
      { path: b(), data: '{"old":true}' },
    ]);
    return [fs.readFileSync(a()), fs.readFileSync(b())];
  }

  it('writes every data form, creates parent dirs, replaces content, leaves no temp files', async () => {
    const f = path.join(dir, 'nested', 'deeper', 'x.bin');
    await writeFileAtomic(f, 'héllo');
    expect(fs.readFileSync(f, 'utf8')).to.equal('héllo');
    await writeFileAtomic(f, Uint8Array.from([9, 8, 7]));
    expect([...fs.readFileSync(f)]).to.deep.equal([9, 8, 7]);
    await writeFileAtomic(f, Float32Array.from([1.5]).buffer);
    expect(fs.readFileSync(f).readFloatLE(0)).to.equal(1.5);
    // Chunk list written back to back, including a view into the middle of a larger buffer.
    const big = Uint8Array.from([0, 1, 2, 3, 4, 5]);
    await writeFileAtomic(f, [big.subarray(2, 4), new ArrayBuffer(0), Uint8Array.from([7]).buffer]);
    expect([...fs.readFileSync(f)]).to.deep.equal([2, 3, 7]);
    expect(fs.readdirSync(path.dirname(f))).to.deep.equal(['x.bin']);
  });

  it('writes and flushes every temp file before the first rename, renames in order, then syncs the directory', async () => {
    const log: string[] = [];
    const fsOps: Partial<AtomicFsOps> = {
      writeNewFile: async (file, chunks) => {
        await NODE_FS_OPS.writeNewFile(file, chunks);
        log.push(`write ${path.basename(file).split('.').slice(0, 3).join('.')}`);
      },
      rename: async (from, to) => {
        await NODE_FS_OPS.rename(from, to);
        log.push(`rename ${path.basename(to)}`);
      },
      syncDir: async (d) => {
        log.push(`syncDir ${d === dir}`);
      },
    };
    await previous();
    await writeFilesAtomic(
      [
        { path: a(), data: 'A' },
        { path: b(), data: 'B' },
      ],
      { fsOps },
    );
    expect(log).to.deep.equal(['write .a.bin', 'write .b.json', 'rename a.bin', 'rename b.json', 'syncDir true']);
    expect(fs.readFileSync(a(), 'utf8')).to.equal('A');
    expect(fs.readFileSync(b(), 'utf8')).to.equal('B');
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['a.bin', 'b.json']);
  });

  it('a failing write of the second temp file leaves both previous files byte-identical and no temp files', async () => {
    const [oldA, oldB] = await previous();
    const fsOps: Partial<AtomicFsOps> = {
      writeNewFile: async (file, chunks) => {
        if (path.basename(file).startsWith('.b.json')) {
          // Half-written temp file, then the disk "fills up".
          fs.writeFileSync(file, 'partial');
          throw injected('ENOSPC');
        }
        await NODE_FS_OPS.writeNewFile(file, chunks);
      },
    };
    const err = await rejection(
      writeFilesAtomic(
        [
          { path: a(), data: 'new A' },
          { path: b(), data: 'new B' },
        ],
        { fsOps },
      ),
    );
    expect(err.message).to.contain(`writing ${b()} failed`).and.contain('injected ENOSPC');
    expect(fs.readFileSync(a()).equals(oldA)).to.equal(true);
    expect(fs.readFileSync(b()).equals(oldB)).to.equal(true);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['a.bin', 'b.json']);
  });

  for (const linkWorks of [true, false]) {
    it(`a failing last rename rolls the first file back from its backup (${linkWorks ? 'hard link' : 'copy fallback'})`, async () => {
      const [oldA, oldB] = await previous();
      const fsOps: Partial<AtomicFsOps> = {
        rename: async (from, to) => {
          if (to === b()) throw injected('EIO');
          await NODE_FS_OPS.rename(from, to);
        },
        ...(linkWorks ? {} : { link: async () => Promise.reject(injected('EPERM')) }),
      };
      const err = await rejection(
        writeFilesAtomic(
          [
            { path: a(), data: 'new A' },
            { path: b(), data: 'new B' },
          ],
          { fsOps },
        ),
      );
      expect(err.message).to.contain(`replacing ${b()} failed`).and.contain('injected EIO');
      expect(fs.readFileSync(a()).equals(oldA)).to.equal(true);
      expect(fs.readFileSync(b()).equals(oldB)).to.equal(true);
      expect(fs.readdirSync(dir).sort()).to.deep.equal(['a.bin', 'b.json']);
    });
  }

  it('a failed commit into an empty directory removes the files it had already renamed', async () => {
    const fsOps: Partial<AtomicFsOps> = {
      rename: async (from, to) => {
        if (to === b()) throw injected('EIO');
        await NODE_FS_OPS.rename(from, to);
      },
    };
    await rejection(
      writeFilesAtomic(
        [
          { path: a(), data: 'new A' },
          { path: b(), data: 'new B' },
        ],
        { fsOps },
      ),
    );
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });

  it('reports a cleanup that could not finish', async () => {
    await previous();
    const fsOps: Partial<AtomicFsOps> = {
      writeNewFile: async (file, chunks) => {
        await NODE_FS_OPS.writeNewFile(file, chunks);
        if (path.basename(file).startsWith('.b.json')) throw injected('EIO');
      },
      unlink: async () => Promise.reject(injected('EACCES')),
    };
    const err = await rejection(writeFilesAtomic([{ path: a(), data: 'x' }, { path: b(), data: 'y' }], { fsOps }));
    expect(err.message).to.contain('cleanup after the failure was incomplete').and.contain('injected EACCES');
    // Remove the stray temp files this test left on purpose.
    for (const f of fs.readdirSync(dir)) if (f.endsWith('.tmp')) fs.unlinkSync(path.join(dir, f));
  });

  it('rejects bad arguments with the offending field', async () => {
    expect((await rejection(writeFilesAtomic([]))).message).to.contain('files must be a non-empty array');
    expect((await rejection(writeFilesAtomic([{ path: '', data: 'x' }]))).message).to.contain('files[0].path');
    const dup = path.join(dir, 'd');
    expect((await rejection(writeFilesAtomic([{ path: dup, data: 'x' }, { path: dup, data: 'y' }]))).message).to.contain(
      `files[1].path ${dup} appears twice`,
    );
    expect((await rejection(writeFileAtomic(dup, 42 as unknown as string))).message).to.contain('files[0].data must be');
    expect(fs.existsSync(dup)).to.equal(false);
  });
});
