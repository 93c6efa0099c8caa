/**
 * Seeded randomness for the whole project (one implementation): a small deterministic uniform
 * generator, and a scoped swap of Math.random that makes tfjs weight initialisation reproducible.
 *
 * Why a Math.random swap: tfjs initialisers (glorotUniform, randomNormal, ...) called without a seed
 * draw one from Math.random, and the project's layers create their initialisers internally without
 * exposing a seed. Replacing Math.random for the synchronous duration of model construction (and
 * nothing else) seeds every initialiser of every layer, third-party ones included, without touching
 * the layers. Library code that needs a seed calls `withSeededRandom` only here and in
 * `LanguageModel` (option `seed`); do not call it around async code (another task could run while
 * Math.random is swapped).
 */

/** Deterministic uniform [0, 1) generator (mulberry32: 32-bit state, period 2^32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Runs the synchronous `fn` with Math.random replaced by `seededRandom(seed ^ 0x9e3779b9)` (the xor
 * keeps this stream apart from data streams seeded with the same number); restored afterwards, also
 * when `fn` throws. Nested calls restore correctly. A Promise returned by `fn` is refused: the swap
 * would leak into whatever runs while it is pending.
 */
export function withSeededRandom<T>(seed: number, fn: () => T): T {
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`withSeededRandom: seed must be an integer >= 0, got ${seed}`);
  const orig = Math.random;
  Math.random = seededRandom(seed ^ 0x9e3779b9);
  try {
    const out = fn();
    if (out instanceof Promise) throw new Error('withSeededRandom: fn must be synchronous (it returned a Promise)');
    return out;
  } finally {
    Math.random = orig;
  }
}
