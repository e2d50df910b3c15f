// failureMode 'local' across processes and around an outage: Redis killed under load (every
// process starting together, or one busy and the others idle until the kill), each admission
// logged and every sliding window audited on its own; the hand-back once Redis returns; and a
// waiter given up while Redis was paused, which Redis must never admit afterwards.
import { Redis } from 'ioredis';
import { RateLimiter, RedisConnectionManager, RedisUnavailableError, type RateLimitConfig } from '../../lib/index.js';
import { modelKeys } from '../../lib/redis/keys.js';
import { ChildWorkers } from '../support/child-workers.js';
import type { OutageAdmission, OutageDone, OutageWorkerSetup } from '../support/outage-worker.js';
import { closeClient, uniquePrefix, waitFor } from '../support/redis.js';
import { OwnRedisServer } from '../support/redis-server.js';
import { recordingLogger } from '../support/backends.js';
import { fullestWindows } from '../support/window-audit.js';

const WORKERS = 4;
const CALLERS = 8;
const LIMIT = 100;
const WINDOW_MS = 5000;
const CONFIG: RateLimitConfig = { tpm: 1_000_000, rpm: LIMIT, windowSeconds: WINDOW_MS / 1000, deliveryMarginMs: 0 };
const MODEL = 'outage-model';

