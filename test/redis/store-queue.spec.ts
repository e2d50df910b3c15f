import { Redis } from 'ioredis';
import { DEFAULT_RETRY_CONFIG } from '../../lib/redis/retry.js';
import { RedisExecutor } from '../../lib/redis/executor.js';
import { modelKeys } from '../../lib/redis/keys.js';
import { RedisStore } from '../../lib/redis/redis-store.js';
import { closeClient, inspector, redisUrl, waitFor } from '../support/redis.js';
import { storeQueueSpec } from '../support/store-queue-spec.js';

// The memory store's port specification, run against the Lua scripts: the scripts read the
// spec's clock through their clock argument.
let client: Redis | undefined;
let store: RedisStore | undefined;
const connection = () => (client ??= inspector());

storeQueueSpec(
  'redis',
  (clock) => {
    store = new RedisStore(new RedisExecutor(connection, { retry: DEFAULT_RETRY_CONFIG, commandTimeoutMs: 5000 }), {
      clock,
      subscriber: () => new Redis(redisUrl(), { lazyConnect: true }),
    });
    return store;
  },
  {
    listening: (prefix, models) =>
      waitFor(
        async () => {
          const channels = models.map((model) => modelKeys(prefix, model).channel);
          const counts = (await connection().call('PUBSUB', 'NUMSUB', ...channels)) as (string | number)[];
          return channels.every((_, k) => Number(counts[2 * k + 1]) > 0);
        },
        10_000,
        'the subscriber to listen',
      ),
    close: async () => {
      await store?.close();
      if (client) await closeClient(client);
    },
  },
);
