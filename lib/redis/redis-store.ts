import { BUCKETS, RING_CAPACITY, RING_HORIZON_MS } from '../core/store.js';
import type {
  BackOffCommand,
  BackOffReply,
  Charge,
  ReconcileCommand,
  ModelSettings,
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
import { defineScripts, type RedisClient } from './scripts.js';
import { AcquireBatcher } from './acquire-batcher.js';

const num = Number;

/**
 * Limiter state in Redis, shared by every process that uses the same server. Each operation is
 * one script call (one round trip), timed by the Redis server's clock.
 */
export class RedisStore implements LimiterStore {
  readonly kind = 'redis' as const;

  constructor(private readonly executor: RedisExecutor) {}

  forModel(model: string, keyPrefix: string): ModelStore {
    const { window, bucket, ring, instances } = modelKeys(keyPrefix, model);
    const run = (operation: string, call: (client: RedisClient) => Promise<string[]>) =>
      this.executor.run(`${operation} ${model}`, (client) => {
        defineScripts(client);
        return call(client);
      });
    const limitsOf = (s: ModelSettings) => [s.limits.tokens, s.limits.inputTokens, s.limits.outputTokens, s.limits.requests];
    const ringArgs = [RING_HORIZON_MS, RING_CAPACITY];
    // Learned limits: the largest factor and the growth per window (0, 0 = the limits are fixed).
    const learnArgsOf = (s: ModelSettings) => (s.learn ? [s.learn.maxFactor, s.learn.increasePerWindow] : [0, 0]);
    const batcher = new AcquireBatcher(async (batch) => {
      const s = batch[0].settings;
      const args: (string | number)[] = [s.windowMs, BUCKETS, ...limitsOf(s), ...ringArgs, s.paceMs, ...learnArgsOf(s), batch.length];
      for (const c of batch) args.push(c.opId, c.cost.tokens, c.cost.inputTokens, c.cost.outputTokens, c.cost.requests, c.maxWaitMs);
      // Numbers come back as integers, statuses as strings.
      const r = (await run('acquire', (client) => client.llmrlAcquire(window, ring, ...args))) as unknown as (string | number)[];
      const nowMs = Number(r[0]);
      return batch.map((_, k) => {
        const at = 1 + k * 4;
        const slotMs = Number(r[at + 1]);
        return {
          status: r[at] as AcquireReply['status'],
          slotMs,
          waitMs: Math.max(0, slotMs - nowMs),
          queuePosition: Number(r[at + 2]),
          bucket: Number(r[at + 3]),
          nowMs,
        };
      });
    });
    return {
      acquire: async (c: AcquireCommand): Promise<AcquireReply> => {
        const s = c.settings;
        if (s.algorithm !== 'token-bucket') return batcher.submit(c);
        const cost = [c.cost.tokens, c.cost.inputTokens, c.cost.outputTokens, c.cost.requests];
        const r = await run('acquire', (client) =>
          client.llmrlTbAcquire(bucket, ring, c.opId, s.windowMs, s.bucketMs, ...cost, ...limitsOf(s), c.maxWaitMs, ...ringArgs, ...learnArgsOf(s)),
        );
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
        const s = c.settings;
        const delta = [c.delta.tokens, c.delta.inputTokens, c.delta.outputTokens];
        if (s.algorithm === 'token-bucket') {
          const r = await run('adjust', (client) =>
            client.llmrlTbSettle(bucket, ring, c.opId, 'adjust', c.adjustKey, ...delta, 0, ...limitsOf(s), s.windowMs, ...ringArgs),
          );
          return { status: r[0] as AdjustReply['status'], applied: r[0] === 'ok' ? c.delta : { tokens: 0, inputTokens: 0, outputTokens: 0 } };
        }
        const r = await run('adjust', (client) =>
          client.llmrlAdjust(window, ring, c.opId, c.adjustKey, c.bucket, ...delta, s.windowMs, BUCKETS, ...ringArgs, s.paceMs, ...limitsOf(s)),
        );
        return {
          status: r[0] as AdjustReply['status'],
          applied: { tokens: num(r[1]), inputTokens: num(r[2]), outputTokens: num(r[3]) },
        };
      },
      release: async (c: ReleaseCommand): Promise<ReleaseReply> => {
        const s = c.settings;
        const charged = [c.charged.tokens, c.charged.inputTokens, c.charged.outputTokens, c.charged.requests];
        const r = await run('release', (client) =>
          s.algorithm === 'token-bucket'
            ? client.llmrlTbSettle(bucket, ring, c.opId, c.mode, '', ...charged.map((x) => -x), ...limitsOf(s), s.windowMs, ...ringArgs)
            : client.llmrlRelease(window, ring, c.opId, c.mode, c.bucket, ...charged, s.windowMs, BUCKETS, ...ringArgs, s.paceMs, ...limitsOf(s)),
        );
        return { status: r[0] as ReleaseReply['status'] };
      },
      status: async (s: ModelSettings): Promise<StatusReply> => {
        const r = await run('status', (client) =>
          s.algorithm === 'token-bucket'
            ? client.llmrlTbStatus(bucket, ring, s.windowMs, ...limitsOf(s))
            : client.llmrlStatus(window, ring, s.windowMs, BUCKETS),
        );
        return {
          nowMs: num(r[0]),
          used: { tokens: num(r[1]), inputTokens: num(r[2]), outputTokens: num(r[3]), requests: num(r[4]) },
          queueDepth: num(r[5]),
          pausedUntil: num(r[6]),
          limitFactor: num(r[7]),
        };
      },
      backOff: async (s: ModelSettings, c: BackOffCommand): Promise<BackOffReply> => {
        const state = s.algorithm === 'token-bucket' ? bucket : window;
        const r = await run('backoff', (client) => client.llmrlBackoff(state, c.pauseMs, s.windowMs, c.cut, c.floor, c.settleMs, s.learn ? 1 : 0));
        return { pausedUntil: num(r[0]), limitFactor: num(r[1]) };
      },
      reconcile: async (s: ModelSettings, c: ReconcileCommand): Promise<Charge> => {
        const tokenBucket = s.algorithm === 'token-bucket';
        const rem = c.remaining;
        const t = c.tolerance;
        const r = await run('reconcile', (client) =>
          client.llmrlReconcile(tokenBucket ? bucket : window, s.algorithm, s.windowMs, tokenBucket ? s.bucketMs : BUCKETS,
            rem.tokens ?? -1, rem.inputTokens ?? -1, rem.outputTokens ?? -1, rem.requests ?? -1,
            ...limitsOf(s), t.tokens, t.inputTokens, t.outputTokens, t.requests),
        );
        return { tokens: num(r[0]), inputTokens: num(r[1]), outputTokens: num(r[2]), requests: num(r[3]) };
      },
      heartbeat: async (instanceId: string, ttlMs: number): Promise<number> => {
        const r = await this.executor.run(`heartbeat ${model}`, (client) => {
          defineScripts(client);
          return client.llmrlHeartbeat(instances, instanceId, ttlMs);
        });
        return num(r);
      },
    };
  }

  async ping(): Promise<number> {
    const started = performance.now();
    await this.executor.run('ping', (client) => client.ping());
    return performance.now() - started;
  }
}
