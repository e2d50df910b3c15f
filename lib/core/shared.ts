/**
 * One value per process, whichever build created it. An application can load this package twice,
 * once through `require()` (CommonJS build) and once through `import` (ESM build), for instance
 * when a CommonJS dependency requires it and the app imports it. State that both copies must see
 * (backend adapters, bound decorated methods, the copies' injection classes) lives on
 * `globalThis` under a `Symbol.for` key, which both copies compute alike. The key carries a shape
 * version, so a future copy with a different shape does not pick up this one's.
 */
export function sharedAcrossCopies<T>(name: string, create: () => T): T {
  const key = Symbol.for(`nestjs-llm-rate-limiter.v1.${name}`);
  const slots = globalThis as unknown as Record<symbol, T | undefined>;
  return (slots[key] ??= create());
}
