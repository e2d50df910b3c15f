import { randomInt } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RateLimiter, RedisConnectionManager, type RateLimitConfig } from '../../lib/index.js';
import { CLAIM_INTERVAL_MS, OWNER_LEASE_MS } from '../../lib/core/store.js';
import { ChildWorkers } from '../support/child-workers.js';
import type { AdmittedRequest, WorkerMessage, WorkerRole, WorkerSetup } from '../support/multi-process-worker.js';
import { closeClient, inspector, redisUrl, uniquePrefix, waitFor } from '../support/redis.js';
import {
  type BucketShape,
  type LoggedRequest,
  bucketOverdraft,
  bucketUtilization,
  fullestWindows,
  meanUtilization,
} from '../support/window-audit.js';

// Several processes share one limiter through Redis: callers in every process acquire, then keep,
// adjust (down or up) or release what they got, or abort while they wait or while their acquire
// is on its way. Each admitted request is logged with its admission time by the server's clock
// and the server-time bounds of its settle; the parent audits the log on its own (never the
// limiter's counters): every sliding window, or a replay of the token bucket.
const WORKERS = 4;
const LOOPS = 32;
const WINDOW_MS = 1000;
// Requests of 20..200 tokens (110 on average) make tpm bind most of the time and rpm whenever a
// run of small ones comes; either way the largest request is 2% of tpm. There are more callers
// (128) than requests fit in a window, so the queue never runs dry.
const TPM = 10_000;
const RPM = 100;
const SATURATION_MS = 8000;
const MODEL = 'gpt-4o';

type Done = Extract<WorkerMessage, { type: 'done' }>;

/**
 * The log as the audits read it: the settled charge, with when the store applied it. An acquire
 * aborted just as it was admitted is given back at once and logged nowhere, so the audits see at
 * most what the store held, never more: a breach they find is the limiter's.
 */
function logged(r: AdmittedRequest): LoggedRequest {
  const changed = r.settledTokens !== r.tokens || r.settledRequests !== 1;
  return {
    admittedAt: r.admittedAt,
    tokens: r.tokens,
    requests: 1,
    ...(changed && { change: { tokens: r.settledTokens, requests: r.settledRequests, from: r.settledFrom, to: r.settledTo } }),
  };
}

/** What the provider ends up counting: each request at its settled charge, from its admission. */
const settled = (r: AdmittedRequest) => ({ admittedAt: r.admittedAt, tokens: r.settledTokens, requests: r.settledRequests });

/** A limiter of the parent's own, to read the shared status. */
async function withStatus<T>(keyPrefix: string, config: RateLimitConfig, use: (limiter: RateLimiter) => Promise<T>): Promise<T> {
  const manager = new RedisConnectionManager({ url: redisUrl() });
  try {
    return await use(new RateLimiter(manager, MODEL, config, { keyPrefix, failureMode: 'closed' }));
  } finally {
    await manager.close();
  }
}

async function serverMs(): Promise<number> {
  const client = inspector();
  try {
    const [seconds, micros] = await client.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  } finally {
    await closeClient(client);
  }
}

/** The independent audit: no sliding window of the log over tpm or rpm (the fullest shown on failure). */
function expectWindowsWithinLimits(admitted: AdmittedRequest[], context: string): void {
  const fullest = fullestWindows(admitted.map(logged), WINDOW_MS);
  expect({ tokens: fullest.byTokens.tokens <= TPM, requests: fullest.byRequests.requests <= RPM, fullest, context }).toEqual({
    tokens: true,
    requests: true,
    fullest,
    context,
  });
}

