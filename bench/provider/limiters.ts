import Bottleneck from 'bottleneck';
import { Redis } from 'ioredis';
import { RateLimiterQueue, RateLimiterRedis } from 'rate-limiter-flexible';
import type * as Library from '../../lib/index.js';
import type { Dimension, Figures } from '../../emulator/policies/policy.js';
import { admissionFigures, type CallUsage, moduleRequest, moduleUsage, type PlannedCall, settlementFigures } from './counting.js';
import type { LimiterKind, ModuleVariant, Scenario } from './scenarios.js';

/** What a limiter handed out for one call, to settle or give back later. */
export interface Lease {
  readonly figures: Figures;
  readonly recordId?: string;
  /** When the limiter meant the call to start, epoch ms (this module only). */
  readonly slotAt?: number;
}

/** The same four moves for every limiter the benchmark drives. */
export interface ClientLimiter {
  /** Resolves when the call may go; rejects when `signal` aborts first. */
  acquire(call: PlannedCall, signal: AbortSignal): Promise<Lease>;
  /** The call completed: report its real usage where the limiter can take it. */
  settle(lease: Lease, usage: CallUsage): Promise<void>;
  /** The provider refused (429) or failed (5xx) the call after it was let through. */
  refused(lease: Lease): Promise<void>;
  close(): Promise<void>;
  /** Calls let through while the limiter's store was unreachable. */
  readonly degraded: number;
}

export interface LimiterSetup {
  readonly kind: LimiterKind;
  readonly scenario: Scenario;
  readonly variant?: ModuleVariant;
  readonly redisUrl: string;
  /** Unique per run: key prefix and ids, so runs never share state. */
  readonly runId: string;
  readonly inputMargin: number;
  /** Where the built library is (dist/esm/index.js). */
  readonly libraryUrl: string;
}

/** Binding limits first: a chained limiter holds what it took while it waits for the next. */
const ORDER: readonly Dimension[] = ['inputTokens', 'outputTokens', 'tokens', 'requests'];

function limitedDimensions(scenario: Scenario): Dimension[] {
  return ORDER.filter((d) => (scenario.limits[d] ?? 0) > 0);
}

/** Why a signal was aborted, as an Error (the default reason, a DOMException, is one). */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.finally(() => signal.removeEventListener('abort', onAbort)).then(resolve, reject);
  });
}

/** The difference to add per dimension when the provider settles the call. */
function settlementDelta(setup: LimiterSetup, lease: Lease, usage: CallUsage): Figures {
  const to = settlementFigures(setup.scenario.kind, usage, setup.scenario.burndownRate);
  const delta: Figures = {};
  if (!to) return delta;
  for (const d of limitedDimensions(setup.scenario)) delta[d] = (to[d] ?? 0) - (lease.figures[d] ?? 0);
  return delta;
}

async function moduleLimiter(setup: LimiterSetup): Promise<ClientLimiter> {
  const lib = (await import(setup.libraryUrl)) as typeof Library;
  const manager = new lib.RedisConnectionManager({ url: setup.redisUrl });
  const quiet = {
    log: () => undefined,
    warn: (m: string) => console.warn(`[module] ${m}`),
    error: (m: string) => console.error(`[module] ${m}`),
  };
  const limiter = new lib.RateLimiter(manager, 'bench-model', setup.variant!.config, { keyPrefix: setup.runId, logger: quiet });
  const kind = setup.scenario.kind;
  let degraded = 0;
  return {
    get degraded() {
      return degraded;
    },
    async acquire(call, signal) {
      const result = await limiter.acquire(moduleRequest(kind, call, setup.inputMargin), { signal });
      if (result.degraded) degraded++;
      return { figures: {}, recordId: result.recordId, slotAt: result.slotTime };
    },
    async settle(lease, usage) {
      await limiter.adjust(lease.recordId!, moduleUsage(kind, usage));
    },
    async refused(lease) {
      await limiter.release(lease.recordId!, { reachedProvider: true });
    },
    close: () => manager.close(),
  };
}

/** One of an alternative's limiters per limited figure. */
interface PerLimit {
  readonly dimension: Dimension;
  /** Resolves when `amount` has been taken. */
  readonly take: (amount: number) => Promise<unknown>;
  /** Puts `amount` back (a negative amount takes it at once). */
  readonly putBack: (amount: number) => Promise<unknown>;
}

/**
 * The alternatives' moves: take each limited figure in ORDER, and put back (or take) the
 * difference when the provider settles, or the whole charge when it refused a call it does not
 * count.
 */
