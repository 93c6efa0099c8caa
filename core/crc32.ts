/** CRC-32 of byte arrays (platform-neutral; core/io re-exports it for checkpoints and weight files). */
/** CRC-32 (IEEE 802.3, as zlib / PNG) of `b`; `crc` continues a previous value. */
export function crc32(b: Uint8Array, crc = 0): number {
  let t = CRC_TABLE;
  if (!t) {
    t = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      t[n] = c;
    }
    CRC_TABLE = t;
  }
  let c = ~crc;
  for (let i = 0; i < b.length; i++) c = t[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
let CRC_TABLE: Int32Array | null = null;
