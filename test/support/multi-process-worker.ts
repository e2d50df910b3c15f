// One process of the multi-process test (test/core/multi-process.spec.ts), started with
// `node --import ./test/support/ts-register.mjs multi-process-worker.ts <setup as JSON>`. It
// connects, says it is ready, runs `loops` callers against one shared limiter from the parent's
// start until its stop time, logs every admitted request, and sends the log to its parent.
import { setMaxListeners } from 'node:events';
import { AcquireAbortedError, RateLimiter, RedisConnectionManager, type RateLimitConfig } from '../../lib/index.js';
import { tellParent, type WorkerStart } from './child-workers.js';

/** What the parent passes on the command line. */
export interface WorkerSetup {
  readonly worker: number;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly model: string;
  readonly config: RateLimitConfig;
  readonly loops: number;
  readonly seed: number;
}

/** What a caller did with one admitted request. */
export type Settlement = 'kept' | 'adjusted-down' | 'adjusted-up' | 'released';

/** One admitted request, as the limiter reported it, with local times around each call. */
export interface AdmittedRequest {
  readonly recordId: string;
  /** Server time of the slot, epoch ms. */
  readonly slotTime: number;
  /** How long acquire held the caller, ms: the slot was handed out at slotTime - waitTime (server). */
  readonly waitTime: number;
  /** Local epoch ms just before acquire was called. */
  readonly sentAt: number;
  /** Local epoch ms at which acquire resolved. */
  readonly resolvedAt: number;
  /** Combined tokens charged at admission. */
  readonly tokens: number;
  readonly settlement: Settlement;
  /** Combined tokens charged once settled: the admission charge plus what adjust applied (0 once released). */
  readonly settledTokens: number;
  /** Local epoch ms around the adjust or release call (equal to resolvedAt when kept). */
  readonly settleStartedAt: number;
  readonly settleEndedAt: number;
  readonly worker: number;
  readonly loop: number;
}

export type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'done'; readonly admitted: AdmittedRequest[]; readonly errors: string[]; readonly aborted: number };

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

async function run(setup: WorkerSetup, limiter: RateLimiter, start: WorkerStart): Promise<WorkerMessage> {
  const { worker } = setup;
  const admitted: AdmittedRequest[] = [];
  const errors: string[] = [];
  let aborted = 0;
  const stop = new AbortController();
  // Every caller waits on this one signal.
  setMaxListeners(setup.loops + 10, stop.signal);
  const timer = setTimeout(() => stop.abort(), Math.max(0, start.stopAt - Date.now()));

  const caller = async (loop: number) => {
    const rand = random(setup.seed * 1000 + worker * 100 + loop);
    while (!stop.signal.aborted) {
      const inputTokens = between(rand, 10, 100);
      const outputTokens = between(rand, 10, 100);
      const sentAt = Date.now();
      let result;
      try {
        result = await limiter.acquire({ inputTokens, outputTokens }, { signal: stop.signal });
      } catch (error) {
        if (error instanceof AcquireAbortedError) aborted++;
        else errors.push(`acquire: ${String(error)}`);
        continue;
      }
      const resolvedAt = Date.now();
      if (result.degraded) errors.push(`degraded admission ${result.recordId}`);
      const tokens = inputTokens + outputTokens;
      const dice = rand();
      let settlement: Settlement = 'kept';
      let settledTokens = tokens;
      const settleStartedAt = Date.now();
      try {
        if (dice < 0.1) {
          settlement = 'released';
          await limiter.release(result.recordId);
          settledTokens = 0;
        } else if (dice < 0.4) {
          settlement = dice < 0.3 ? 'adjusted-down' : 'adjusted-up';
          const actualOutput =
            settlement === 'adjusted-down' ? between(rand, 0, outputTokens - 1) : between(rand, outputTokens + 1, outputTokens + 100);
          const adjusted = await limiter.adjust(result.recordId, { actualOutput });
          if (adjusted.status !== 'applied' || adjusted.tokensDelta !== actualOutput - outputTokens) {
            errors.push(`adjust ${result.recordId} to output ${actualOutput}: ${JSON.stringify(adjusted)}`);
          }
          settledTokens = tokens + adjusted.tokensDelta;
        }
      } catch (error) {
        errors.push(`${settlement}: ${String(error)}`);
      }
      admitted.push({
        recordId: result.recordId,
        slotTime: result.slotTime,
        waitTime: result.waitTime,
        sentAt,
        resolvedAt,
        tokens,
        settlement,
        settledTokens,
        settleStartedAt,
        settleEndedAt: Date.now(),
        worker,
        loop,
      });
    }
  };

  await Promise.all(Array.from({ length: setup.loops }, (_, loop) => caller(loop)));
  clearTimeout(timer);
  return { type: 'done', admitted, errors, aborted };
}

const send = (message: WorkerMessage) => tellParent(message);

const setup = JSON.parse(process.argv[2]) as WorkerSetup;
const manager = new RedisConnectionManager({ url: setup.redisUrl });
// Closed: a Redis failure must show up as an error here, never as an unlimited admission.
const limiter = new RateLimiter(manager, setup.model, setup.config, { keyPrefix: setup.keyPrefix, failureMode: 'closed' });
process.once('message', (start: WorkerStart) => {
  run(setup, limiter, start)
    .catch((error: unknown): WorkerMessage => ({ type: 'done', admitted: [], errors: [`worker ${setup.worker}: ${String(error)}`], aborted: 0 }))
    .then(async (message) => {
      await manager.close();
      await send(message);
      process.disconnect();
    });
});
// Connected before the start, so every worker's callers begin together.
await limiter.ping();
await send({ type: 'ready' });
