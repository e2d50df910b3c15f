import { Redis } from 'ioredis';
import {
  RateLimiter,
  RedisConfigurationError,
  RedisConnectionManager,
  RedisUnavailableError,
  type RateLimiterEvent,
} from '../../lib/index.js';
import { type EffectiveLimits } from '../../lib/core/config.js';
import { DEFAULT_RETRY_CONFIG } from '../../lib/redis/retry.js';
import {
  BUCKETS,
  OWNER_LEASE_MS,
  SETTLED_HORIZON_MS,
  type AcquireReply,
  type ModelSettings,
  type ModelStore,
} from '../../lib/core/store.js';
import { newOpId } from '../../lib/core/record-id.js';
import { RedisExecutor } from '../../lib/redis/executor.js';
import { modelKeys } from '../../lib/redis/keys.js';
import { RedisStore } from '../../lib/redis/redis-store.js';
import { recordingLogger } from '../support/backends.js';
import { closeClient, inspector, redisUrl, uniquePrefix, waitFor } from '../support/redis.js';
import { freePort, OwnRedisServer } from '../support/redis-server.js';

const NO_LIMITS: EffectiveLimits = { tokens: 0, inputTokens: 0, outputTokens: 0, requests: 0 };
const slidingWindow = (windowMs: number, limits: Partial<EffectiveLimits>): ModelSettings => ({
  windowMs,
  algorithm: 'sliding-window',
  bucketMs: windowMs,
  paceMs: 0,
  limits: { ...NO_LIMITS, ...limits },
});
const tokenBucket = (windowMs: number, limits: Partial<EffectiveLimits>): ModelSettings => ({
  windowMs,
  algorithm: 'token-bucket',
  bucketMs: windowMs,
  paceMs: 0,
  limits: { ...NO_LIMITS, ...limits },
});

/** Every key of a model, by the name the store gives it (the channel and heartbeats excluded). */
function queueKeys(prefix: string, model: string) {
  const { window, bucket, queue, records, expiry, owners } = modelKeys(prefix, model);
  return { window, bucket, queue, records, expiry, owners };
}

/** Acquires, settles and claims of one model's store, with one settings object and one owner. */
function driver(store: ModelStore, settings: ModelSettings, owner = 'owner-1') {
  return {
    acquire: (opId: string, tokens: number, maxWaitMs = -1): Promise<AcquireReply> =>
      store.acquire({ opId, owner, settings, cost: { tokens, inputTokens: 0, outputTokens: 0, requests: 1 }, maxWaitMs }),
    adjust: (opId: string, tokens: number) =>
      store.settle({ opId, settings, mode: 'adjust', refunds: true, to: { tokens, inputTokens: 0, outputTokens: 0 } }),
    release: (opId: string) => store.settle({ opId, settings, mode: 'release', refunds: true }),
    claim: (opIds: string[]) => store.claim({ owner, settings, opIds }),
    used: async () => (await store.status(settings)).used,
    status: () => store.status(settings),
  };
}

/**
 * Commands Redis ran that name `needle` (a key prefix), as MONITOR shows them. `settle()` sends
 * a marker command and resolves once MONITOR has shown it, so that everything sent before it
 * has been seen.
 */
async function watchCommands(needle: string) {
  const source = inspector();
  const monitor = await source.monitor();
  const seen: string[][] = [];
  let markers = 0;
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args.some((a) => String(a).includes(needle))) seen.push(args.map(String));
  });
  const probe = inspector();
  return {
    seen,
    async settle(): Promise<void> {
      const marker = `${needle}-marker-${++markers}`;
      await probe.exists(marker);
      await waitFor(() => seen.some((args) => args.includes(marker)), 10_000, 'MONITOR to show the marker');
    },
    scriptCalls: () => seen.filter((args) => /^eval(sha)?$/i.test(args[0] ?? '')),
    async close(): Promise<void> {
      monitor.disconnect();
      await closeClient(probe);
      await closeClient(source);
    },
  };
}

