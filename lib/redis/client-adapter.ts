import { registerBackendAdapter } from '../core/backend.js';
import { DEFAULT_RETRY_CONFIG } from './retry.js';
import type { LimiterStore } from '../core/store.js';
import { RedisExecutor } from './executor.js';
import { RedisStore } from './redis-store.js';
import { duplicateOf, isRedisClient, type RedisClient } from './scripts.js';
import { watchErrors } from './watch-errors.js';

const stores = new WeakMap<object, LimiterStore>();

/**
 * A store over a client the application owns and configured itself. The limiter still applies
 * its own deadline (500 ms) and the default retry policy; the application closes the client.
 */
export function storeForClient(client: RedisClient): LimiterStore {
  let store = stores.get(client);
  if (!store) {
    let lastError: unknown;
    watchErrors(client, (error) => {
      lastError = error;
    });
    store = new RedisStore(
      new RedisExecutor(
        () => client,
        { retry: DEFAULT_RETRY_CONFIG, commandTimeoutMs: 500 },
        () => lastError,
      ),
      {
        // Closed by the store once nobody waits for a while, so the application's process can exit.
        subscriber: () => duplicateOf(client),
      },
    );
    stores.set(client, store);
  }
  return store;
}

registerBackendAdapter((backend) => (isRedisClient(backend) ? storeForClient(backend) : undefined));
