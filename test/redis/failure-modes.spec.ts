import { Redis } from 'ioredis';
import { AcquireTimeoutError, RateLimiter, RedisConnectionManager, RedisUnavailableError, type RateLimiterEvent } from '../../lib/index.js';
import { modelKeys } from '../../lib/redis/keys.js';
import { recordingLogger } from '../support/backends.js';
import { closeClient, waitFor } from '../support/redis.js';
import { freePort, OwnRedisServer } from '../support/redis-server.js';

describe("failureMode 'local'", () => {
  it('limits each process to its share of every limit while Redis is unavailable', async () => {
    const manager = new RedisConnectionManager({ host: '127.0.0.1', port: await freePort() });
    const limiter = new RateLimiter(
      manager,
      'm',
      { tpm: 1000, rpm: 10 },
      { failureMode: 'local', expectedInstances: 2, logger: recordingLogger() },
    );
    try {
      const first = await limiter.acquire({ inputTokens: 300, outputTokens: 200 });
      expect(first.degraded).toBe(true);
      expect(first.recordId.startsWith('l.')).toBe(true);
      // half of 1000 tokens: 500 used, nothing more fits now
      await expect(limiter.acquire({ tokens: 1 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
      await expect(limiter.adjust(first.recordId, { actualOutput: 100 })).resolves.toMatchObject({ status: 'applied', tokensDelta: -100 });
      const second = await limiter.acquire({ tokens: 100 }, { maxWaitMs: 0 });
      expect(second).toMatchObject({ degraded: true, waitTime: 0 });
      // The fallback keeps records as the shared store does: settled once, released once.
      await expect(limiter.release(first.recordId)).resolves.toMatchObject({ status: 'settled', tokensFreed: 0 });
      await expect(limiter.acquire({ tokens: 1 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
      await expect(limiter.release(second.recordId)).resolves.toMatchObject({ status: 'released', tokensFreed: 100 });
      await expect(limiter.acquire({ tokens: 100 }, { maxWaitMs: 0 })).resolves.toMatchObject({ degraded: true });
    } finally {
      await manager.close();
    }
  });

  it('learns how many instances share the limits from their heartbeats, and hands back to Redis when it returns', async () => {
    const own = await OwnRedisServer.start();
    const admin = new Redis(own.url);
    const managers = [0, 1, 2].map(() => new RedisConnectionManager({ url: own.url }));
    const events: RateLimiterEvent[] = [];
    const limiters = managers.map(
      (m, i) =>
        new RateLimiter(
          m,
          'm',
          { tpm: 900 },
          { failureMode: 'local', logger: recordingLogger(), onEvent: i === 0 ? (e) => events.push(e) : undefined },
        ),
    );
    try {
      await Promise.all(limiters.map((l) => l.acquire({ tokens: 1 })));
      await waitFor(async () => (await admin.zcard(modelKeys('llmrl', 'm').instances)) === 3, 5000, 'three heartbeats');
      // each instance learns the count at its next beat (every second)
      await waitFor(() => limiters[0].liveInstanceCount === 3, 10_000, 'the first instance to count three');
      const mine = limiters[0];
      // The reading the fallback starts from: the window holds 4 tokens.
      await mine.acquire({ tokens: 1 });
      await own.kill();
      // a third of what the window had left: (900 - 4) / 3, rounded down
      await expect(mine.acquire({ tokens: 298 }, { maxWaitMs: 0 })).resolves.toMatchObject({ degraded: true, waitTime: 0 });
      await expect(mine.acquire({ tokens: 1 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
      await own.startAgain();
      await waitFor(() => !mine.degraded, 10_000, 'the probe to see Redis again');
      await expect(mine.acquire({ tokens: 1 })).resolves.toMatchObject({ degraded: false });
      expect(
        events.filter((e) => e.type === 'degraded' || e.type === 'recovered').map((e) => [e.type, 'failureMode' in e ? e.failureMode : '']),
      ).toEqual([
        ['degraded', 'local'],
        ['recovered', ''],
      ]);
    } finally {
      await Promise.all(managers.map((m) => m.close()));
      await closeClient(admin);
      await own.stop();
    }
  });
});

describe('while Redis is known to be down', () => {
  /** Runs `test` against a Redis of its own, which it may kill and start again, with a manager on it. */
  async function withOwnRedis(test: (own: OwnRedisServer, manager: RedisConnectionManager) => Promise<void>): Promise<void> {
    const own = await OwnRedisServer.start();
    const manager = new RedisConnectionManager({ url: own.url });
    try {
      await test(own, manager);
    } finally {
      await manager.close();
      await own.stop();
    }
  }

  it('answers from the failure mode without asking Redis again, until a probe sees it answer', () =>
    withOwnRedis(async (own, manager) => {
      const closed = new RateLimiter(manager, 'm', { tpm: 100 }, { failureMode: 'closed', logger: recordingLogger() });
      await closed.acquire({ tokens: 1 });
      await own.kill();
      await expect(closed.acquire({ tokens: 1 })).rejects.toThrow(RedisUnavailableError);
      expect(closed.degraded).toBe(true);
      // the second call does not wait for retries: it fails from the known outage
      const err = await closed.acquire({ tokens: 1 }).catch((e: unknown) => e);
      expect((err as Error).message).toMatch(/unavailable since/);
      await expect(closed.adjust('x.AAAAAAAAAAAA', { actualOutput: 1 })).resolves.toMatchObject({ status: 'degraded' });
      await own.startAgain();
      await waitFor(() => !closed.degraded, 10_000, 'the probe to see Redis again');
      await expect(closed.acquire({ tokens: 1 })).resolves.toMatchObject({ degraded: false });
    }));

  it("with failureMode 'local', carries reservations across both handovers and hears the provider in its share", () =>
    withOwnRedis(async (own, manager) => {
      const limiter = new RateLimiter(
        manager,
        'm',
        { tpm: 900 },
        { failureMode: 'local', expectedInstances: 3, logger: recordingLogger() },
      );
      await expect(limiter.acquire({ tokens: 100 })).resolves.toMatchObject({ degraded: false });
      await own.kill();
      // The share is a third of what the window had left when last read: (900 - 100) / 3, 266.
      await expect(limiter.acquire({ tokens: 150 })).resolves.toMatchObject({ degraded: true });
      await expect(limiter.acquire({ tokens: 117 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
      // The provider reports 20 left: 300 - (34 + 150) - 20, less 1% of 900, spent elsewhere.
      await expect(limiter.observe({ 'x-ratelimit-remaining-tokens': '20' })).resolves.toEqual({
        foreign: { tokens: 87, inputTokens: 0, outputTokens: 0, requests: 0 },
      });
      await own.startAgain();
      await waitFor(() => !limiter.degraded, 10_000, 'the probe to see Redis again');
      // Redis came back empty; the first acquire also charges the 150 admitted meanwhile.
      await expect(limiter.acquire({ tokens: 5 })).resolves.toMatchObject({ degraded: false });
      await expect(limiter.getStatus()).resolves.toMatchObject({ tokensUsed: 155, requestsUsed: 2 });
      await limiter.acquire({ tokens: 5 });
      expect((await limiter.getStatus()).tokensUsed).toBe(160);
    }));

  it("with failureMode 'local', a token bucket starts from its share of what the shared bucket had left", () =>
    withOwnRedis(async (own, manager) => {
      // 900 tokens refilling over 600 s: the share refills half a token a second.
      const limiter = new RateLimiter(
        manager,
        'm',
        { tpm: 900, windowSeconds: 600, algorithm: 'token-bucket', deliveryMarginMs: 0 },
        { failureMode: 'local', expectedInstances: 3, logger: recordingLogger() },
      );
      await expect(limiter.acquire({ tokens: 300 })).resolves.toMatchObject({ degraded: false });
      await own.kill();
      // A third of the 600 left: 200, and what refilled since the reading (a few tokens).
      await expect(limiter.acquire({ tokens: 200 }, { maxWaitMs: 0 })).resolves.toMatchObject({ degraded: true });
      await expect(limiter.acquire({ tokens: 20 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
    }));

  it("with failureMode 'closed', observe rejects at once during a known outage", () =>
    withOwnRedis(async (own, manager) => {
      const closed = new RateLimiter(manager, 'm', { tpm: 100 }, { failureMode: 'closed', logger: recordingLogger() });
      await closed.acquire({ tokens: 1 });
      await own.kill();
      await expect(closed.acquire({ tokens: 1 })).rejects.toThrow(RedisUnavailableError);
      await expect(closed.observe({ 'retry-after': '1' }, { status: 429 })).rejects.toThrow(/unavailable since/);
      await expect(closed.backOff()).rejects.toThrow(/unavailable since/);
    }));

  it('rejects a bad expectedInstances', () => {
    expect(() => new RateLimiter({} as never, 'm', { tpm: 1 }, { expectedInstances: 0 })).toThrow(/expectedInstances/);
  });
});
