import { setMaxListeners } from 'node:events';
import { Redis } from 'ioredis';
import {
  RateLimiter,
  RedisConfigurationError,
  RedisConnectionManager,
  RedisUnavailableError,
  type RateLimiterEvent,
} from '../../lib/index.js';
import { BUCKETS } from '../../lib/core/store.js';
import { modelKeys } from '../../lib/redis/keys.js';
import { recordingLogger } from '../support/backends.js';
import { closeClient, inspector, redisUrl, uniquePrefix } from '../support/redis.js';
import { freePort, OwnRedisServer } from '../support/redis-server.js';

const settings = {
  windowMs: 60_000,
  algorithm: 'sliding-window' as const,
  bucketMs: 60_000,
  paceMs: 0,
  limits: { tokens: 1000, inputTokens: 0, outputTokens: 0, requests: 0 },
};
const command = (opId: string, tokens = 100) => ({
  opId,
  settings,
  cost: { tokens, inputTokens: tokens, outputTokens: 0, requests: 1 },
  maxWaitMs: -1,
});

describe('RedisStore', () => {
  let manager: RedisConnectionManager;
  let redis: Redis;
  beforeAll(() => {
    manager = new RedisConnectionManager({ url: redisUrl() });
    redis = inspector();
  });
  afterAll(async () => {
    await manager.close();
    await closeClient(redis);
  });

  describe('keys', () => {
    it('keeps all keys of a model under one hash tag, with a TTL on every key', async () => {
      const prefix = uniquePrefix();
      const limiter = new RateLimiter(manager, 'gpt-4o', { tpm: 1000 }, { keyPrefix: prefix });
      const r = await limiter.acquire({ tokens: 10 });
      await limiter.adjust(r.recordId, { actualOutput: 3 });
      const keys = (await redis.keys(`*${prefix}*`)).sort();
      expect(keys).toEqual([`{${prefix}:gpt-4o}:o`, `{${prefix}:gpt-4o}:w`]);
      for (const key of keys) {
        const ttl = await redis.pttl(key);
        expect(ttl).toBeGreaterThan(60_000);
        expect(ttl).toBeLessThanOrEqual(3 * 60_000 + 30_000);
      }
    });

    it('encodes model names so odd names keep one valid tag and never share keys', () => {
      const names = ['a', '{', '}', '{}', 'a}b', 'a:b', 'a%3Ab', ':', 'a b', 'ünï😀', '\n', 'x'.repeat(1024), 'A', 'a.b'];
      const tags = names.map((name) => {
        const { window, ring } = modelKeys('llmrl', name);
        const tag = window.slice(0, window.lastIndexOf('}') + 1);
        expect(ring.startsWith(tag)).toBe(true);
        // exactly one '{' and the first '}' closes it: Redis Cluster hashes what lies between
        expect(tag.indexOf('{')).toBe(0);
        expect(tag.indexOf('}')).toBe(tag.length - 1);
        return tag;
      });
      expect(new Set(tags).size).toBe(names.length);
    });
  });

  describe('repeated and cancelled operations', () => {
    it('counts a repeated op id once and answers it with the original slot', async () => {
      const store = manager.limiterStore.forModel('m', uniquePrefix());
      const first = await store.acquire(command('AAAAAAAAAAAAAAAA'));
      const again = await store.acquire(command('AAAAAAAAAAAAAAAA'));
      expect(first.status).toBe('ok');
      expect(again).toMatchObject({ status: 'dup', slotMs: first.slotMs, bucket: first.bucket });
      expect((await store.status(settings)).used).toEqual({ tokens: 100, inputTokens: 100, outputTokens: 0, requests: 1 });
    });

    it('turns an acquire that arrives after its cancel into a no-op', async () => {
      const store = manager.limiterStore.forModel('m', uniquePrefix());
      const cancel = await store.release({ opId: 'BBBBBBBBBBBBBBBB', mode: 'cancel', bucket: -1, settings, charged: command('x').cost });
      expect(cancel.status).toBe('cancelled');
      const late = await store.acquire(command('BBBBBBBBBBBBBBBB'));
      expect(late.status).toBe('released');
      expect((await store.status(settings)).used.requests).toBe(0);
    });

    it('takes back an acquire whose reply was lost when it is cancelled', async () => {
      const store = manager.limiterStore.forModel('m', uniquePrefix());
      await store.acquire(command('CCCCCCCCCCCCCCCC', 300));
      const cancel = await store.release({
        opId: 'CCCCCCCCCCCCCCCC',
        mode: 'cancel',
        bucket: -1,
        settings,
        charged: command('x', 300).cost,
      });
      expect(cancel.status).toBe('ok');
      expect((await store.status(settings)).used).toEqual({ tokens: 0, inputTokens: 0, outputTokens: 0, requests: 0 });
      await expect(store.release({ opId: 'CCCCCCCCCCCCCCCC', mode: 'cancel', bucket: -1, settings, charged: command('x').cost })).resolves.toEqual({
        status: 'dup',
      });
    });

    it('applies a re-sent adjust once', async () => {
      const store = manager.limiterStore.forModel('m', uniquePrefix());
      const a = await store.acquire(command('DDDDDDDDDDDDDDDD'));
      const adjust = { opId: 'DDDDDDDDDDDDDDDD', adjustKey: 'a:D:1', bucket: a.bucket, settings, delta: { tokens: 50, inputTokens: 50, outputTokens: 0 } };
      expect((await store.adjust(adjust)).status).toBe('ok');
      expect((await store.adjust(adjust)).status).toBe('dup');
      expect((await store.status(settings)).used.tokens).toBe(150);
    });
  });

  describe('acquires sent together', () => {
    /** The window hash's running sums next to the sums of the buckets it still counts (from 'base' on). */
    async function sumsAndBuckets(prefix: string, model: string) {
      const hash = await redis.hgetall(modelKeys(prefix, model).window);
      const base = Number(hash.base);
      const buckets = [0, 0, 0, 0];
      for (const [field, value] of Object.entries(hash)) {
        if (!/^-?\d+$/.test(field)) continue;
        // Field c holds buckets c * 10 .. c * 10 + 9, as "t:i:o:r" entries joined by ','.
        value.split(',').forEach((entry, k) => {
          if (entry === '' || Number(field) * 10 + k < base) return;
          entry.split(':').forEach((v, d) => (buckets[d] += Number(v)));
        });
      }
      return { sums: ['st', 'si', 'so', 'sr'].map((f) => Number(hash[f] ?? 0)), buckets };
    }

    it('serves overlapping acquires of one process in one script call each batch, in call order', async () => {
      const prefix = uniquePrefix();
      const store = manager.limiterStore.forModel('m', prefix);
      const tight = { ...settings, limits: { ...settings.limits, tokens: 500 } };
      const ids = Array.from({ length: 12 }, (_, i) => `batch${String(i).padStart(11, '0')}`);
      // Every third asks not to wait: once the window is full, those are refused and charge nothing.
      const replies = await Promise.all(ids.map((opId, i) => store.acquire({ ...command(opId), settings: tight, maxWaitMs: i % 3 === 2 ? 0 : -1 })));
      expect(replies.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'wait', 'ok', 'ok', 'wait', 'ok', 'ok', 'wait']);
      const admitted = replies.filter((r) => r.status === 'ok');
      expect(admitted.slice(0, 5).every((r) => r.waitMs === 0 && r.queuePosition === 0)).toBe(true);
      const queued = admitted.slice(5);
      expect(queued.map((r) => r.queuePosition)).toEqual([0, 1, 2, 3]);
      const slots = queued.map((r) => r.slotMs);
      expect(slots).toEqual([...slots].sort((a, b) => a - b));
      expect(queued.every((r) => r.waitMs > 59_000)).toBe(true);
      // Re-sent, the same ids are answered with their first outcome and charge nothing more.
      const again = await Promise.all(ids.slice(0, 3).map((opId) => store.acquire({ ...command(opId), settings: tight })));
      expect(again.map((r) => [r.status, r.slotMs])).toEqual(replies.slice(0, 3).map((r) => ['dup', r.slotMs]));
      expect((await sumsAndBuckets(prefix, 'm')).sums).toEqual([900, 900, 0, 9]);
    });

    it('keeps its running sums equal to its buckets when old buckets leave and the caller will not wait', async () => {
      const prefix = uniquePrefix();
      const store = manager.limiterStore.forModel('m', prefix);
      const short = { ...settings, windowMs: 400, limits: { ...settings.limits, tokens: 100 } };
      // One now, one a window later, one two windows later: the queue reaches past the window.
      for (const opId of ['sumsAAAAAAAAAAAA', 'sumsBBBBBBBBBBBB', 'sumsCCCCCCCCCCCC']) {
        expect((await store.acquire({ ...command(opId), settings: short })).status).toBe('ok');
      }
      await new Promise((r) => setTimeout(r, 450));
      // The first bucket has left the window; this caller is refused, but the store moved on.
      const refused = await store.acquire({ ...command('sumsDDDDDDDDDDDD'), settings: short, maxWaitMs: 0 });
      expect(refused.status).toBe('wait');
      const { sums, buckets } = await sumsAndBuckets(prefix, 'm');
      expect(sums).toEqual(buckets);
      expect(sums).toEqual([200, 200, 0, 2]);
    });
  });

  it('recovers by itself after the server loses its scripts (SCRIPT FLUSH)', async () => {
    const own = await OwnRedisServer.start();
    const m = new RedisConnectionManager({ url: own.url, maxConnections: 1 });
    try {
      const limiter = new RateLimiter(m, 'm', { tpm: 1000 });
      await limiter.acquire({ tokens: 100 });
      await m.client.script('FLUSH');
      const r = await limiter.acquire({ tokens: 100 });
      await limiter.adjust(r.recordId, { actualOutput: 50 });
      await m.client.script('FLUSH');
      expect((await limiter.getStatus()).tokensUsed).toBe(250);
    } finally {
      await m.close();
      await own.stop();
    }
  });

  it('takes time from the Redis server, not from the client clock', async () => {
    const limiter = new RateLimiter(manager, 'm', { tpm: 100, windowSeconds: 10 }, { keyPrefix: uniquePrefix() });
    const realNow = Date.now;
    try {
      Date.now = () => realNow() + 3_600_000;
      const a = await limiter.acquire({ tokens: 100 });
      Date.now = () => realNow() - 3_600_000;
      const b = await limiter.acquire({ tokens: 50 }, { maxWaitMs: 0 }).catch((e: unknown) => e);
      Date.now = realNow;
      const [seconds] = await redis.time();
      expect(Math.abs(a.slotTime - Number(seconds) * 1000)).toBeLessThan(5000);
      // a client an hour behind still sees the window as full
      expect((b as Error).name).toBe('AcquireTimeoutError');
    } finally {
      Date.now = realNow;
    }
  });

  it('stays within 64 KB of Redis memory for a model after thousands of requests', async () => {
    const prefix = uniquePrefix();
    const limiter = new RateLimiter(manager, 'm', { tpm: 1e9, rpm: 1e9 }, { keyPrefix: prefix });
    for (let batch = 0; batch < 30; batch++) {
      await Promise.all(Array.from({ length: 100 }, () => limiter.acquire({ inputTokens: 1000, outputTokens: 10 })));
    }
    const { window, ring } = modelKeys(prefix, 'm');
    const bytes = Number(await redis.memory('USAGE', window)) + Number(await redis.memory('USAGE', ring));
    expect(bytes).toBeLessThan(64 * 1024);
    expect((await limiter.getStatus()).requestsUsed).toBe(3000);
  });

  it('stays within 64 KB with a thousand callers queued one per bucket, ten windows deep', async () => {
    const prefix = uniquePrefix();
    const limiter = new RateLimiter(manager, 'm', { rpm: 100, windowSeconds: 1 }, { keyPrefix: prefix });
    // Traffic at the limit, one request per bucket for a window: the queue behind it copies the
    // pattern, one request per bucket.
    for (let i = 0; i < 100; i++) {
      await limiter.acquire({ tokens: 1 }, { maxWaitMs: 0 }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 10));
    }
    const controller = new AbortController();
    setMaxListeners(1001, controller.signal);
    const parked = Array.from({ length: 1000 }, () => limiter.acquire({ tokens: 1 }, { signal: controller.signal }).catch(() => undefined));
    const { window, ring } = modelKeys(prefix, 'm');
    while ((await redis.pttl(window)) < 10_000) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    const status = await limiter.getStatus();
    expect(status.queueDepth).toBeGreaterThanOrEqual(256); // the ring holds at most 256
    const tail = Number(await redis.hget(window, 'tail'));
    const [seconds] = await redis.time();
    expect(tail - Math.floor((Number(seconds) * 1000 * 100) / 1000)).toBeGreaterThan(800); // > 8 windows of buckets ahead
    const bytes = Number(await redis.memory('USAGE', window)) + Number(await redis.memory('USAGE', ring));
    expect(bytes).toBeLessThan(64 * 1024);
    controller.abort();
    await Promise.all(parked);
  });

  it('sends nothing to Redis for bad input', async () => {
    const prefix = uniquePrefix();
    const limiter = new RateLimiter(manager, 'm', { tpm: 100 }, { keyPrefix: prefix });
    await expect(limiter.acquire({ tokens: -1 })).rejects.toThrow();
    await expect(limiter.acquire({ tokens: 101 })).rejects.toThrow();
    expect(await redis.keys(`*${prefix}*`)).toEqual([]);
  });

  it('uses a bucket of 1/100 of the window', () => {
    expect(BUCKETS).toBe(100);
  });
});