describe('RedisStore', () => {
  let manager: RedisConnectionManager;
  let redis: Redis;
  /** A connection for stores that read the test's clock. */
  let storeClient: Redis;
  beforeAll(() => {
    manager = new RedisConnectionManager({ url: redisUrl() });
    redis = inspector();
    storeClient = inspector();
  });
  afterAll(async () => {
    await manager.close();
    await closeClient(redis);
    await closeClient(storeClient);
  });

  /**
   * A store reading `clock` instead of the server's TIME. The scripts set PEXPIREAT from it, so
   * the clock starts a day ahead of real time: keys expire after the test, never during it.
   */
  function clockedStore() {
    const start = Date.now() + 86_400_000;
    const T = start - (start % 60_000);
    const clock = { now: T, T };
    const store = new RedisStore(new RedisExecutor(() => storeClient, { retry: DEFAULT_RETRY_CONFIG, commandTimeoutMs: 5000 }), {
      clock: () => clock.now,
    });
    return { clock, store };
  }

  async function keysOf(prefix: string): Promise<string[]> {
    return (await redis.keys(`*${prefix}*`)).sort();
  }

  describe('keys', () => {
    it.each([
      ['sliding window', slidingWindow(60_000, { tokens: 1000 })],
      ['token bucket', tokenBucket(1000, { tokens: 1000 })],
    ])(
      'keeps every key of a model under one hash tag, each with a TTL, through acquires that queue, claims and settles (%s)',
      async (_name, settings) => {
        const prefix = uniquePrefix();
        const d = driver(manager.limiterStore.forModel('gpt-4o', prefix), settings);
        const names = queueKeys(prefix, 'gpt-4o');
        const state = settings.algorithm === 'token-bucket' ? names.bucket : names.window;
        const tag = `{${prefix}:gpt-4o}`;
        const W = settings.windowMs;
        /** Every key there is: of the model's names, under its tag, and none without a TTL. */
        const checkKeys = async (expected: string[]) => {
          const keys = await keysOf(prefix);
          expect(keys).toEqual([...expected].sort());
          for (const key of keys) {
            expect(key.startsWith(tag)).toBe(true);
            const ttl = await redis.pttl(key);
            // At least a window, the horizon and the lease ahead at the call; pushed a window past that.
            expect({ key, ttl, atLeast: ttl > W + SETTLED_HORIZON_MS }).toEqual({ key, ttl, atLeast: true });
            expect(ttl).toBeLessThanOrEqual(2 * W + SETTLED_HORIZON_MS + OWNER_LEASE_MS);
          }
        };

        expect((await d.acquire('a', 1000)).state).toBe('admitted');
        // Admitted at once: no lease needed, so no owners key yet.
        await checkKeys([state, names.records, names.expiry]);
        expect((await d.acquire('b', 500)).state).toBe('waiting');
        await checkKeys([state, names.queue, names.records, names.expiry, names.owners]);
        expect((await d.claim(['b'])).records[0]?.state).toBe('waiting');
        await checkKeys([state, names.queue, names.records, names.expiry, names.owners]);
        const released = await d.release('a');
        expect(released.admitted.map((a) => a.opId)).toEqual(['b']);
        // The queue emptied and is gone.
        await checkKeys([state, names.records, names.expiry, names.owners]);
        expect((await d.adjust('b', 100)).status).toBe('ok');
        await checkKeys([state, names.records, names.expiry, names.owners]);
      },
    );

    it("gives every key the state's TTL in calls that do not move it: after a back-off pushed it, and for a key a claim creates", async () => {
      const { clock, store } = clockedStore();
      const prefix = uniquePrefix();
      const settings = slidingWindow(1000, { tokens: 100 });
      const d = driver(store.forModel('m', prefix), settings);
      const names = queueKeys(prefix, 'm');
      const expireTimes = async () => {
        const keys = await keysOf(prefix);
        const times = await Promise.all(keys.map((key) => redis.call('PEXPIRETIME', key) as Promise<number>));
        return Object.fromEntries(keys.map((key, k) => [key, times[k]]));
      };
      const stateExpiry = async () => Number(await redis.call('PEXPIRETIME', names.window));

      await d.acquire('a', 100);
      clock.now += 1;
      // Queued by a call that does not move the state's TTL (it moves about once a window).
      expect((await d.acquire('b', 10)).state).toBe('waiting');
      const all = [names.window, names.queue, names.records, names.expiry, names.owners].sort();
      expect(Object.keys(await expireTimes())).toEqual(all);
      for (const at of Object.values(await expireTimes())) expect(at).toBe(await stateExpiry());

      // A back-off writes only the state: its TTL now reaches past the pause, beyond the others'.
      await store.forModel('m', prefix).backOff(settings, { pauseMs: 30_000, cut: 1, floor: 0.05, settleMs: 0 });
      expect(await stateExpiry()).toBeGreaterThanOrEqual(clock.T + 30_000);
      // The waiter's owner claims through the pause; the queue must not expire under it.
      clock.now += 100;
      expect((await d.claim(['b'])).records[0]?.state).toBe('waiting');
      for (const [key, at] of Object.entries(await expireTimes())) expect({ key, at }).toEqual({ key, at: await stateExpiry() });

      // A key that went away (the owners' set, emptied) and is written again by a claim alone.
      await redis.del(names.owners);
      clock.now += 100;
      await d.claim(['b']);
      expect(await redis.pttl(names.owners)).toBeGreaterThan(0);
      for (const [key, at] of Object.entries(await expireTimes())) expect({ key, at }).toEqual({ key, at: await stateExpiry() });
    });

    it('encodes model names so odd names keep one valid tag and never share keys', () => {
      const names = ['a', '{', '}', '{}', 'a}b', 'a:b', 'a%3Ab', ':', 'a b', 'ünï😀', '\n', 'x'.repeat(1024), 'A', 'a.b'];
      const tags = names.map((name) => {
        const keys = Object.values(modelKeys('llmrl', name));
        const tag = keys[0]!.slice(0, keys[0]!.indexOf('}') + 1);
        for (const key of keys) expect(key.startsWith(tag)).toBe(true);
        // exactly one '{' and the first '}' closes it: Redis Cluster hashes what lies between
        expect(tag.indexOf('{')).toBe(0);
        expect(tag.indexOf('}')).toBe(tag.length - 1);
        expect(tag.slice(1, -1)).not.toMatch(/[{}]/);
        return tag;
      });
      expect(new Set(tags).size).toBe(names.length);
      // No two models share a key of any kind.
      const every = names.flatMap((name) => Object.values(modelKeys('llmrl', name)));
      expect(new Set(every).size).toBe(every.length);
    });
  });

  describe('re-sent commands', () => {
    const settings = slidingWindow(60_000, { tokens: 1000 });

    it('answers a re-sent acquire (same op id) with its record and charges it once', async () => {
      const d = driver(manager.limiterStore.forModel('m', uniquePrefix()), settings);
      const first = await d.acquire('resent-aaaaaaaaa', 600);
      const again = await d.acquire('resent-aaaaaaaaa', 600);
      expect(first).toMatchObject({ state: 'admitted', position: 0 });
      expect(again).toMatchObject({ state: 'admitted', slotMs: first.slotMs, admitted: [] });
      expect(await d.acquire('resent-bbbbbbbbb', 600)).toMatchObject({ state: 'waiting', position: 0 });
      expect(await d.acquire('resent-bbbbbbbbb', 600)).toMatchObject({ state: 'waiting', position: 0 });
      expect(await d.used()).toEqual({ tokens: 600, inputTokens: 0, outputTokens: 0, requests: 1 });
      expect((await d.status()).queueDepth).toBe(1);
    });

    it('applies a re-sent adjust or release once, and says so', async () => {
      const prefix = uniquePrefix();
      const d = driver(manager.limiterStore.forModel('m', prefix), settings);
      await d.acquire('adjusted-aaaaaaa', 400);
      await d.acquire('released-aaaaaaa', 300);
      const adjust = await d.adjust('adjusted-aaaaaaa', 100);
      expect(adjust).toMatchObject({ status: 'ok', applied: { tokens: -300 }, charged: { tokens: 400 } });
      expect(await d.adjust('adjusted-aaaaaaa', 100)).toMatchObject({ status: 'settled', applied: { tokens: 0 }, charged: { tokens: 0 } });
      expect(await d.release('released-aaaaaaa')).toMatchObject({ status: 'ok', applied: { tokens: -300, requests: -1 } });
      expect(await d.release('released-aaaaaaa')).toMatchObject({ status: 'released', applied: { tokens: 0, requests: 0 } });
      expect(await d.used()).toEqual({ tokens: 100, inputTokens: 0, outputTokens: 0, requests: 1 });
      // The same ids under another model or prefix are unknown there.
      expect((await driver(manager.limiterStore.forModel('other', prefix), settings).release('adjusted-aaaaaaa')).status).toBe('unknown');
    });

    it('recognises a command re-sent after its record ended for SETTLED_HORIZON_MS, then forgets it', async () => {
      const { clock, store } = clockedStore();
      const d = driver(store.forModel('m', uniquePrefix()), settings);
      await d.acquire('late-aaaaaaaaaaa', 100);
      await d.acquire('late-bbbbbbbbbbb', 100);
      clock.now += 1000;
      const endedAt = clock.now;
      expect((await d.release('late-aaaaaaaaaaa')).status).toBe('ok');
      expect((await d.adjust('late-bbbbbbbbbbb', 50)).status).toBe('ok');
      clock.now = endedAt + SETTLED_HORIZON_MS - 1;
      expect((await d.release('late-aaaaaaaaaaa')).status).toBe('released');
      expect(await d.acquire('late-aaaaaaaaaaa', 100)).toMatchObject({ state: 'released' });
      expect((await d.adjust('late-bbbbbbbbbbb', 10)).status).toBe('settled');
      expect(await d.used()).toMatchObject({ tokens: 50, requests: 1 });
      clock.now = endedAt + SETTLED_HORIZON_MS;
      expect((await d.release('late-aaaaaaaaaaa')).status).toBe('unknown');
      expect((await d.adjust('late-bbbbbbbbbbb', 10)).status).toBe('unknown');
      expect(await d.used()).toMatchObject({ tokens: 50, requests: 1 });
    });
  });

  it('sends overlapping acquires of one process in one script call per batch, in call order', async () => {
    const prefix = uniquePrefix();
    const watch = await watchCommands(prefix);
    try {
      const d = driver(manager.limiterStore.forModel('m', prefix), slidingWindow(60_000, { tokens: 1000 }));
      const ids = Array.from({ length: 12 }, (_, i) => `batch-${String(i).padStart(10, '0')}`);
      // Sent in one turn: nothing is in flight, so they go out together once that turn is over.
      const replies = await Promise.all(ids.map((opId) => d.acquire(opId, 100)));
      await watch.settle();
      const calls = watch.scriptCalls();
      expect(calls).toHaveLength(1);
      const positions = ids.map((id) => calls[0].indexOf(id));
      expect(positions.every((p) => p > 0)).toBe(true);
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
      // Served in call order: the first ten fit, the last two wait in that order.
      expect(replies.map((r) => r.state)).toEqual([...Array(10).fill('admitted'), 'waiting', 'waiting']);
      expect(replies.slice(10).map((r) => r.position)).toEqual([0, 1]);

      // More than one batch holds: each script call carries at most 128, none goes twice.
      const many = Array.from({ length: 300 }, (_, i) => `many-${String(i).padStart(11, '0')}`);
      const before = watch.scriptCalls().length;
      await Promise.all(many.map((opId) => d.acquire(opId, 1)));
      await watch.settle();
      const batches = watch.scriptCalls().slice(before);
      expect(batches.length).toBeGreaterThanOrEqual(3);
      expect(batches.length).toBeLessThanOrEqual(many.length / 8);
      const order = batches.flatMap((args) => args.filter((a) => a.startsWith('many-')));
      expect(order).toEqual(many);
    } finally {
      await watch.close();
    }
  });

  it('recovers by itself after the server loses its scripts (SCRIPT FLUSH)', async () => {
    const own = await OwnRedisServer.start();
    const m = new RedisConnectionManager({ url: own.url, maxConnections: 1 });
    try {
      const limiter = new RateLimiter(m, 'm', { tpm: 1000 });
      await limiter.acquire({ tokens: 100 });
      await m.client.script('FLUSH');
      const r = await limiter.acquire({ tokens: 100 });
      await m.client.script('FLUSH');
      await expect(limiter.adjust(r.recordId, { actualOutput: 50 })).resolves.toMatchObject({ status: 'applied', tokensDelta: 50 });
      await m.client.script('FLUSH');
      expect((await limiter.getStatus()).tokensUsed).toBe(250);
    } finally {
      await m.close();
      await own.stop();
    }
  });

  describe('time', () => {
    it('takes time from the Redis server when no test clock is set, whatever the client clock says', async () => {
      const store = new RedisStore(new RedisExecutor(() => storeClient, { retry: DEFAULT_RETRY_CONFIG, commandTimeoutMs: 5000 }));
      const d = driver(store.forModel('m', uniquePrefix()), slidingWindow(10_000, { tokens: 100 }));
      const realNow = Date.now;
      try {
        Date.now = () => realNow() + 3_600_000;
        const a = await d.acquire('skew-aaaaaaaaaaa', 100);
        Date.now = () => realNow() - 3_600_000;
        const b = await d.acquire('skew-bbbbbbbbbbb', 50, 0);
        Date.now = realNow;
        const [seconds, micros] = await redis.time();
        const serverNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
        expect(a.state).toBe('admitted');
        // a hang detector's bound, not a timing claim: an hour of skew would show
        expect(Math.abs(a.slotMs - serverNow)).toBeLessThan(60_000);
        expect(b.nowMs).toBeGreaterThanOrEqual(a.nowMs);
        // a client an hour behind still sees the window as full
        expect(b.state).toBe('timeout');
      } finally {
        Date.now = realNow;
      }
    });

    it('a limiter on a RedisConnectionManager reads the server clock too', async () => {
      const limiter = new RateLimiter(manager, 'm', { tpm: 100, windowSeconds: 10 }, { keyPrefix: uniquePrefix() });
      const realNow = Date.now;
      try {
        Date.now = () => realNow() + 3_600_000;
        const a = await limiter.acquire({ tokens: 100 });
        Date.now = realNow;
        const [seconds] = await redis.time();
        expect(Math.abs(a.slotTime - Number(seconds) * 1000)).toBeLessThan(60_000);
      } finally {
        Date.now = realNow;
      }
    });
  });

  describe('for failureMode local', () => {
    const one = (requests: number) => ({ tokens: 0, inputTokens: 0, outputTokens: 0, requests });

    it('hands back admissions each where it was made, no figure beyond its limit (sliding window)', async () => {
      const { clock, store } = clockedStore();
      const settings = slidingWindow(1000, { requests: 10 });
      const m = store.forModel('m', uniquePrefix());
      const charged = await m.handBack!(settings, [
        { ageMs: 900, cost: one(3) },
        { ageMs: 0, cost: one(4) },
      ]);
      expect(charged.requests).toBe(7);
      expect((await m.status(settings)).used.requests).toBe(7);
      // The older ones leave a window after they were made, not after the hand-back.
      clock.now += 150;
      expect((await m.status(settings)).used.requests).toBe(4);
      clock.now += 900;
      expect((await m.status(settings)).used.requests).toBe(0);
      // More than the limit could never have been admitted.
      expect((await m.handBack!(settings, [{ ageMs: 10, cost: one(15) }])).requests).toBe(10);
    });

    it('hands back what is still to refill of admissions into a token bucket', async () => {
      const { clock, store } = clockedStore();
      const settings = tokenBucket(1000, { requests: 10 });
      const m = store.forModel('m', uniquePrefix());
      // 4 requests take 400 ms to refill: made 500 ms ago, nothing is left of them.
      expect((await m.handBack!(settings, [{ ageMs: 500, cost: one(4) }])).requests).toBe(0);
      // made 100 ms ago: 300 ms (3 requests) still to refill.
      expect((await m.handBack!(settings, [{ ageMs: 100, cost: one(4) }])).requests).toBe(3);
      expect((await m.status(settings)).used.requests).toBe(3);
      clock.now += 300;
      expect((await m.status(settings)).used.requests).toBe(0);
    });

    it('answers every queue call with what the window holds and the largest count a heartbeat published', async () => {
      const settings = slidingWindow(60_000, { requests: 10 });
      const store = new RedisStore(new RedisExecutor(() => storeClient, { retry: DEFAULT_RETRY_CONFIG, commandTimeoutMs: 5000 }));
      const m = store.forModel('m', uniquePrefix());
      const first = await m.acquire({ opId: newOpId(), owner: 'o', settings, cost: one(2), maxWaitMs: 0 });
      expect(first.window).toEqual({ used: one(2), instances: 0 });
      await m.heartbeat('a', 15_000, settings);
      await m.heartbeat('b', 15_000, settings);
      const second = await m.acquire({ opId: newOpId(), owner: 'o', settings, cost: one(1), maxWaitMs: 0 });
      expect(second.window).toEqual({ used: one(3), instances: 2 });
      const claim = await m.claim({ owner: 'o', settings, opIds: [] });
      expect(claim.window).toEqual({ used: one(3), instances: 2 });
    });
  });

  describe('memory', () => {
    /** MEMORY USAGE of every key of a model, summed (every element sampled). */
    async function modelBytes(prefix: string, model: string): Promise<number> {
      let bytes = 0;
      for (const key of Object.values(queueKeys(prefix, model))) {
        bytes += Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
      }
      return bytes;
    }

    it('stays flat in the number of settled requests: records and tombstones are trimmed after the horizon', async () => {
      const { clock, store } = clockedStore();
      const prefix = uniquePrefix();
      const W = 1000;
      const d = driver(store.forModel('m', prefix), slidingWindow(W, { tokens: 1e9, requests: 1e9 }));
      const { records, expiry } = queueKeys(prefix, 'm');
      const ROUND = 500;
      const STEP = 3000;
      const sizes: number[] = [];
      for (let round = 0; round < 16; round++) {
        clock.now = clock.T + round * STEP;
        const ids = Array.from({ length: ROUND }, (_, i) => `r${String(round).padStart(3, '0')}-${String(i).padStart(10, '0')}`);
        const acquired = await Promise.all(ids.map((id) => d.acquire(id, 100)));
        expect(acquired.every((r) => r.state === 'admitted')).toBe(true);
        const adjusted = await Promise.all(ids.map((id) => d.adjust(id, 50)));
        expect(adjusted.every((r) => r.status === 'ok')).toBe(true);
        sizes.push(await redis.hlen(records));
      }
      // Tombstones live the horizon: about (10 s / 3 s) + 1 rounds of them at any time.
      const held = Math.ceil(SETTLED_HORIZON_MS / STEP) + 1;
      expect(Math.max(...sizes)).toBeLessThanOrEqual(held * ROUND);
      const steady = await modelBytes(prefix, 'm');
      // Sixteen rounds in, what is held is what four rounds hold: bounded, whatever came before.
      expect(steady).toBeLessThan(held * ROUND * 200);

      // Past the horizon, every call trims up to 512; a few claims empty the records.
      clock.now += SETTLED_HORIZON_MS + W;
      for (let k = 0; k < held * 2 && (await redis.hlen(records)) > 0; k++) await d.claim([]);
      expect(await redis.hlen(records)).toBe(0);
      expect(await redis.zcard(expiry)).toBe(0);
      expect(await modelBytes(prefix, 'm')).toBeLessThan(4096);
    });

    it('holds 10,000 waiters in at most 2 MB of Redis memory', async () => {
      const { store } = clockedStore();
      const prefix = uniquePrefix();
      // Ids as a limiter makes them: op ids of 12 base64url characters, an owner of 8.
      const d = driver(store.forModel('m', prefix), slidingWindow(60_000, { tokens: 1000 }), newOpId().slice(0, 8));
      await d.acquire(newOpId(), 1000);
      const empty = await modelBytes(prefix, 'm');
      const WAITERS = 10_000;
      for (let chunk = 0; chunk < WAITERS; chunk += 1000) {
        const replies = await Promise.all(Array.from({ length: 1000 }, () => d.acquire(newOpId(), 10)));
        expect(replies.every((r) => r.state === 'waiting')).toBe(true);
      }
      expect((await store.forModel('m', prefix).status(slidingWindow(60_000, { tokens: 1000 }))).queueDepth).toBe(WAITERS);
      const bytes = (await modelBytes(prefix, 'm')) - empty;
      // Its queue entry and its record: 237 bytes a waiter with 16-character op ids and owners.
      expect(bytes).toBeLessThanOrEqual(2 * 1024 * 1024);
    });
  });

  it('sends nothing to Redis for bad input', async () => {
    const prefix = uniquePrefix();
    const watch = await watchCommands(prefix);
    try {
      const limiter = new RateLimiter(manager, 'm', { tpm: 100 }, { keyPrefix: prefix });
      await expect(limiter.acquire({ tokens: -1 })).rejects.toThrow();
      await expect(limiter.acquire({ tokens: 101 })).rejects.toThrow();
      await expect(limiter.acquire({ tokens: 1 }, { maxWaitMs: -5 })).rejects.toThrow();
      await expect(limiter.adjust('not-a-record-id', { actualOutput: 1 })).rejects.toThrow();
      await expect(limiter.release('l.short')).rejects.toThrow();
      await watch.settle();
      expect(watch.seen.filter((args) => !args.some((a) => a.includes('-marker-')))).toEqual([]);
      expect(await keysOf(prefix)).toEqual([]);
    } finally {
      await watch.close();
    }
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
      await expect(limiter.release(results[0].recordId)).resolves.toMatchObject({ status: 'degraded', tokensFreed: 0 });
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
      await waitFor(() => !limiter.degraded, 10_000, 'the probe to see Redis again');
      expect((await limiter.acquire({ tokens: 10 })).degraded).toBe(false);
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
      await admin.call('ACL', 'SETUSER', user, 'on', '>right-password', '~*', '&*', '+@all', '-time');
      const wrong = new RedisConnectionManager({ url: redisUrl(), username: user, password: 'wrong-password' });
      const wrongLimiter = new RateLimiter(wrong, 'm', { tpm: 100 }, { logger: recordingLogger() });
      await expect(wrongLimiter.acquire({ tokens: 1 })).rejects.toThrow(RedisConfigurationError);
      await wrong.close();

      const noTime = new RedisConnectionManager({ url: redisUrl(), username: user, password: 'right-password' });
      const noTimeLimiter = new RateLimiter(noTime, 'm', { tpm: 100 }, { keyPrefix: uniquePrefix(), logger: recordingLogger() });
      const err = await noTimeLimiter.acquire({ tokens: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisConfigurationError);
      expect((err as Error).message).toMatch(/NOPERM|permission|can't run/i);
      await noTime.close();
    } finally {
      await admin.call('ACL', 'DELUSER', user);
      await closeClient(admin);
    }
  });
});
