// One Redis server of the test's own behind a FaultProxy: T2, T4, T6, T7, T9, T10, T11, T12, T42, T43.
import { Redis } from 'ioredis';
import {
  AcquireTimeoutError,
  RateLimiter,
  RedisConnectionManager,
  type RateLimiterEvent,
  type RedisConnectionOptions,
} from '../../lib/index.js';
import { recordingLogger } from '../support/backends.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { closeClient, uniquePrefix, waitFor } from '../support/redis.js';
import { OwnRedisServer } from '../support/redis-server.js';
import { Traffic } from '../support/traffic.js';

describe('one Redis behind a fault proxy', () => {
  let server: OwnRedisServer;
  let proxy: FaultProxy;
  let admin: Redis;
  const managers: RedisConnectionManager[] = [];

  beforeAll(async () => {
    server = await OwnRedisServer.start();
    proxy = await FaultProxy.start(server.port);
    admin = new Redis(server.url);
  });

  afterEach(async () => {
    proxy.setLatency(0);
    proxy.resume();
    await proxy.refuse(false);
    await server.startAgain();
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });

  afterAll(async () => {
    if (admin) await closeClient(admin);
    await proxy?.close();
    await server?.stop();
  });

  function viaProxy(options: RedisConnectionOptions = {}): RedisConnectionManager {
    const m = new RedisConnectionManager({ url: proxy.url, ...options });
    managers.push(m);
    return m;
  }

  function limiterOn(m: RedisConnectionManager, config = { tpm: 1e9, rpm: 1e9 }) {
    const events: RateLimiterEvent[] = [];
    const limiter = new RateLimiter(m, 'gpt-4o', config, {
      keyPrefix: uniquePrefix(),
      logger: recordingLogger(),
      onEvent: (e) => events.push(e),
    });
    return { limiter, events };
  }

  it('fails open while Redis is down, limits again soon after it is back, replays nothing (T2, T42)', async () => {
    const { limiter, events } = limiterOn(viaProxy(), { tpm: 1e9, rpm: 50 });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      expect((await limiter.acquire({ tokens: 1 })).degraded).toBe(false);
      await server.kill();
      // 1000 acquires during the outage: all let through at once, none queued for later
      const started = performance.now();
      const during = await Promise.all(Array.from({ length: 1000 }, () => limiter.acquire({ tokens: 1 })));
      const outageMs = performance.now() - started;
      expect(during.every((r) => r.degraded)).toBe(true);
      expect(outageMs).toBeLessThan(5000);
      expect(events.filter((e) => e.type === 'degraded')).toHaveLength(1);

      await server.startAgain();
      const backAt = performance.now();
      // the limiter's probe notices within its interval; until then calls still fail open
      await waitFor(async () => !(await limiter.acquire({ tokens: 1 })).degraded, 10_000, 'limiting to resume');
      const recoveryMs = performance.now() - backAt;
      console.log(
        `T2 restart: 1000 calls failed open in ${outageMs.toFixed(0)} ms; limiting again ${recoveryMs.toFixed(0)} ms after Redis answered`,
      );
      expect(recoveryMs).toBeLessThan(3000);
      expect(events.filter((e) => e.type === 'recovered')).toHaveLength(1);
      // the server was restarted empty: it holds only the one call made since, nothing replayed
      expect((await limiter.getStatus()).requestsUsed).toBe(1);
      // and a burst after recovery is limited as usual
      const burst = await Promise.allSettled(Array.from({ length: 100 }, () => limiter.acquire({ tokens: 1 }, { maxWaitMs: 0 })));
      const admitted = burst.filter((r) => r.status === 'fulfilled');
      expect(admitted).toHaveLength(49);
      expect(admitted.every((r) => !(r as PromiseFulfilledResult<{ degraded: boolean }>).value.degraded)).toBe(true);
      expect(burst.filter((r) => r.status === 'rejected').every((r) => r.reason instanceof AcquireTimeoutError)).toBe(true);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('fails open against refused connections and recovers when they are accepted again (T11-like, proxy refuse)', async () => {
    const { limiter } = limiterOn(viaProxy());
    expect((await limiter.acquire({ tokens: 1 })).degraded).toBe(false);
    await proxy.refuse(true);
    expect((await limiter.acquire({ tokens: 1 })).degraded).toBe(true);
    await proxy.refuse(false);
    await waitFor(async () => !(await limiter.acquire({ tokens: 1 })).degraded, 10_000, 'limiting to resume');
  });

  it('counts each reservation once while the script cache is flushed under load (T4)', async () => {
    const { limiter } = limiterOn(viaProxy());
    const traffic = new Traffic(limiter, 8, 1).start();
    for (let i = 0; i < 20; i++) {
      await admin.script('FLUSH');
      await new Promise((r) => setTimeout(r, 10));
    }
    const samples = await traffic.stop();
    expect(samples.filter((s) => s.error || s.degraded)).toEqual([]);
    expect((await limiter.getStatus()).requestsUsed).toBe(samples.length);
  });

  it('holds exactly one reservation when a reply is lost after the script ran (T7)', async () => {
    const m = viaProxy({ maxConnections: 1 });
    const { limiter } = limiterOn(m);
    await limiter.acquire({ tokens: 1 });
    for (let i = 0; i < 5; i++) {
      proxy.dropNextReply();
      const r = await limiter.acquire({ tokens: 10 });
      // the retry (same op id) finds the reservation and reports it, rather than making another
      expect(r.degraded).toBe(false);
    }
    expect(proxy.stats.droppedReplies).toBeGreaterThanOrEqual(5);
    expect(await limiter.getStatus()).toMatchObject({ requestsUsed: 6, tokensUsed: 51 });
  });

  it('keeps every window within its limit for several processes over 100 ms each way (T9)', async () => {
    proxy.setLatency(100);
    const prefix = uniquePrefix();
    // three managers stand for three processes: each has its own connections
    const limiters = [0, 1, 2].map(
      () => new RateLimiter(viaProxy(), 'gpt-4o', { rpm: 10, windowSeconds: 2 }, { keyPrefix: prefix, logger: recordingLogger() }),
    );
    const started = Date.now();
    const results = await Promise.all(
      limiters.flatMap((l) => Array.from({ length: 8 }, async () => ({ r: await l.acquire({ tokens: 1 }), at: Date.now() }))),
    );
    const elapsedS = (Date.now() - started) / 1000;
    expect(results.every(({ r }) => !r.degraded)).toBe(true);
    // every round trip pays the latency
    expect(Math.min(...results.map(({ at }) => at - started))).toBeGreaterThanOrEqual(190);
    const slots = results.map(({ r }) => r.slotTime).sort((a, b) => a - b);
    for (const s of slots) expect(slots.filter((t) => t >= s && t < s + 2000).length).toBeLessThanOrEqual(10);
    expect(new Set(results.map(({ r }) => r.recordId)).size).toBe(24);
    console.log(`T9 100 ms each way: 24 acquires by 3 managers in ${elapsedS.toFixed(1)} s (limit 10 per 2 s)`);
  });

  it('counts a timed-out acquire that runs later at most once, and its cancel takes it back (T12)', async () => {
    const m = viaProxy({ commandTimeoutMs: 200, retryConfig: { maxRetries: 1, baseDelayMs: 50, maxDelayMs: 50 } });
    const { limiter } = limiterOn(m, { tpm: 1e9, rpm: 1e9 });
    await limiter.acquire({ tokens: 1 });
    proxy.pause();
    const r = await limiter.acquire({ tokens: 100 });
    // both attempts timed out: the caller was let through
    expect(r.degraded).toBe(true);
    proxy.resume();
    // the held attempts (same op id) run now, once between them; the cancel sent after the
    // failure runs too, in either order: the reservation counts at most once and ends at zero
    await waitFor(async () => (await limiter.getStatus()).tokensUsed === 1, 10_000, 'the late reservation to be cancelled');
    expect((await limiter.getStatus()).requestsUsed).toBe(1);
  });

  it('fails open at the deadline during a silent partition; what ran late is taken back (T6)', async () => {
    const { limiter } = limiterOn(viaProxy());
    const traffic = new Traffic(limiter, 4).start();
    await waitFor(() => traffic.acknowledged().length > 20, 10_000, 'traffic to flow');
    const pausedAt = Date.now();
    proxy.pause();
    await waitFor(() => traffic.since(pausedAt).filter((s) => s.degraded).length >= 4, 10_000, 'callers to fail open');
    proxy.resume();
    const resumedAt = Date.now();
    await waitFor(() => traffic.since(resumedAt).filter((s) => !s.degraded && !s.error).length > 20, 10_000, 'limiting to resume');
    const samples = await traffic.stop();
    const outage = traffic.outageAfter(pausedAt);
    // every call settled within the retry budget (4 attempts of 500 ms + backoff)
    expect(outage.longestCallMs).toBeLessThan(4000);
    expect(samples.filter((s) => s.error)).toEqual([]);
    // the held attempts ran on the heal; each failed-open call's cancel takes its reservation back
    const acked = traffic.acknowledged().length;
    await waitFor(async () => (await limiter.getStatus()).requestsUsed === acked, 10_000, 'late reservations to be cancelled');
  });

  it('survives a reset storm without crashing or counting twice (T10)', async () => {
    const { limiter } = limiterOn(viaProxy());
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const traffic = new Traffic(limiter, 8, 2).start();
    try {
      for (let i = 0; i < 30; i++) {
        proxy.resetAll();
        await new Promise((r) => setTimeout(r, 100));
      }
      const samples = await traffic.stop();
      expect(samples.filter((s) => s.error)).toEqual([]);
      expect(traffic.acknowledged().length).toBeGreaterThan(0);
      const acked = traffic.acknowledged().length;
      const degraded = samples.filter((s) => s.degraded).length;
      const used = (await limiter.getStatus()).requestsUsed;
      expect(used).toBeGreaterThanOrEqual(acked);
      expect(used).toBeLessThanOrEqual(acked + degraded);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await traffic.stop();
    }
  });

  it('settles pending acquires at once when the manager closes, and fails later calls open (T43)', async () => {
    proxy.setLatency(300);
    const m = viaProxy();
    const { limiter } = limiterOn(m);
    const pending = Array.from({ length: 50 }, () => limiter.acquire({ tokens: 1 }));
    await waitFor(() => proxy.connections > 0, 5000, 'calls to be in flight');
    const closing = performance.now();
    await m.close();
    const results = await Promise.all(pending);
    const settledMs = performance.now() - closing;
    expect(settledMs).toBeLessThan(2000);
    expect(results.every((r) => typeof r.degraded === 'boolean')).toBe(true);
    await expect(limiter.acquire({ tokens: 1 })).resolves.toMatchObject({ degraded: true });
    await waitFor(() => proxy.connections === 0, 5000, 'every connection to be closed');
  });
});

describe('a Redis server under its own limits', () => {
  it('fails open with the OOM cause when memory is full, and limits again once there is room (T22)', async () => {
    const own = await OwnRedisServer.start(['--maxmemory', '3mb', '--maxmemory-policy', 'noeviction']);
    const admin = new Redis(own.url);
    const manager = new RedisConnectionManager({ url: own.url, retryConfig: { maxRetries: 1 } });
    try {
      const events: RateLimiterEvent[] = [];
      const limiter = new RateLimiter(manager, 'gpt-4o', { tpm: 1000 }, { logger: recordingLogger(), onEvent: (e) => events.push(e) });
      const filler = 'x'.repeat(64 * 1024);
      for (let i = 0; ; i++) {
        const full = await admin.set(`filler:${i}`, filler).then(
          () => false,
          (e: Error) => /^OOM/.test(e.message),
        );
        if (full) break;
        expect(i).toBeLessThan(200);
      }
      const r = await limiter.acquire({ tokens: 10 });
      expect(r.degraded).toBe(true);
      const degraded = events.find((e) => e.type === 'degraded');
      expect(degraded && degraded.type === 'degraded' && degraded.cause.message).toMatch(/OOM command not allowed/);
      await admin.flushall();
      await waitFor(async () => !(await limiter.acquire({ tokens: 10 })).degraded, 10_000, 'limiting to resume');
      expect((await limiter.getStatus()).requestsUsed).toBe(1);
    } finally {
      await manager.close();
      await closeClient(admin);
      await own.stop();
    }
  });

  it("fails open while another client's script keeps Redis BUSY, and recovers when it ends (T24)", async () => {
    const own = await OwnRedisServer.start(['--busy-reply-threshold', '100']);
    const admin = new Redis(own.url);
    const manager = new RedisConnectionManager({ url: own.url });
    try {
      const events: RateLimiterEvent[] = [];
      const limiter = new RateLimiter(manager, 'gpt-4o', { tpm: 1000 }, { logger: recordingLogger(), onEvent: (e) => events.push(e) });
      await limiter.acquire({ tokens: 1 });
      // a read-only script that spins for 5 s of server time
      const busy = admin.eval(
        "local t = redis.call('TIME'); local start = t[1] * 1000 + t[2] / 1000; local now = start; while now - start < 5000 do t = redis.call('TIME'); now = t[1] * 1000 + t[2] / 1000 end; return 1",
        0,
      );
      // Sent on another connection, the acquire could reach Redis before the script starts: it
      // is sent once a third client hears BUSY.
      const probe = new Redis(own.url, { maxRetriesPerRequest: 0 });
      try {
        await waitFor(
          async () =>
            (
              await probe.ping().then(
                () => '',
                (e: unknown) => String(e),
              )
            ).includes('BUSY'),
          5000,
          'Redis to be BUSY',
        );
      } finally {
        await closeClient(probe);
      }
      const started = performance.now();
      const r = await limiter.acquire({ tokens: 1 });
      expect(performance.now() - started).toBeLessThan(4000);
      expect(r.degraded).toBe(true);
      const degraded = events.find((e) => e.type === 'degraded');
      expect(degraded && degraded.type === 'degraded' && degraded.cause.message).toMatch(/BUSY/);
      await busy;
      await waitFor(async () => !(await limiter.acquire({ tokens: 1 })).degraded, 10_000, 'limiting to resume');
    } finally {
      await manager.close();
      await closeClient(admin);
      await own.stop();
    }
  });
});
