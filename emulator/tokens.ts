/**
 * How the emulator turns text into token counts. A client estimates from characters (one token
 * per four characters, as OpenAI's admission estimate does); the emulated tokenizer lands within
 * a configurable relative error of that estimate, the same way for the same text every time.
 */

/** The character-based estimate: one token per 4 characters, rounded up. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** 32-bit FNV-1a of a string. */
export function fnv1a(text: string, seed = 0x811c9dc5): number {
  let hash = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * The emulated tokenizer: the estimate moved by up to `relativeError` either way (uniformly, by a
 * hash of the text), at least 1 token for non-empty text.
 */
export function countTokens(text: string, relativeError = 0): number {
  const estimate = estimateTokens(text);
  if (estimate === 0 || relativeError === 0) return estimate;
  const u = (fnv1a(text) / 0xffffffff) * 2 - 1;
  return Math.max(1, Math.round(estimate * (1 + relativeError * u)));
}

/** A small seeded PRNG (mulberry32): uniform in [0, 1). */
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
