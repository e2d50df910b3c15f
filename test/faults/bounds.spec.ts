// Every store call settles within its deadline whatever Redis does, and Redis reserves nothing for
// a caller that gave up: Redis stopped (SIGSTOP) or paused (CLIENT PAUSE) under an open-loop load,
// and a proxy that loses a reply without resetting the connection.
import { Redis } from 'ioredis';
import { DEFAULT_RETRY_CONFIG } from '../../lib/redis/retry.js';
import { newOpId } from '../../lib/core/record-id.js';
import type { ModelSettings, ModelStore } from '../../lib/core/store.js';
import { RateLimiter, RedisConnectionManager, RedisUnavailableError } from '../../lib/index.js';
import { operationBudgetMs } from '../../lib/redis/executor.js';
import { modelKeys } from '../../lib/redis/keys.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { closeClient, uniquePrefix, waitFor } from '../support/redis.js';
import { freePort, OwnRedisServer } from '../support/redis-server.js';
import { recordingLogger } from '../support/backends.js';

/** The default bound: 4 attempts of 500 ms and the backoff between them. */
const BUDGET_MS = operationBudgetMs({ retry: DEFAULT_RETRY_CONFIG, commandTimeoutMs: 500 });
/** What a busy machine may add to the bound (timers firing late): a hang detector, not a measure. */
const SLACK_MS = 1500;

const SETTINGS: ModelSettings = {
  windowMs: 60_000,
  algorithm: 'sliding-window',
  bucketMs: 60_000,
  paceMs: 0,
  limits: { tokens: 0, inputTokens: 0, outputTokens: 0, requests: 1e9 },
};

interface Call {
  readonly opId: string;
  readonly startedAt: number;
  endedAt?: number;
  ok?: boolean;
}

/** Acquires at a steady rate whatever the answers take (an open loop, as independent users do). */
class Load {
  readonly calls: Call[] = [];
  private readonly pending = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: ModelStore,
    private readonly perSecond: number,
  ) {}

  start(): this {
    const from = performance.now();
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - from) * this.perSecond) / 1000);
      while (this.calls.length < due) this.fire();
    }, 10);
    return this;
  }

  /** Stops firing; resolves once every call has settled. */
  async stop(): Promise<Call[]> {
    clearInterval(this.timer);
    await Promise.all(this.pending);
    return this.calls;
  }

  okSince(t: number): number {
    return this.calls.filter((c) => c.ok && c.startedAt >= t).length;
  }

  private fire(): void {
    const call: Call = { opId: newOpId(), startedAt: performance.now() };
    this.calls.push(call);
    const done = this.store
      .acquire({
        opId: call.opId,
        owner: 'load-owner',
        settings: SETTINGS,
        cost: { tokens: 1, inputTokens: 0, outputTokens: 0, requests: 1 },
        maxWaitMs: 0,
      })
      .then(
        (reply) => {
          call.ok = reply.state === 'admitted';
        },
        () => {
          call.ok = false;
        },
      );
    const tracked = done.finally(() => {
      call.endedAt = performance.now();
      this.pending.delete(tracked);
    });
    this.pending.add(tracked);
  }
}

const longest = (calls: readonly Call[]) => Math.max(...calls.map((c) => c.endedAt! - c.startedAt));

