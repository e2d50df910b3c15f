// One process of the multi-process test (test/core/multi-process.spec.ts), started with
// `node --import ./test/support/ts-register.mjs multi-process-worker.ts <setup as JSON>`. It
// connects, says it is ready, and from the parent's start either runs `loops` callers against one
// shared limiter until its stop time (or the parent's stop message), logging every admitted
// request with server times, or (a victim) queues `waiters` reservations and waits to be killed.
import { setMaxListeners } from 'node:events';
import { Redis } from 'ioredis';
import { AcquireAbortedError, RateLimiter, RedisConnectionManager, type RateLimitConfig } from '../../lib/limiter.js';
import { tellParent, type WorkerStart } from './child-workers.js';

export type WorkerRole =
  /**
   * Callers that acquire, then keep, adjust, release or abort, until stopped; with `announce`,
   * each admission is also told to the parent as it happens.
   */
  | { readonly kind: 'callers'; readonly loops: number; readonly announce?: boolean }
  /** `waiters` acquires of `tokens` each, sent at once and never settled. */
  | { readonly kind: 'victim'; readonly waiters: number; readonly tokens: number };

/** What the parent passes on the command line. */
export interface WorkerSetup {
  readonly worker: number;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly model: string;
  readonly config: RateLimitConfig;
  readonly role: WorkerRole;
  readonly seed: number;
}

/** What a caller did with one admitted request. */
export type Settlement = 'kept' | 'adjusted-down' | 'adjusted-up' | 'released';

/**
 * One admitted request. Every time is the Redis server's clock in epoch ms, as the store reads it
 * (whole ms, rounded down), so the log can be set against the store's admissions.
 */
export interface AdmittedRequest {
  readonly recordId: string;
  readonly worker: number;
  readonly loop: number;
  /** When the store admitted it (AcquireResult.slotTime). */
  readonly admittedAt: number;
  /**
   * How long it waited (AcquireResult.waitTime, local ms) and how many were ahead of it: not
   * audited, for reading the log a failed run leaves behind (see multi-process.spec.ts).
   */
  readonly waitTime: number;
  readonly queuePosition: number;
  /** Combined tokens it was charged at admission (input + output, burndown 1). */
  readonly tokens: number;
  readonly settlement: Settlement;
  /** Combined tokens it is charged once settled: what the caller reported, 0 once released. */
  readonly settledTokens: number;
  /** Requests it is charged once settled: 1, 0 once released. */
  readonly settledRequests: number;
  /**
   * The settle call ran in the store at a server ms within [settledFrom, settledTo]: `TIME` read
   * on a separate connection just before the call was made and just after it was answered.
   * Equal to admittedAt for a kept request (nothing changed).
   */
  readonly settledFrom: number;
  readonly settledTo: number;
  /** What the store said: 'applied' or 'expired' for an adjust, 'released' for a release. */
  readonly status: string;
}

/** Acquires that ended in AcquireAbortedError, by when the signal fired. */
export interface Aborts {
  /** Fired right after acquire was called, while its store call was on its way. */
  readonly inFlight: number;
  /** Fired by a timer while the caller waited (or, rarely, as its admission was on its way). */
  readonly waiting: number;
  /** Fired by the stop. */
  readonly atStop: number;
}

export type WorkerMessage =
  | { readonly type: 'ready' }
  /** A victim has sent every acquire. */
  | { readonly type: 'queued' }
  /** A caller was admitted (server ms). */
  | { readonly type: 'admitted'; readonly at: number }
  | {
      readonly type: 'done';
      readonly admitted: AdmittedRequest[];
      readonly aborts: Aborts;
      readonly errors: string[];
      /** Server ms at which this worker's callers were told to stop. */
      readonly stoppedAt: number;
    };

/** Sent by the parent to stop the callers before their stop time. */
export interface WorkerStop {
  readonly type: 'stop';
}