/** The fullest sliding window of the log, by slot time, over every process. */
function fullest(admissions: readonly OutageAdmission[]): { requests: number; end: number } {
  const { byRequests } = fullestWindows(
    admissions.map((a) => ({ admittedAt: a.at, tokens: 1, requests: 1 })),
    WINDOW_MS,
  );
  return { requests: byRequests.requests, end: byRequests.end };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("failureMode 'local' across processes when Redis is killed under load", () => {
  const workers = new ChildWorkers<OutageWorkerSetup, OutageDone>(new URL('../support/outage-worker.ts', import.meta.url));
  let server: OwnRedisServer | undefined;
  afterEach(async () => {
    workers.stop();
    await server?.stop();
  });

  /** Starts the workers, kills Redis `killAfterMs` after their start, runs `outageMs` more; returns the logs. */
  async function outage(idle: (worker: number) => boolean, killAfterMs: number, outageMs: number) {
    server = await OwnRedisServer.start();
    const keyPrefix = uniquePrefix('outage');
    await workers.startAll(WORKERS, (worker) => ({
      worker,
      redisUrl: server!.url,
      keyPrefix,
      model: MODEL,
      config: CONFIG,
      callers: CALLERS,
      idle: idle(worker),
    }));
    const startedAt = Date.now();
    const logs = workers.run(startedAt + killAfterMs + outageMs);
    await sleep(killAfterMs);
    const killedAt = Date.now();
    await server.kill();
    for (let w = 0; w < WORKERS; w++) if (idle(w)) workers.tell(w, { type: 'go' });
    const done = await logs;
    const admissions = done.flatMap((l) => l.admissions);
    const summary = {
      killedAt: killedAt - startedAt,
      fullest: fullest(admissions),
      onRedis: admissions.filter((a) => !a.degraded).length,
      local: done.map((l) => l.admissions.filter((a) => a.degraded).length),
      failures: done.map((l) => l.failures),
    };
    console.log(`local outage (${idle(1) ? 'uneven' : 'even'} load): ${JSON.stringify(summary)}`);
    return { done, admissions, killedAt, summary };
  }

  it('admits no more than the limit in any window across 4 processes x 8 callers, Redis killed 1 s after their start', async () => {
    const { admissions, killedAt, summary } = await outage(() => false, 1000, 11_000);
    expect({ within: summary.fullest.requests <= LIMIT, summary }).toEqual({ within: true, summary });
    // Redis admitted before the kill, and every process then limited itself.
    expect(admissions.filter((a) => !a.degraded && a.at <= killedAt).length).toBeGreaterThan(0);
    expect({ local: summary.local.every((n) => n > 0), summary }).toEqual({ local: true, summary });
  }, 60_000);

  it('admits no more than the limit in any window when one process was busy and three idle until the kill', async () => {
    const { admissions, killedAt, summary } = await outage((w) => w > 0, 1500, 11_000);
    expect({ within: summary.fullest.requests <= LIMIT, summary }).toEqual({ within: true, summary });
    // The busy one filled the window on Redis before the kill; every process admitted locally later.
    expect(admissions.filter((a) => a.worker === 0 && !a.degraded && a.at <= killedAt).length).toBeGreaterThan(LIMIT / 2);
    expect({ local: summary.local.every((n) => n > 0), summary }).toEqual({ local: true, summary });
  }, 60_000);
});

describe("failureMode 'local' when Redis returns", () => {
  let server: OwnRedisServer | undefined;
  let manager: RedisConnectionManager | undefined;
  afterEach(async () => {
    await manager?.close();
    await server?.stop();
  });

  it('hands back what the fallback admitted where it was admitted: held until then, full admission again once it leaves', async () => {
    const limit = 20;
    const windowMs = 8000;
    server = await OwnRedisServer.start();
    manager = new RedisConnectionManager({ url: server.url });
    const limiter = new RateLimiter(
      manager,
      MODEL,
      { tpm: 1_000_000, rpm: limit, windowSeconds: windowMs / 1000, deliveryMarginMs: 0 },
      { keyPrefix: uniquePrefix('handback'), failureMode: 'local', expectedInstances: 1, logger: recordingLogger() },
    );
    // The reading the fallback starts from: one request in the window.
    await expect(limiter.acquire({ tokens: 1 })).resolves.toMatchObject({ degraded: false });
    await server.kill();
    const local = [];
    for (;;) {
      const r = await limiter.acquire({ tokens: 1 }, { maxWaitMs: 0 }).catch(() => undefined);
      if (!r) break;
      local.push(r);
    }
    // Its share of what was left.
    expect(local.map((r) => r.degraded)).toEqual(Array.from({ length: limit - 1 }, () => true));
    // Redis returns, empty, well before those admissions leave the window.
    const leaveAt = Math.max(...local.map((r) => r.slotTime)) + windowMs;
    await sleep(1000);
    await server.startAgain();
    await waitFor(() => !limiter.degraded, 10_000, 'the probe to see Redis again');
    const until = leaveAt + 1000;
    const after = [];
    for (;;) {
      const left = until - Date.now();
      if (left <= 0) break;
      const r = await limiter.acquire({ tokens: 1 }, { maxWaitMs: left }).catch(() => undefined);
      if (r) after.push(r);
    }
    const held = after.filter((r) => r.slotTime < leaveAt).length;
    const once = after.filter((r) => r.slotTime >= leaveAt).length;
    console.log(
      `hand-back: ${local.length} admitted locally (limit ${limit}); on Redis again, ${held} admitted while they were in the window, ${once} in the second after they left it`,
    );
    expect(after.every((r) => !r.degraded)).toBe(true);
    // Charged: only the room they left until they left the window...
    expect(held).toBeLessThanOrEqual(limit - local.length);
    // ...and where they were admitted: full admission again once they left (charged at the
    // recovery, they would have held the window for another window: none).
    expect(once).toBeGreaterThanOrEqual(limit - 2);
  }, 60_000);
});

describe('a waiter whose Redis pauses', () => {
  let server: OwnRedisServer | undefined;
  const managers: RedisConnectionManager[] = [];
  let admin: Redis | undefined;
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
    if (admin) await closeClient(admin);
    await server?.stop();
  });

  it('follows the failure mode, and its record is never admitted once Redis resumes', async () => {
    server = await OwnRedisServer.start();
    admin = new Redis(server.url);
    const keyPrefix = uniquePrefix('waiter');
    const config: RateLimitConfig = { tpm: 1_000_000, rpm: 1, windowSeconds: 2, deliveryMarginMs: 0 };
    // The waiter's process gives up a call after about 0.5 s; the other's waits out the pause.
    const waiterManager = new RedisConnectionManager({ url: server.url, commandTimeoutMs: 200, retryConfig: { maxRetries: 1 } });
    const otherManager = new RedisConnectionManager({ url: server.url, commandTimeoutMs: 6000, retryConfig: { maxRetries: 1 } });
    managers.push(waiterManager, otherManager);
    const options = { keyPrefix, failureMode: 'closed' as const, logger: recordingLogger() };
    const mine = new RateLimiter(waiterManager, MODEL, config, options);
    const other = new RateLimiter(otherManager, MODEL, config, options);
    const keys = modelKeys(keyPrefix, MODEL);

    // The one request of the window is taken: the next one waits in Redis's queue.
    await other.acquire({ tokens: 1 });
    const order: string[] = [];
    const waiting = mine.acquire({ tokens: 1 }).then(
      () => order.push('waiter admitted'),
      (error: unknown) => order.push(error instanceof RedisUnavailableError ? 'waiter gave up' : `waiter failed: ${String(error)}`),
    );
    await waitFor(async () => (await admin!.zcard(keys.queue)) === 1, 5000, 'the waiter to queue');
    const [opId] = await admin.zrange(keys.queue, '0', '0');
    // Paused right after the waiter's owner renewed its lease (a claim).
    const leaseEnd = async () => Number((await admin!.zrange(keys.owners, '0', '0', 'WITHSCORES'))[1]);
    const lease = await leaseEnd();
    await waitFor(async () => (await leaseEnd()) !== lease, 5000, 'a claim');
    await admin.call('CLIENT', 'PAUSE', '4000', 'ALL');
    // Sent during the pause, run as it ends: the window has room by then, so it admits the head
    // of the queue if that can still be admitted, and is refused itself if it was.
    const next = other.acquire({ tokens: 1 }, { maxWaitMs: 0 }).then(
      () => 'admitted',
      (error: unknown) => String(error),
    );
    await waiting;
    // Answered once the pause is over.
    await admin.ping();
    order.push('resumed');
    const nextOutcome = await next;
    const record = await admin.hget(keys.records, opId);
    console.log(`paused waiter: ${order.join(', ')}; its record afterwards: ${record?.split('|')[0]}; the next acquire: ${nextOutcome}`);
    expect(order).toEqual(['waiter gave up', 'resumed']);
    // Never admitted: dropped (or released), and the window's one request went to the next caller.
    expect(record === null || !record.startsWith('a|')).toBe(true);
    expect(nextOutcome).toBe('admitted');
    const status = await other.getStatus();
    expect(status.requestsUsed).toBe(1);
  }, 60_000);
});
