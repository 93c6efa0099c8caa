/**
 * Plain constants of the run library with no imports, so that the command line can build its options
 * (`--preset` choices, `--max-bytes` bound) without loading tfjs, zod or the plugins (fast `--help`).
 * run/config.ts and run/data.ts re-export them.
 */
export const PRESET_NAMES = ['hope-tiny', 'hope-small', 'hope-attention-small', 'transformer-small', 'titans-small', 'deltanet-small', 'gated-deltanet-small'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** Limits of a files corpus (checked before reading). */
export const MAX_DATA_FILES = 100000;
export const MAX_DATA_BYTES = 256 * 2 ** 20;
