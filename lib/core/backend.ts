import { RateLimitConfigError } from './errors.js';
import { sharedAcrossCopies } from './shared.js';
import type { LimiterStore } from './store.js';

/** Something that owns a store, such as `RedisConnectionManager`. */
export interface LimiterStoreOwner {
  readonly limiterStore: LimiterStore;
}

/** Turns a foreign object (an ioredis client, say) into a store, or returns undefined. */
export type BackendAdapter = (backend: object) => LimiterStore | undefined;

// Shared with the other build's copy, if loaded: either copy's RateLimiter accepts the clients
// either copy's Redis layer knows.
const adapters = sharedAcrossCopies<BackendAdapter[]>('backendAdapters', () => []);

/**
 * Lets a store layer teach `RateLimiter` about its clients without core depending on it; the
 * Redis layer registers ioredis clients this way when the package is imported.
 */
export function registerBackendAdapter(adapter: BackendAdapter): void {
  if (!adapters.includes(adapter)) adapters.push(adapter);
}

function isStore(value: object): value is LimiterStore {
  const v = value as Partial<LimiterStore>;
  return (v.kind === 'redis' || v.kind === 'memory') && typeof v.forModel === 'function' && typeof v.ping === 'function';
}

/** The store behind a `RateLimiter` backend argument. */
export function toLimiterStore(backend: unknown): LimiterStore {
  if (backend !== null && typeof backend === 'object') {
    if (isStore(backend)) return backend;
    const owned = (backend as Partial<LimiterStoreOwner>).limiterStore;
    if (owned && isStore(owned)) return owned;
    for (const adapter of adapters) {
      const store = adapter(backend);
      if (store) return store;
    }
  }
  throw new RateLimitConfigError(
    `backend must be a RedisConnectionManager, an ioredis Redis or Cluster client, or a MemoryStore, got ${
      backend === null ? 'null' : typeof backend === 'object' ? (backend.constructor?.name ?? 'object') : typeof backend
    }`,
  );
}

/** Makes the in-process store that failureMode 'local' falls back to. */
export type LocalStoreFactory = (clock: () => number) => LimiterStore;

const localStore = sharedAcrossCopies<{ make?: LocalStoreFactory }>('localStore', () => ({}));

/**
 * Lets the memory layer provide the fallback of failureMode 'local' without core depending on
 * it; lib/memory/memory-store.ts registers itself when the package is imported.
 */
export function registerLocalStore(make: LocalStoreFactory): void {
  localStore.make ??= make;
}

/** The factory of the in-process fallback store; throws when no store layer registered one. */
export function localStoreFactory(): LocalStoreFactory {
  if (!localStore.make) {
    throw new RateLimitConfigError(
      "failureMode 'local' needs the in-process store, which registers itself when the package is imported: import RateLimiter from 'nestjs-llm-rate-limiter' or 'nestjs-llm-rate-limiter/core'",
    );
  }
  return localStore.make;
}