async function serverMs(client: Redis): Promise<number> {
  const [s, us] = await client.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** Reservations Redis holds for calls whose caller was told they failed, with their admission ms. */
async function phantoms(admin: Redis, prefix: string, calls: readonly Call[]): Promise<number[]> {
  const records = await admin.hgetall(modelKeys(prefix, 'm').records);
  const slots: number[] = [];
  for (const call of calls) {
    const record = records[call.opId];
    if (call.ok || record === undefined) continue;
    if (record.startsWith('a|')) slots.push(Number(record.split('|')[6]));
    else if (record.startsWith('w|')) slots.push(Infinity);
  }
  return slots;
}

describe('calls against a Redis that stops answering', () => {
  let server: OwnRedisServer;
  let admin: Redis;
  const managers: RedisConnectionManager[] = [];

  beforeAll(async () => {
    server = await OwnRedisServer.start();
    admin = new Redis(server.url);
  });

  afterEach(async () => {
    server.thaw();
    await Promise.all(managers.splice(0).map((m) => m.close()));
  });

  afterAll(async () => {
    server?.thaw();
    if (admin) await closeClient(admin);
    await server?.stop();
  });

  // The 10 s pauses run at one rate only: the suite's time budget (see docs/faults.md).
  const CASES: [fault: 'SIGSTOP' | 'CLIENT PAUSE', pauseMs: number, perSecond: number][] = [
    ['SIGSTOP', 5000, 100],
    ['SIGSTOP', 5000, 200],
    ['SIGSTOP', 5000, 400],
    ['SIGSTOP', 10_000, 200],
    ['CLIENT PAUSE', 5000, 100],
    ['CLIENT PAUSE', 5000, 200],
    ['CLIENT PAUSE', 5000, 400],
    ['CLIENT PAUSE', 10_000, 200],
  ];

  it.each(CASES)(
    '%s for %i ms at %i acquires/s: every call settles within the bound, nothing is reserved for those that gave up',
    async (fault, pauseMs, perSecond) => {
      const manager = new RedisConnectionManager({ url: server.url });
      managers.push(manager);
      const prefix = uniquePrefix('bounds');
      const load = new Load(manager.limiterStore.forModel('m', prefix), perSecond).start();
      await waitFor(() => load.okSince(0) >= perSecond / 2, 10_000, 'calls to flow');

      const frozenAt = await serverMs(admin);
      if (fault === 'SIGSTOP') {
        server.freeze();
        // The fault's own length, not a wait for a condition.
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
        server.thaw();
      } else {
        await admin.call('CLIENT', 'PAUSE', String(pauseMs), 'ALL');
        // Answered once the pause is over.
        await serverMs(admin);
      }
      const resumedAt = performance.now();
      await waitFor(() => load.okSince(resumedAt) >= 20, 10_000, 'calls to succeed again');
      const calls = await load.stop();

      const failed = calls.filter((c) => !c.ok);
      // A reply that came back after its caller left is answered by a release: give those a moment.
      await waitFor(
        async () => (await phantoms(admin, prefix, calls)).filter((slot) => slot > frozenAt + 100).length === 0,
        3000,
        'late admissions to be released',
      ).catch(() => undefined);
      const late = await phantoms(admin, prefix, calls);
      // A script SIGSTOP caught half-way finishes on SIGCONT with the clock it read before: its
      // reservations date from before the stop. Anything admitted later ran after its caller left.
      const afterStop = late.filter((slot) => slot > frozenAt + 100);
      console.log(
        `${fault} ${pauseMs} ms at ${perSecond}/s: ${calls.length} calls, ${failed.length} failed, longest ${longest(calls).toFixed(0)} ms (bound ${BUDGET_MS} ms); reservations held for callers that gave up: ${late.length} (admitted after the stop: ${afterStop.length})`,
      );
      expect(failed.length).toBeGreaterThan(0);
      expect(longest(calls)).toBeLessThan(BUDGET_MS + SLACK_MS);
      expect(afterStop).toEqual([]);
      if (fault === 'CLIENT PAUSE') expect(late).toEqual([]);
    },
  );
});

describe('a connection that loses a reply and stays open', () => {
  let server: OwnRedisServer;
  let proxy: FaultProxy;
  let manager: RedisConnectionManager;

  beforeAll(async () => {
    server = await OwnRedisServer.start();
    proxy = await FaultProxy.start(server.port);
  });

  afterAll(async () => {
    await manager?.close();
    await proxy?.close();
    await server?.stop();
  });

  it('is closed and replaced: calls fail for at most the bound, then succeed on a fresh connection', async () => {
    // One connection: the one that went silent can only be replaced by a fresh one.
    manager = new RedisConnectionManager({ url: proxy.url, maxConnections: 1 });
    const load = new Load(manager.limiterStore.forModel('m', uniquePrefix('swallow')), 100).start();
    await waitFor(() => load.okSince(0) >= 50, 10_000, 'calls to flow');
    const accepted = proxy.stats.accepted;
    proxy.swallowNextReply();
    await waitFor(() => proxy.stats.swallowedReplies === 1, 10_000, 'a reply to be lost');
    const lostAt = performance.now();
    // the client closes the connection that went silent
    await waitFor(() => !proxy.swallowingConnectionOpen, BUDGET_MS + SLACK_MS, 'the silent connection to be closed');
    await waitFor(() => load.okSince(lostAt + BUDGET_MS + SLACK_MS) >= 50, 15_000, 'calls to succeed again');
    const calls = await load.stop();
    const after = calls.filter((c) => c.startedAt >= lostAt);
    const firstOk = after.find((c) => c.ok);
    const failedLater = after.filter((c) => !c.ok && c.startedAt >= lostAt + BUDGET_MS + SLACK_MS);
    console.log(
      `lost reply: ${after.filter((c) => !c.ok).length} calls failed, longest ${longest(after).toFixed(0)} ms; a call succeeded again ${firstOk ? (firstOk.endedAt! - lostAt).toFixed(0) : '-'} ms after the loss; connections opened since: ${proxy.stats.accepted - accepted}`,
    );
    expect(longest(after)).toBeLessThan(BUDGET_MS + SLACK_MS);
    // a fresh connection took its place
    expect(proxy.stats.accepted).toBeGreaterThan(accepted);
    expect(failedLater).toEqual([]);
  });
});

describe("failureMode 'local' before Redis was ever reached", () => {
  const managers: RedisConnectionManager[] = [];
  afterAll(() => Promise.all(managers.map((m) => m.close())));

  async function nowhere(): Promise<RedisConnectionManager> {
    const manager = new RedisConnectionManager({ url: `redis://127.0.0.1:${await freePort()}`, retryConfig: { maxRetries: 0 } });
    managers.push(manager);
    return manager;
  }

  it('admits nothing without expectedInstances: how many share the limits is unknown', async () => {
    const limiter = new RateLimiter(
      await nowhere(),
      'gpt-4o',
      { tpm: 1e6, rpm: 100 },
      { keyPrefix: uniquePrefix(), failureMode: 'local', logger: recordingLogger() },
    );
    await expect(limiter.acquire({ tokens: 1 })).rejects.toThrow(/expectedInstances/);
    await expect(limiter.acquire({ tokens: 1 })).rejects.toBeInstanceOf(RedisUnavailableError);
  });

  it('limits to its share of expectedInstances from the first call', async () => {
    const limiter = new RateLimiter(
      await nowhere(),
      'gpt-4o',
      { tpm: 1e6, rpm: 100 },
      { keyPrefix: uniquePrefix(), failureMode: 'local', expectedInstances: 4, logger: recordingLogger() },
    );
    const replies = await Promise.allSettled(Array.from({ length: 40 }, () => limiter.acquire({ tokens: 1 }, { maxWaitMs: 0 })));
    const admitted = replies.filter((r) => r.status === 'fulfilled');
    expect(admitted).toHaveLength(25);
    expect(admitted.every((r) => (r as PromiseFulfilledResult<{ degraded: boolean }>).value.degraded)).toBe(true);
  });
});
