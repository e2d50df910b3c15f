// A process that queues acquires and is then killed with them still waiting
// (test/core/live-queue.spec.ts). Started through ChildWorkers: it connects and says it is
// ready; on the parent's start it sends `count` acquires to one shared limiter and waits to be
// killed, never settling them.
import { RateLimiter, RedisConnectionManager, type RateLimitConfig } from '../../lib/index.js';
import { tellParent } from './child-workers.js';

/** What the parent passes on the command line. */
export interface QueuedAcquiresSetup {
  readonly worker: number;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly model: string;
  readonly config: RateLimitConfig;
  readonly count: number;
}

const setup = JSON.parse(process.argv[2]) as QueuedAcquiresSetup;
const manager = new RedisConnectionManager({ url: setup.redisUrl });
const limiter = new RateLimiter(manager, setup.model, setup.config, { keyPrefix: setup.keyPrefix, failureMode: 'closed' });
process.once('message', () => {
  // Whether they have reached the store, the parent sees in getStatus.
  for (let i = 0; i < setup.count; i++) void limiter.acquire({ tokens: 0 }).catch(() => undefined);
});
await limiter.ping();
await tellParent({ type: 'ready' });
