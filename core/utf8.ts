/** Strict UTF-8 checks (platform-neutral; core/io re-exports them for its guarded reads). */
/** Byte offset of the first invalid UTF-8 sequence in `b`, or -1 when all of it is valid UTF-8. */
export function firstInvalidUtf8(b: Uint8Array): number {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return -1;
  } catch {
    // locate it (slow path, only on failure)
  }
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f; // no UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    if (i + len > n) return i;
    if (b[i + 1] < lo || b[i + 1] > hi) return i;
    for (let k = 2; k < len; k++) if (b[i + k] < 0x80 || b[i + k] > 0xbf) return i;
    i += len;
  }
  return -1; // (the decoder disagreed; treat as valid)
}

/** Strict UTF-8 decoding: invalid bytes are an error naming `label` and the byte offset. A leading BOM is dropped. */
export function decodeUtf8Strict(b: Uint8Array, label: string): string {
  const at = firstInvalidUtf8(b);
  if (at >= 0) {
    const bytes = Array.from(b.subarray(at, Math.min(b.length, at + 4)), (x) => `0x${x.toString(16).padStart(2, '0')}`).join(' ');
    throw new Error(`${label}: invalid UTF-8 at byte ${at} (${bytes})`);
  }
  return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(b);
}
