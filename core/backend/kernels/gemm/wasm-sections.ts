/**
 * Minimal WebAssembly binary reader: the section list and the import/export/global entries, enough
 * for the build script and the tests to check the gemm module's safety properties (no data segment,
 * imports only env.memory, exported __stack_pointer) without a toolchain.
 */
import { createHash } from 'node:crypto';

/** SHA-256 of a source text with line endings normalised (a CRLF checkout hashes the same). */
export function sourceSha256(text: string): string {
  return createHash('sha256').update(text.replace(/\r\n/g, '\n')).digest('hex');
}

export interface WasmSection {
  /** 0 custom, 1 type, 2 import, 3 function, 5 memory, 6 global, 7 export, 10 code, 11 data, 12 data count. */
  id: number;
  start: number;
  size: number;
}

export interface WasmImport {
  module: string;
  name: string;
  /** 0 function, 1 table, 2 memory, 3 global. */
  kind: number;
}

export interface WasmExport {
  name: string;
  kind: number;
  index: number;
}

class Reader {
  constructor(
    private readonly bytes: Uint8Array,
    public pos: number,
  ) {}

  byte(): number {
    if (this.pos >= this.bytes.length) throw new Error('wasm reader: unexpected end of module');
    return this.bytes[this.pos++];
  }

  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 35) throw new Error('wasm reader: LEB128 too long');
    }
  }

  name(): string {
    const len = this.u32();
    const s = Buffer.from(this.bytes.subarray(this.pos, this.pos + len)).toString('utf8');
    this.pos += len;
    return s;
  }

  limits(): void {
    const flags = this.u32();
    this.u32();
    if (flags & 1) this.u32();
  }
}

/** Sections in order; throws on a bad magic/version or a section running past the end. */
export function wasmSections(bytes: Uint8Array): WasmSection[] {
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  if (bytes.length < 8 || magic.some((b, i) => bytes[i] !== b)) throw new Error('wasm reader: not a wasm v1 module');
  const r = new Reader(bytes, 8);
  const out: WasmSection[] = [];
  while (r.pos < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    if (start + size > bytes.length) throw new Error(`wasm reader: section ${id} runs past the end`);
    out.push({ id, start, size });
    r.pos = start + size;
  }
  return out;
}

function section(bytes: Uint8Array, id: number): Reader | null {
  const s = wasmSections(bytes).find((x) => x.id === id);
  return s === undefined ? null : new Reader(bytes, s.start);
}

export function wasmImports(bytes: Uint8Array): WasmImport[] {
  const r = section(bytes, 2);
  if (r === null) return [];
  const count = r.u32();
  const out: WasmImport[] = [];
  for (let i = 0; i < count; i++) {
    const module = r.name();
    const name = r.name();
    const kind = r.byte();
    if (kind === 0) r.u32();
    else if (kind === 1) {
      r.byte();
      r.limits();
    } else if (kind === 2) r.limits();
    else if (kind === 3) {
      r.byte();
      r.byte();
    } else throw new Error(`wasm reader: unknown import kind ${kind}`);
    out.push({ module, name, kind });
  }
  return out;
}

export function wasmExports(bytes: Uint8Array): WasmExport[] {
  const r = section(bytes, 7);
  if (r === null) return [];
  const count = r.u32();
  const out: WasmExport[] = [];
  for (let i = 0; i < count; i++) {
    const name = r.name();
    const kind = r.byte();
    const index = r.u32();
    out.push({ name, kind, index });
  }
  return out;
}