describe('RateLimiter across processes', () => {
  const workers = new ChildWorkers<WorkerSetup, Done>(new URL('../support/multi-process-worker.ts', import.meta.url));
  afterEach(() => workers.stop());

  /** 4 processes x 32 callers for SATURATION_MS; the checks every workload shares. */
  async function saturate(config: RateLimitConfig) {
    const seed = randomInt(1, 2 ** 31);
    const keyPrefix = uniquePrefix('multi');
    const role: WorkerRole = { kind: 'callers', loops: LOOPS };
    await workers.startAll(WORKERS, (worker) => ({ worker, redisUrl: redisUrl(), keyPrefix, model: MODEL, config, role, seed }));
    const logs = await workers.run(Date.now() + SATURATION_MS);
    const logFile = join(tmpdir(), `multi-process-${seed}.json`);
    const context = `(seed ${seed}, log ${logFile})`;
    // The whole log, for replaying a failed audit: its path is named in the failure.
    writeFileSync(logFile, JSON.stringify({ seed, config, logs }));

    expect({ errors: logs.flatMap((l) => l.errors), context }).toEqual({ errors: [], context });
    const admitted = logs.flatMap((l) => l.admitted);
    expect(new Set(admitted.map((r) => r.recordId)).size).toBe(admitted.length);
    // Every way of settling happened, and both kinds of abort.
    for (const kind of ['kept', 'adjusted-down', 'adjusted-up', 'released'] as const) {
      expect({ kind, seen: admitted.some((r) => r.settlement === kind) }).toEqual({ kind, seen: true });
    }
    const aborts = { inFlight: 0, waiting: 0 };
    for (const l of logs) {
      aborts.inFlight += l.aborts.inFlight;
      aborts.waiting += l.aborts.waiting;
    }
    expect({ inFlight: aborts.inFlight > 0, waiting: aborts.waiting > 0, aborts }).toEqual({ inFlight: true, waiting: true, aborts });
    // Aborted and stopped acquires gave their reservations back: nothing is left waiting.
    const status = await withStatus(keyPrefix, config, (limiter) => limiter.getStatus());
    expect(status.queueDepth).toBe(0);

    // FIFO across processes: every process is served about its share.
    for (let worker = 0; worker < WORKERS; worker++) {
      const share = admitted.filter((r) => r.worker === worker).length / admitted.length;
      expect({ worker, share: share >= 0.5 / WORKERS, value: share }).toEqual({ worker, share: true, value: share });
    }
    // The steady middle of the run: from one window after the first admission (the first window
    // fills in a burst) to the stop (callers keep the queue full until then).
    const from = Math.min(...admitted.map((r) => r.admittedAt)) + WINDOW_MS;
    const stoppedAt = Math.min(...logs.map((l) => l.stoppedAt));
    // Called once every check passed: only a failed run's log is left behind.
    const passed = () => rmSync(logFile, { force: true });
    return { admitted, context, from, stoppedAt, passed };
  }

  it('holds tpm and rpm over every sliding window while 4 processes x 32 callers saturate it, and uses at least 95% of it', async () => {
    const config = { tpm: TPM, rpm: RPM, windowSeconds: WINDOW_MS / 1000 };
    const { admitted, context, from, stoppedAt, passed } = await saturate(config);

    expectWindowsWithinLimits(admitted, context);

    // Use, as the provider counts it: each request at its settled charge (released ones not at
    // all), over every window that ends before the stop. What a refund or release frees goes to
    // the head of the queue at once, so windows stay full of what is really spent.
    //
    // The limits hold over any 101 of the window's 100 buckets, so a saturated limiter fills
    // windows to 100/101 (99%) on average; the head that does not fit leaves at most one request
    // (2% of tpm, 1% of rpm) unused. 95% leaves room for both, and fails if capacity is wasted
    // anywhere else (a refund that did not reach the queue, a waiter admitted late).
    const to = stoppedAt - WINDOW_MS;
    expect(to - from).toBeGreaterThanOrEqual(4 * WINDOW_MS);
    const utilization = meanUtilization(admitted.map(settled), WINDOW_MS, { tokens: TPM, requests: RPM }, from, to);
    expect({ utilization: utilization >= 0.95, value: utilization, context }).toEqual({ utilization: true, value: utilization, context });
    passed();
  }, 40_000);

  it('keeps the token bucket from overdrawing while 4 processes x 32 callers saturate it, and uses at least 95% of its refill', async () => {
    const config: RateLimitConfig = { tpm: TPM, rpm: RPM, windowSeconds: WINDOW_MS / 1000, algorithm: 'token-bucket', bucketSeconds: 0.5 };
    const { admitted, context, from, stoppedAt, passed } = await saturate(config);
    const shape: BucketShape = { windowMs: WINDOW_MS, bucketMs: 500, limits: { tokens: TPM, requests: RPM } };

    // Rounding the simulation never does in the store's favour: its charges round up, refunds down.
    const overdraft = bucketOverdraft(admitted.map(logged), shape);
    expect({ tokens: overdraft.tokens.excess <= 1e-6, requests: overdraft.requests.excess <= 1e-6, overdraft, context }).toEqual({
      tokens: true,
      requests: true,
      overdraft,
      context,
    });

    // Throughput at the settled charges against the refill rate: a refund that reaches the
    // bucket goes to the head at once, and the head that does not fit waits at most one small
    // request's refill.
    expect(stoppedAt - from).toBeGreaterThanOrEqual(4 * WINDOW_MS);
    const utilization = bucketUtilization(admitted.map(settled), shape, from, stoppedAt);
    expect({ utilization: utilization >= 0.95, value: utilization, context }).toEqual({ utilization: true, value: utilization, context });
    passed();
  }, 40_000);

  it('stops counting and holding the waiters of a killed process once its lease ends, and the survivors go on being admitted', async () => {
    // Two surviving processes of 16 callers, and a victim that queues 100 requests of 600 tokens
    // (6 s of tpm, more than its lease lets it hold) and is killed with them waiting: those that
    // reach the head while its lease lasts are admitted (the store cannot tell it is dead yet),
    // the rest are dropped once it ran out, at OWNER_LEASE_MS after its last claim.
    const SURVIVORS = 2;
    const CALLERS = 16;
    const VICTIM_WAITERS = 100;
    const seed = randomInt(1, 2 ** 31);
    const context = `(seed ${seed})`;
    const keyPrefix = uniquePrefix('multi-kill');
    const config = { tpm: TPM, rpm: RPM, windowSeconds: WINDOW_MS / 1000 };
    const victim = SURVIVORS;
    await workers.startAll(SURVIVORS + 1, (worker) => ({
      worker,
      redisUrl: redisUrl(),
      keyPrefix,
      model: MODEL,
      config,
      seed,
      role:
        worker === victim ? { kind: 'victim', waiters: VICTIM_WAITERS, tokens: 600 } : { kind: 'callers', loops: CALLERS, announce: true },
    }));
    let queued = false;
    const admittedAt: number[] = [];
    workers.onMessage = (worker, message) => {
      const m = message as WorkerMessage;
      if (m.type === 'queued') queued = true;
      else if (m.type === 'admitted' && worker !== victim) admittedAt.push(m.at);
    };
    // The survivors are stopped by message; this stop time only bounds a hung run.
    workers.begin(Date.now() + 60_000);

    await withStatus(keyPrefix, config, async (limiter) => {
      const depth = async () => (await limiter.getStatus()).queueDepth;
      await waitFor(() => queued, 10_000, 'the victim to queue its requests');
      // More waiting than the survivors can have: most of the victim's requests wait.
      await waitFor(async () => (await depth()) > SURVIVORS * CALLERS + VICTIM_WAITERS / 2, 10_000, "the victim's requests to wait");
      await workers.kill(victim);
      const killedAt = await serverMs();

      // Its lease ends within OWNER_LEASE_MS of its last claim, and the survivors' claims (at
      // least every CLAIM_INTERVAL_MS, and at the lease's end) drop its waiters then: 10 s by
      // the server's clock leaves the rest for a busy machine.
      await waitFor(async () => (await depth()) <= SURVIVORS * CALLERS, 30_000, "the killed process's waiters to leave the queue");
      const clearedAt = await serverMs();
      expect(clearedAt - killedAt).toBeLessThanOrEqual(OWNER_LEASE_MS + CLAIM_INTERVAL_MS + 4000);

      // The survivors go on: more than a window's worth of requests admitted after that, while
      // the queue never again counts more than they can have waiting.
      let deepest = 0;
      await waitFor(
        async () => {
          deepest = Math.max(deepest, await depth());
          return admittedAt.filter((at) => at > clearedAt).length > RPM;
        },
        10_000,
        'the survivors to be admitted after the dead waiters left',
      );
      expect(deepest).toBeLessThanOrEqual(SURVIVORS * CALLERS);

      for (let worker = 0; worker < SURVIVORS; worker++) workers.tell(worker, { type: 'stop' });
      const logs = await Promise.all(Array.from({ length: SURVIVORS }, (_, worker) => workers.finished(worker)));
      expect({ errors: logs.flatMap((l) => l.errors), context }).toEqual({ errors: [], context });
      const admitted = logs.flatMap((l) => l.admitted);
      expect(admitted.filter((r) => r.admittedAt > clearedAt).length).toBeGreaterThan(RPM);

      // The audit holds on what the survivors saw (the victim's admissions, unlogged, only ever
      // took room: they cannot hide a breach).
      expectWindowsWithinLimits(admitted, context);
      expect(await depth()).toBe(0);
    });
  }, 40_000);

  describe('the audits', () => {
    const at = (admittedAt: number, tokens: number) => ({ admittedAt, tokens, requests: 1 });
    const release = (admittedAt: number, tokens: number, when: number): LoggedRequest => ({
      ...at(admittedAt, tokens),
      change: { tokens: 0, requests: 0, from: when, to: when },
    });

    it('find a sliding window over its limit (they can fail)', () => {
      const within = [at(0, 40), at(500, 40), at(1000, 40), at(1999, 20)];
      expect(fullestWindows(within, 1000).byTokens).toEqual({ end: 500, tokens: 80, requests: 2 });
      const over = [at(0, 40), at(500, 40), at(999, 40)];
      expect(fullestWindows(over, 1000).byTokens).toEqual({ end: 999, tokens: 120, requests: 3 });
      expect(fullestWindows(over, 1000).byRequests.requests).toBe(3);
    });

    it('count a change in a window only where the store surely had it, else the smaller charge', () => {
      const load = (change: { tokens: number; requests: number; from: number; to: number }) =>
        fullestWindows([{ ...at(0, 60), change }, at(500, 60)], 1000).byTokens;
      const down = (from: number, to: number) => ({ tokens: 20, requests: 1, from, to });
      expect(load(down(10, 100)).tokens).toBe(80); // surely before the second admission
      expect(load(down(501, 520)).tokens).toBe(120); // surely after: admitted on 120 tokens
      expect(load(down(500, 520)).tokens).toBe(80); // in the same ms: either, so the smaller
      const up = (from: number, to: number) => ({ tokens: 90, requests: 1, from, to });
      expect(load(up(10, 499)).tokens).toBe(150);
      expect(load(up(10, 500)).tokens).toBe(120);
      const released = fullestWindows([{ ...at(0, 60), change: { tokens: 0, requests: 0, from: 10, to: 20 } }, at(500, 60)], 1000);
      expect(released.byTokens.tokens).toBe(60);
      expect(released.byRequests.requests).toBe(1);
    });

    it('measure mean window use over every window start, not only at admission times', () => {
      // 10 tokens every 10 ms: every 1000 ms window holds exactly 100 requests, 1000 tokens.
      const steady = Array.from({ length: 500 }, (_, i) => at(i * 10, 10));
      expect(meanUtilization(steady, 1000, { tokens: 1000, requests: 0 }, 0, 3000)).toBeCloseTo(1, 10);
      expect(meanUtilization(steady, 1000, { tokens: 2000, requests: 400 }, 0, 3000)).toBeCloseTo(0.5, 10);
      // One burst of 100 per 2000 ms: a window holds it for half of all starts.
      const bursts = Array.from({ length: 5 }, (_, i) => at(i * 2000, 100));
      expect(meanUtilization(bursts, 1000, { tokens: 100, requests: 0 }, 0, 8000)).toBeCloseTo(0.5, 10);
    });

    // 100 tokens per 1000 ms, a bucket of 500 ms: 50 tokens, refilled at 0.1 per ms.
    const shape: BucketShape = { windowMs: 1000, bucketMs: 500, limits: { tokens: 100, requests: 0 } };
    const excess = (log: LoggedRequest[]) => bucketOverdraft(log, shape).tokens.excess;

    it('replay a token bucket: a full bucket fits, one token more overdraws it, refill comes at the rate', () => {
      expect(excess([at(0, 50)])).toBe(0);
      expect(excess([at(0, 50), at(0, 1)])).toBe(1);
      expect(excess([at(0, 50), at(100, 10)])).toBeCloseTo(0, 10);
      expect(excess([at(0, 50), at(99, 10)])).toBeCloseTo(0.1, 10);
      // A request larger than the bucket goes when it is full, and leaves it in debt.
      expect(excess([at(0, 80)])).toBe(0);
      expect(excess([at(0, 80), at(400, 10)])).toBeCloseTo(0, 10);
      expect(excess([at(0, 80), at(399, 10)])).toBeCloseTo(0.1, 10);
      expect(
        bucketOverdraft([at(0, 1), at(5, 1)], { windowMs: 1000, bucketMs: 10, limits: { tokens: 0, requests: 100 } }).requests.excess,
      ).toBeCloseTo(1 + 1 - 1 - 0.5, 10);
    });

    it('replay a token bucket: a refund gives back only the part of its charge not refilled yet', () => {
      // Released at 10: 49 of its 50 are still ahead, all given back.
      expect(excess([release(0, 50, 10), at(20, 50)])).toBeLessThanOrEqual(0);
      // 20 charged at 0, 30 at 1; by 300, 30 refilled: all of the first. Its release then gives
      // nothing back, and 31 more overdraw by 1.
      expect(excess([release(0, 20, 300), at(1, 30), at(300, 31)])).toBeCloseTo(1, 10);
      expect(excess([release(0, 20, 300), at(1, 30), at(300, 30)])).toBeCloseTo(0, 10);
      // A release after the admission it would have made room for came too late for it.
      expect(excess([release(0, 50, 6), at(1, 50)])).toBeCloseTo(49.9, 10);
    });

    // Within one ms the log does not say in which order the store worked (it is gathered by
    // process), so the audit takes the order that leaves most room. These failed on the audit
    // that took the log's order, as a run of the test above under load did (7 tokens over).
    it('replay a token bucket: a release in the ms of its admission makes room for another admission of that ms, in any log order', () => {
      // R is admitted and given back at once (its caller releases at once), and the admit step
      // of that release lets Y in, all in one ms.
      const log = [at(0, 30), at(0, 20), release(0, 20, 0)];
      expect(excess(log)).toBeLessThanOrEqual(0);
      expect(excess([...log].reverse())).toBeLessThanOrEqual(0);
    });

    it('replay a token bucket: within one ms, one larger than the bucket goes when it is empty', () => {
      // Q (30), given back at once, went before P (60, over the bucket, adjusted down at once).
      const p = { ...at(0, 60), change: { tokens: 34, requests: 1, from: 0, to: 0 } };
      expect(excess([p, release(0, 30, 0)])).toBeLessThanOrEqual(0);
      expect(excess([at(0, 60), at(0, 1)])).toBeCloseTo(1, 10);
      expect(excess([at(0, 60), at(0, 0)])).toBeLessThanOrEqual(0);
    });

    it('replay a token bucket: a refund gives back what its ms still owes, as if it had been charged last of that ms', () => {
      // B (12) and C (30) at 0; by 60, 6 have refilled. Charged last, B is all still owed, and
      // its release makes room for 26 more (charged first, only 6 of it would be).
      expect(excess([release(0, 12, 60), at(0, 30), at(60, 26)])).toBeLessThanOrEqual(0);
      // By 350, 35 of that ms's 42 have refilled: B's release gives back 7, not 12; D (20, at
      // 250) is still owed in full.
      expect(excess([release(0, 12, 350), at(0, 30), at(250, 20), at(350, 37)])).toBeCloseTo(7, 10);
    });

    it('replay a token bucket: an adjust up counts from its earliest moment, forgiven to an admission it may have followed', () => {
      const up = (from: number, to: number): LoggedRequest => ({ ...at(0, 40), change: { tokens: 50, requests: 1, from, to } });
      // At 110 the debt is 40 - 11 + 10 = 39: 20 more would overdraw by 9, unless the store may
      // have charged the 10 after it.
      expect(excess([up(100, 105), at(110, 20)])).toBeCloseTo(9, 10);
      expect(excess([up(100, 120), at(110, 20)])).toBeCloseTo(-1, 10);
    });
  });
});
