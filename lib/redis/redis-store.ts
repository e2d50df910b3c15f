import { BUCKETS, RING_CAPACITY, RING_HORIZON_MS } from '../core/store.js';
import type {
  AcquireCommand,
  AcquireReply,
  AdjustCommand,
  AdjustReply,
  LimiterStore,
  ModelStore,
  ReleaseCommand,
  ReleaseReply,
  StatusReply,
} from '../core/store.js';
import type { RedisExecutor } from './executor.js';
import { modelKeys } from './keys.js';
import { defineScripts } from './scripts.js';

const num = Number;

/**
 * Limiter state in Redis, shared by every process that uses the same server. Each operation is
 * one script call (one round trip), timed by the Redis server's clock.
 */
export class RedisStore implements LimiterStore {
  readonly kind = 'redis' as const;

  constructor(private readonly executor: RedisExecutor) {}

  forModel(model: string, keyPrefix: string): ModelStore {
    const { window, ring } = modelKeys(keyPrefix, model);
    const run = (operation: string, call: Parameters<RedisExecutor['run']>[1]) => this.executor.run(operation, call) as Promise<string[]>;
    return {
      acquire: async (c: AcquireCommand): Promise<AcquireReply> => {
        const r = await run(`acquire ${model}`, (client) => {
          defineScripts(client);
          return client.llmrlAcquire(window, ring, c.opId, c.windowMs, BUCKETS,
            c.cost.tokens, c.cost.inputTokens, c.cost.outputTokens, c.cost.requests,
            c.limits.tokens, c.limits.inputTokens, c.limits.outputTokens, c.limits.requests,
            c.maxWaitMs, RING_HORIZON_MS, RING_CAPACITY);
        });
        return {
          status: r[0] as AcquireReply['status'],
          slotMs: num(r[1]),
          waitMs: num(r[2]),
          queuePosition: num(r[3]),
          bucket: num(r[4]),
          nowMs: num(r[5]),
        };
      },
      adjust: async (c: AdjustCommand): Promise<AdjustReply> => {
        const r = await run(`adjust ${model}`, (client) => {
          defineScripts(client);
          return client.llmrlAdjust(window, ring, c.opId, c.adjustKey, c.bucket,
            c.delta.tokens, c.delta.inputTokens, c.delta.outputTokens,
            c.windowMs, BUCKETS, RING_HORIZON_MS, RING_CAPACITY);
        });
        return {
          status: r[0] as AdjustReply['status'],
          applied: { tokens: num(r[1]), inputTokens: num(r[2]), outputTokens: num(r[3]) },
        };
      },
      release: async (c: ReleaseCommand): Promise<ReleaseReply> => {
        const r = await run(`release ${model}`, (client) => {
          defineScripts(client);
          return client.llmrlRelease(window, ring, c.opId, c.mode, c.bucket,
            c.charged.tokens, c.charged.inputTokens, c.charged.outputTokens, c.charged.requests,
            c.windowMs, BUCKETS, RING_HORIZON_MS, RING_CAPACITY);
        });
        return { status: r[0] as ReleaseReply['status'] };
      },
      status: async (windowMs: number): Promise<StatusReply> => {
        const r = await run(`status ${model}`, (client) => {
          defineScripts(client);
          return client.llmrlStatus(window, ring, windowMs, BUCKETS);
        });
        return {
          nowMs: num(r[0]),
          used: { tokens: num(r[1]), inputTokens: num(r[2]), outputTokens: num(r[3]), requests: num(r[4]) },
          queueDepth: num(r[5]),
        };
      },
    };
  }

  async ping(): Promise<number> {
    const started = performance.now();
    await this.executor.run('ping', (client) => client.ping());
    return performance.now() - started;
  }
}