/** A small seeded generator (mulberry32), so a failing run can be replayed from its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const between = (rand: () => number, low: number, high: number) => low + Math.floor(rand() * (high - low + 1));

/** The server's clock in epoch ms, rounded down as the store's scripts read it. */
async function serverMs(clock: Redis): Promise<number> {
  const [seconds, micros] = await clock.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

const send = (message: WorkerMessage) => tellParent(message);

async function runCallers(setup: WorkerSetup, limiter: RateLimiter, clock: Redis, stop: AbortSignal): Promise<WorkerMessage> {
  if (setup.role.kind !== 'callers') throw new Error(`worker ${setup.worker} is not a caller`);
  const { loops, announce = false } = setup.role;
  const { worker } = setup;
  const admitted: AdmittedRequest[] = [];
  const errors: string[] = [];
  const aborts = { inFlight: 0, waiting: 0, atStop: 0 };
  let stoppedAt = NaN;
  // Every caller's acquire listens to the stop.
  setMaxListeners(loops + 10, stop);
  stop.addEventListener('abort', () => void serverMs(clock).then((ms) => (stoppedAt = ms)), { once: true });

  const caller = async (loop: number) => {
    const rand = random(setup.seed * 1000 + worker * 100 + loop);
    while (!stop.aborted) {
      const inputTokens = between(rand, 10, 100);
      const outputTokens = between(rand, 10, 100);
      const abortDice = rand();
      const abortIn = abortDice < 0.03 ? 'in-flight' : abortDice < 0.1 ? 'waiting' : undefined;
      // Each acquire has its own signal, fired by its own abort or by the stop.
      const own = new AbortController();
      const onStop = () => own.abort();
      stop.addEventListener('abort', onStop, { once: true });
      const timer = abortIn === 'waiting' ? setTimeout(() => own.abort(), between(rand, 20, 1500)) : undefined;
      let result;
      try {
        const pending = limiter.acquire({ inputTokens, outputTokens }, { signal: own.signal });
        if (abortIn === 'in-flight') own.abort();
        result = await pending;
      } catch (error) {
        if (!(error instanceof AcquireAbortedError)) errors.push(`acquire: ${String(error)}`);
        else if (stop.aborted) aborts.atStop++;
        else if (abortIn === 'in-flight') aborts.inFlight++;
        else aborts.waiting++;
        continue;
      } finally {
        clearTimeout(timer);
        stop.removeEventListener('abort', onStop);
      }
      if (abortIn === 'in-flight') errors.push(`acquire aborted in flight resolved: ${result.recordId}`);
      if (result.degraded) errors.push(`degraded admission ${result.recordId}`);
      if (announce) void send({ type: 'admitted', at: result.slotTime }).catch(() => undefined);
      const tokens = inputTokens + outputTokens;
      const dice = rand();
      const base = {
        recordId: result.recordId,
        worker,
        loop,
        admittedAt: result.slotTime,
        tokens,
        waitTime: result.waitTime,
        queuePosition: result.queuePosition,
      };
      try {
        if (dice < 0.6) {
          admitted.push({
            ...base,
            settlement: 'kept',
            settledTokens: tokens,
            settledRequests: 1,
            settledFrom: result.slotTime,
            settledTo: result.slotTime,
            status: 'kept',
          });
        } else if (dice < 0.7) {
          const settledFrom = await serverMs(clock);
          const released = await limiter.release(result.recordId);
          const settledTo = await serverMs(clock);
          if (released.status !== 'released' || released.tokensFreed !== tokens)
            errors.push(`release ${result.recordId}: ${JSON.stringify(released)}`);
          admitted.push({
            ...base,
            settlement: 'released',
            settledTokens: 0,
            settledRequests: 0,
            settledFrom,
            settledTo,
            status: released.status,
          });
        } else {
          const settlement = dice < 0.9 ? 'adjusted-down' : 'adjusted-up';
          const actualOutput =
            settlement === 'adjusted-down' ? between(rand, 0, outputTokens - 1) : between(rand, outputTokens + 1, outputTokens + 100);
          const settledFrom = await serverMs(clock);
          const adjusted = await limiter.adjust(result.recordId, { actualOutput });
          const settledTo = await serverMs(clock);
          // 'expired': the caller came back after its charge left the window (a stalled event
          // loop); nothing moved, and no window the audit checks still holds the request.
          const asked = adjusted.status === 'applied' && adjusted.tokensDelta === actualOutput - outputTokens;
          if (!asked && adjusted.status !== 'expired')
            errors.push(`adjust ${result.recordId} to output ${actualOutput}: ${JSON.stringify(adjusted)}`);
          const settledTokens = inputTokens + actualOutput;
          admitted.push({ ...base, settlement, settledTokens, settledRequests: 1, settledFrom, settledTo, status: adjusted.status });
        }
      } catch (error) {
        errors.push(`settle ${result.recordId}: ${String(error)}`);
      }
    }
  };

  await Promise.all(Array.from({ length: loops }, (_, loop) => caller(loop)));
  if (Number.isNaN(stoppedAt)) stoppedAt = await serverMs(clock);
  return { type: 'done', admitted, aborts, errors, stoppedAt };
}

async function runVictim(waiters: number, tokens: number, limiter: RateLimiter): Promise<never> {
  const half = Math.floor(tokens / 2);
  for (let i = 0; i < waiters; i++) {
    // Never settled: the parent kills this process while they wait.
    limiter.acquire({ inputTokens: half, outputTokens: tokens - half }).catch(() => undefined);
  }
  // Sent after the acquires on the same connection, so answered after they are queued.
  await limiter.getStatus();
  await send({ type: 'queued' });
  return new Promise<never>(() => undefined);
}

const setup = JSON.parse(process.argv[2]) as WorkerSetup;
const manager = new RedisConnectionManager({ url: setup.redisUrl });
const quiet = { log: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) };
// Closed: a Redis failure must show up as an error here, never as an unlimited admission.
const limiter = new RateLimiter(manager, setup.model, setup.config, { keyPrefix: setup.keyPrefix, failureMode: 'closed', logger: quiet });
const clock = new Redis(setup.redisUrl, { maxRetriesPerRequest: 1 });
const stop = new AbortController();
process.on('message', (message: WorkerStart | WorkerStop) => {
  if (message.type === 'stop') {
    stop.abort();
    return;
  }
  const timer = setTimeout(() => stop.abort(), Math.max(0, message.stopAt - Date.now()));
  const { role } = setup;
  const work = role.kind === 'victim' ? runVictim(role.waiters, role.tokens, limiter) : runCallers(setup, limiter, clock, stop.signal);
  work
    .catch((error: unknown): WorkerMessage => ({
      type: 'done',
      admitted: [],
      aborts: { inFlight: 0, waiting: 0, atStop: 0 },
      errors: [`worker ${setup.worker}: ${String(error)}`],
      stoppedAt: NaN,
    }))
    .then(async (message) => {
      clearTimeout(timer);
      await manager.close();
      await clock.quit();
      await send(message);
      process.disconnect();
    })
    .catch((error: unknown) => {
      // The parent sees the exit without a 'done' and fails the test.
      console.error(`worker ${setup.worker} could not report: ${String(error)}`);
      process.exit(1);
    });
});
// Connected before the start, so every worker's callers begin together.
await limiter.ping();
await clock.ping();
await send({ type: 'ready' });