function perLimitClient(setup: LimiterSetup, limits: readonly PerLimit[], close: () => Promise<void>): ClientLimiter {
  const { scenario } = setup;
  const give = async (figures: Figures, sign: 1 | -1) => {
    for (const { dimension, putBack } of limits) {
      const amount = sign * (figures[dimension] ?? 0);
      if (amount !== 0) await putBack(amount);
    }
  };
  return {
    degraded: 0,
    async acquire(call, signal) {
      const figures = admissionFigures(scenario.kind, call, setup.inputMargin);
      for (const { dimension, take } of limits) {
        const amount = figures[dimension] ?? 0;
        if (amount > 0) await abortable(take(amount), signal);
      }
      return { figures };
    },
    async settle(lease, usage) {
      // Unused tokens back into the current window, extra ones taken from it.
      await give(settlementDelta(setup, lease, usage), -1);
    },
    async refused(lease) {
      if (!scenario.chargesRefused) await give(lease.figures, 1);
    },
    close,
  };
}

/** rate-limiter-flexible: one RateLimiterRedis (fixed window) per limit, each behind a RateLimiterQueue. */
async function flexibleLimiter(setup: LimiterSetup): Promise<ClientLimiter> {
  const { scenario } = setup;
  const redis = new Redis(setup.redisUrl);
  // RateLimiterQueue's key when none is given.
  const KEY = 'limiter';
  const limits = limitedDimensions(scenario).map((dimension): PerLimit => {
    const limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${setup.runId}:${dimension}`,
      points: scenario.limits[dimension]!,
      duration: scenario.emulator.policy.windowMs / 1000,
    });
    const queue = new RateLimiterQueue(limiter, { maxQueueSize: 100_000 });
    return {
      dimension,
      take: (amount) => queue.removeTokens(amount),
      putBack: (amount) => (amount > 0 ? limiter.reward(KEY, amount) : limiter.penalty(KEY, -amount)),
    };
  });
  return perLimitClient(setup, limits, async () => {
    redis.disconnect();
  });
}

/** Bottleneck in Redis clustering mode: one limiter per limit, a reservoir of the limit's tokens. */
async function bottleneckLimiter(setup: LimiterSetup): Promise<ClientLimiter> {
  const { scenario } = setup;
  const url = new URL(setup.redisUrl);
  const connection = new Bottleneck.IORedisConnection({ clientOptions: { host: url.hostname, port: Number(url.port || 6379) } });
  connection.on('error', (error) => console.error(`[bottleneck] ${String(error)}`));
  const windowMs = scenario.emulator.policy.windowMs;
  // Reservoir intervals run off the heartbeat in clustering mode (default every 5 s): 250 ms lets
  // a refresh take effect on time. Increase intervals should be multiples of 250 ms.
  const INCREASE_MS = 250;
  const limiters = limitedDimensions(scenario).map((dimension) => {
    const limit = scenario.limits[dimension]!;
    const refill =
      scenario.alternativesRefill === 'fixed-window'
        ? { reservoirRefreshAmount: limit, reservoirRefreshInterval: windowMs }
        : {
            reservoirIncreaseAmount: Math.max(1, Math.round((limit * INCREASE_MS) / windowMs)),
            reservoirIncreaseInterval: INCREASE_MS,
            reservoirIncreaseMaximum: limit,
          };
    const limiter = new Bottleneck({
      id: `${setup.runId}-${dimension}`,
      datastore: 'ioredis',
      connection,
      reservoir: limit,
      ...refill,
      heartbeatInterval: INCREASE_MS,
      timeout: 120_000,
    });
    limiter.on('error', (error) => console.error(`[bottleneck] ${String(error)}`));
    return { dimension, limiter };
  });
  await Promise.all(limiters.map(({ limiter }) => limiter.ready()));
  const limits = limiters.map(({ dimension, limiter }): PerLimit => ({
    dimension,
    take: (weight) => limiter.schedule({ weight }, () => Promise.resolve()),
    putBack: (amount) => limiter.incrementReservoir(amount),
  }));
  return perLimitClient(setup, limits, async () => {
    await Promise.all(limiters.map(({ limiter }) => limiter.stop({ dropWaitingJobs: true }).catch(() => undefined)));
    await connection.disconnect(false);
  });
}

function noLimiter(): ClientLimiter {
  return {
    degraded: 0,
    acquire: async () => ({ figures: {} }),
    settle: async () => undefined,
    refused: async () => undefined,
    close: async () => undefined,
  };
}

export function createLimiter(setup: LimiterSetup): Promise<ClientLimiter> {
  switch (setup.kind) {
    case 'module':
      return moduleLimiter(setup);
    case 'rate-limiter-flexible':
      return flexibleLimiter(setup);
    case 'bottleneck':
      return bottleneckLimiter(setup);
    case 'none':
      return Promise.resolve(noLimiter());
  }
}