describe('when Redis is unavailable', () => {
  it('fails open quickly, once logged and reported, against a port nobody listens on', async () => {
    const port = await freePort();
    const manager = new RedisConnectionManager({ port, host: '127.0.0.1' });
    const logger = recordingLogger();
    const events: RateLimiterEvent[] = [];
    const limiter = new RateLimiter(manager, 'm', { tpm: 100 }, { logger, onEvent: (e) => events.push(e) });
    try {
      const started = performance.now();
      const results = await Promise.all([1, 2, 3].map(() => limiter.acquire({ tokens: 10 })));
      const elapsed = performance.now() - started;
      expect(results.every((r) => r.degraded && r.waitTime === 0 && r.recordId.startsWith('x.'))).toBe(true);
      // a hang detector, not a timing claim: ioredis alone would wait ~10 s or forever
      expect(elapsed).toBeLessThan(5000);
      expect(logger.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
      expect(events.filter((e) => e.type === 'degraded')).toHaveLength(1);
      await expect(limiter.adjust(results[0].recordId, { actualOutput: 5 })).resolves.toMatchObject({ status: 'degraded' });
      await expect(limiter.release(results[0].recordId)).resolves.toBeUndefined();
      await expect(limiter.getStatus()).rejects.toThrow(RedisUnavailableError);
    } finally {
      await manager.close();
    }
  });

  it('rejects with RedisUnavailableError in closed mode', async () => {
    const manager = new RedisConnectionManager({ port: await freePort(), host: '127.0.0.1', retryConfig: { maxRetries: 1 } });
    const limiter = new RateLimiter(manager, 'm', { tpm: 100 }, { failureMode: 'closed', logger: recordingLogger() });
    try {
      await expect(limiter.acquire({ tokens: 10 })).rejects.toThrow(RedisUnavailableError);
    } finally {
      await manager.close();
    }
  });

  it('limits again, and says so, once Redis is back', async () => {
    const own = await OwnRedisServer.start();
    const manager = new RedisConnectionManager({ url: own.url });
    const events: RateLimiterEvent[] = [];
    const limiter = new RateLimiter(manager, 'm', { tpm: 100 }, { logger: recordingLogger(), onEvent: (e) => events.push(e) });
    try {
      expect((await limiter.acquire({ tokens: 10 })).degraded).toBe(false);
      await own.kill();
      expect((await limiter.acquire({ tokens: 10 })).degraded).toBe(true);
      await own.startAgain();
      let result = await limiter.acquire({ tokens: 10 });
      for (let i = 0; result.degraded && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 50));
        result = await limiter.acquire({ tokens: 10 });
      }
      expect(result.degraded).toBe(false);
      expect(events.filter((e) => e.type === 'degraded' || e.type === 'recovered').map((e) => e.type)).toEqual(['degraded', 'recovered']);
    } finally {
      await manager.close();
      await own.stop();
    }
  });

  it('throws configuration errors instead of failing open: wrong password, missing ACL permission', async () => {
    const admin = inspector();
    const user = uniquePrefix('user');
    try {
      await admin.call('ACL', 'SETUSER', user, 'on', '>right-password', '~*', '+@all', '-time');
      const wrong = new RedisConnectionManager({ url: redisUrl(), username: user, password: 'wrong-password' });
      const wrongLimiter = new RateLimiter(wrong, 'm', { tpm: 100 }, { logger: recordingLogger() });
      await expect(wrongLimiter.acquire({ tokens: 1 })).rejects.toThrow(RedisConfigurationError);
      await wrong.close();

      const noTime = new RedisConnectionManager({ url: redisUrl(), username: user, password: 'right-password' });
      const noTimeLimiter = new RateLimiter(noTime, 'm', { tpm: 100 }, { keyPrefix: uniquePrefix(), logger: recordingLogger() });
      const err = await noTimeLimiter.acquire({ tokens: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisConfigurationError);
      expect((err as Error).message).toMatch(/NOPERM|permission/i);
      await noTime.close();
    } finally {
      await admin.call('ACL', 'DELUSER', user);
      await closeClient(admin);
    }
  });
});
