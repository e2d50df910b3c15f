import { toLimiterStore } from './backend.js';
import { type FailureMode, type RateLimitConfig, type ResolvedConfig, resolveConfig } from './config.js';
import {
  AcquireAbortedError,
  AcquireTimeoutError,
  InvalidTokenCountError,
  LlmRateLimiterError,
  RateLimitConfigError,
  RedisUnavailableError,
  RequestTooLargeError,
} from './errors.js';
import type { LimiterLogger, RateLimiterEvent } from './events.js';
import { formatDegradedRecordId, formatRecordId, newOpId, parseRecordId } from './record-id.js';
import { MemoryStore } from '../memory/memory-store.js';
import { chargeOf } from './profiles.js';
import { type HeaderSource, readProviderHeaders } from './provider-headers.js';
import type { AcquireResult, AdjustResult, ObserveResult, RateLimitStatus } from './results.js';
import { BACKOFF_CUT, BACKOFF_FLOOR, type Charge, type LimiterStore, type ModelSettings, type ModelStore, scaledLimit } from './store.js';

/**
 * What one call will use: a combined figure, or input and output apart (needed for split limits
 * and provider profiles). `outputTokens` is the call's `max_tokens` or an estimate; cache figures
 * are prompt-cache reads and writes, counted as the provider profile says.
 */
export type TokenRequest =
  | { readonly tokens: number; readonly inputTokens?: undefined; readonly outputTokens?: undefined }
  | {
      readonly inputTokens: number;
      readonly outputTokens: number;
      readonly cacheReadTokens?: number;
      readonly cacheWriteTokens?: number;
      readonly tokens?: undefined;
    };

export interface AcquireOptions {
  /** Stops waiting for the slot; the reservation is released and acquire rejects. */
  readonly signal?: AbortSignal;
  /** Rejects at once with `AcquireTimeoutError`, reserving nothing, when the slot is further away. */
  readonly maxWaitMs?: number;
}

/** The real usage of a call, reported after it returns. */
export interface ActualUsage {
  readonly actualOutput: number;
  /** Defaults to the input the reservation was made with. */
  readonly actualInput?: number;
  /** Defaults to the cache reads the reservation was made with. */
  readonly actualCacheRead?: number;
  /** Defaults to the cache writes the reservation was made with. */
  readonly actualCacheWrite?: number;
}

export interface ReleaseOptions {
  /**
   * The call reached the provider and failed there. Providers that count failed calls (OpenAI)
   * keep the charge; for the others the reservation is given back as usual.
   */
  readonly reachedProvider?: boolean;
}

export interface RateLimiterOptions {
  /**
   * While Redis is unavailable: `'open'` (default) lets calls through unlimited, `'closed'`
   * rejects them with `RedisUnavailableError`, `'local'` limits them in this process to
   * limit / `expectedInstances` (or the number of live instances last seen in Redis).
   */
  readonly failureMode?: FailureMode;
  /**
   * How many processes share the limits, for `failureMode: 'local'`. Without it, instances
   * announce themselves in Redis every few seconds and the last count seen is used.
   */
  readonly expectedInstances?: number;
  /** Prefix of every key (default `'llmrl'`); limiters with different prefixes never share state. */
  readonly keyPrefix?: string;
  /** Receives the limiter's few log lines (default: `console`). */
  readonly logger?: LimiterLogger;
  /** Receives every acquire, adjust, release, outage and recovery. */
  readonly onEvent?: (event: RateLimiterEvent) => void;
}

/** Anything `RateLimiter` can keep its state in. */
export type RateLimiterBackend = LimiterStore | { readonly limiterStore: LimiterStore } | object;

interface Tracked {
  charge: Omit<Charge, 'requests'>;
  keepUntil: number;
}

const MAX_MODEL_LENGTH = 1024;
/** While Redis is down, how often it is asked whether it answers again. */
const PROBE_INTERVAL_MS = 500;
/** An instance that has not announced itself for this long no longer counts. */
const HEARTBEAT_TTL_MS = 15_000;

const NO_CHARGE: Charge = { tokens: 0, inputTokens: 0, outputTokens: 0, requests: 0 };

function addCharges(a: Charge, b: Charge): Charge {
  return { tokens: a.tokens + b.tokens, inputTokens: a.inputTokens + b.inputTokens, outputTokens: a.outputTokens + b.outputTokens, requests: a.requests + b.requests };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function describe(value: unknown): string {
  return typeof value === 'number' || value === undefined || value === null ? String(value) : `${typeof value} ${JSON.stringify(value)}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Names one change of one reservation (from these figures to those), short because the store
 * remembers recent ones: the op id and a 32-bit FNV-1a hash of the figures.
 */
function adjustKeyOf(opId: string, from: Omit<Charge, 'requests'>, to: Omit<Charge, 'requests'>): string {
  const text = `${from.tokens}:${from.inputTokens}:${from.outputTokens}>${to.tokens}:${to.inputTokens}:${to.outputTokens}`;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `a${opId}${hash.toString(36)}`;
}

/**
 * What the store enforces for a config. The delivery margin is applied here: a sliding window
 * counts each charge for window + margin (a call arriving up to margin late at the provider
 * still falls in the span the limiter counted it in), and a bucket keeps margin ms of refill as
 * headroom (whatever arrives late finds the provider's bucket no emptier than ours was).
 */
function storeSettingsOf(config: ResolvedConfig): ModelSettings {
  const { windowMs, algorithm, bucketMs, quantumMs, deliveryMarginMs: margin, limits, learn } = config;
  const learned = learn && { learn };
  if (algorithm === 'token-bucket') return { windowMs, algorithm, bucketMs: bucketMs - margin, paceMs: 0, limits, ...learned };
  return { windowMs: windowMs + margin, algorithm, bucketMs: windowMs + margin, paceMs: quantumMs ? quantumMs - margin : 0, limits, ...learned };
}

const consoleLogger: LimiterLogger = {
  log: (m) => console.log(`[llm-rate-limiter] ${m}`),
  warn: (m) => console.warn(`[llm-rate-limiter] ${m}`),
  error: (m) => console.error(`[llm-rate-limiter] ${m}`),
};

/**
 * Keeps calls to one model within its provider limits across every process that shares the
 * backend. `acquire` resolves when the caller's slot has come (FIFO across processes); report
 * the real usage with `adjust`, or `release` a reservation whose call never reached the provider.
 *
 * @example
 * const limiter = new RateLimiter(manager, 'gpt-4o', { tpm: 100_000, rpm: 100 });
 * const { recordId } = await limiter.acquire({ inputTokens: 1200, outputTokens: 800 });
 */
export class RateLimiter {
  readonly model: string;
  readonly config: Readonly<RateLimitConfig>;
  readonly failureMode: FailureMode;
  private readonly resolved: ResolvedConfig;
  private readonly settings: ModelSettings;
  private readonly store: ModelStore;
  private readonly backendKind: 'redis' | 'memory';
  private readonly logger: LimiterLogger;
  private readonly onEvent?: (event: RateLimiterEvent) => void;
  private readonly tracked = new Map<string, Tracked>();
  private outageSince: number | undefined;
  private outageCause: RedisUnavailableError | undefined;
  private probe: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly instanceId = newOpId();
  private readonly expectedInstances?: number;
  private liveInstances = 1;
  private local?: { store: ModelStore; settings: ModelSettings };
  private readonly pingStore: () => Promise<number>;

  constructor(backend: RateLimiterBackend, model: string, config: RateLimitConfig, options: RateLimiterOptions = {}) {
    if (typeof model !== 'string' || model.length === 0 || model.length > MAX_MODEL_LENGTH || !model.isWellFormed()) {
      throw new RateLimitConfigError(
        `model must be a non-empty, well-formed string of at most ${MAX_MODEL_LENGTH} characters, got ${typeof model === 'string' ? `a string of length ${model.length}` : describe(model)}`,
      );
    }
    this.resolved = resolveConfig(config);
    this.settings = storeSettingsOf(this.resolved);
    const failureMode = options.failureMode ?? 'open';
    if (failureMode !== 'open' && failureMode !== 'closed' && failureMode !== 'local') {
      throw new RateLimitConfigError(`failureMode must be 'open', 'closed' or 'local', got ${describe(failureMode)}`);
    }
    const expected = options.expectedInstances;
    if (expected !== undefined && (typeof expected !== 'number' || !Number.isInteger(expected) || expected < 1 || expected > 100_000)) {
      throw new RateLimitConfigError(`expectedInstances must be an integer from 1 to 100000, got ${describe(expected)}`);
    }
    this.expectedInstances = expected;
    const keyPrefix = options.keyPrefix ?? 'llmrl';
    if (typeof keyPrefix !== 'string' || keyPrefix.length === 0 || /[{}]/.test(keyPrefix)) {
      throw new RateLimitConfigError(`keyPrefix must be a non-empty string without braces, got ${describe(keyPrefix)}`);
    }
    const store = toLimiterStore(backend);
    this.model = model;
    this.config = Object.freeze({ ...config });
    this.failureMode = failureMode;
    this.backendKind = store.kind;
    this.store = store.forModel(model, keyPrefix);
    this.pingStore = () => store.ping();
    this.logger = options.logger ?? consoleLogger;
    this.onEvent = options.onEvent;
  }

  /** Where the state lives: `'redis'` (shared) or `'memory'` (this process only). */
  get backend(): 'redis' | 'memory' {
    return this.backendKind;
  }

  /**
   * Reserves capacity for one call and resolves when its slot has come. Rejects at once with
   * `InvalidTokenCountError` or `RequestTooLargeError` for a request that can never be served.
   */
  async acquire(request: TokenRequest, options: AcquireOptions = {}): Promise<AcquireResult> {
    const { cost, cacheRead, cacheWrite } = this.costOf(request);
    const maxWaitMs = this.checkAcquireOptions(options);
    const { signal } = options;
    if (signal?.aborted) throw this.aborted(signal);

    const opId = newOpId();
    const command = { opId, settings: this.settings, cost, maxWaitMs };
    let reply;
    if (this.outageSince === undefined) {
      // The first acquire after an outage also charges what this process admitted meanwhile in
      // its fallback (see markUp); it stays charged when this reservation is adjusted or released.
      // Taken before the call, so concurrent acquires charge it once.
      const handback = this.handback;
      this.handback = undefined;
      const sent = handback ? { ...command, cost: addCharges(cost, handback) } : command;
      try {
        reply = await this.store.acquire(sent);
        // Charged only by a reservation that was made ('wait' and the rest charge nothing).
        if (handback && reply.status !== 'ok') this.handback ??= handback;
        this.markUp();
        this.startHeartbeat();
      } catch (error) {
        if (!(error instanceof RedisUnavailableError)) throw error;
        this.markDown('acquire', error);
        // The command may have run with its reply lost: cancel by id, so it counts at most until then.
        this.cancelLater(opId, sent.cost);
        this.handback ??= handback;
      }
    }
    let local = false;
    if (!reply) {
      // Redis is unavailable, found now or by an earlier call (then it is not asked again until
      // the background probe sees it answer).
      if (this.failureMode === 'closed') throw this.unavailable();
      if (this.failureMode === 'open') {
        const recordId = formatDegradedRecordId(opId);
        this.emit({ type: 'acquired', model: this.model, recordId, waitMs: 0, queuePosition: 0, degraded: true });
        return { slotTime: Date.now(), waitTime: 0, queuePosition: 0, recordId, degraded: true };
      }
      const fallback = this.localFallback();
      reply = await fallback.store.acquire({ ...command, settings: fallback.settings });
      local = true;
    }

    if (reply.status === 'wait') {
      throw new AcquireTimeoutError(
        `the next slot for ${this.model} is ${reply.waitMs} ms away, more than maxWaitMs (${maxWaitMs}); nothing was reserved`,
        reply.waitMs,
        maxWaitMs,
      );
    }
    if (reply.status === 'released') {
      throw new LlmRateLimiterError(`acquire ${opId} for ${this.model} was cancelled before it reached the store`);
    }
    const recordId = formatRecordId({
      bucket: reply.bucket,
      tokens: cost.tokens,
      inputTokens: cost.inputTokens,
      outputTokens: cost.outputTokens,
      cacheRead,
      cacheWrite,
      opId,
      local,
    });
    // Remembered from its placement, so a reservation still queued is handed over too.
    if (this.failureMode === 'local') this.remember(reply.slotMs, cost, local);
    if (reply.waitMs > 0) {
      try {
        // One extra ms: timers may fire a fraction early, and the slot must have started.
        await sleep(reply.waitMs + 1, signal);
      } catch {
        await this.releaseQuietly(recordId, 'aborted');
        throw this.aborted(signal!);
      }
    } else if (signal?.aborted) {
      await this.releaseQuietly(recordId, 'aborted');
      throw this.aborted(signal);
    }
    this.emit({ type: 'acquired', model: this.model, recordId, waitMs: reply.waitMs, queuePosition: reply.queuePosition, degraded: local });
    return { slotTime: reply.slotMs, waitTime: reply.waitMs, queuePosition: reply.queuePosition, recordId, degraded: local };
  }

  /**
   * Charges or frees the difference between the reservation and the call's real usage, in every
   * figure it touches (combined, input, output; burndown applied). Adjusting again to the same
   * values changes nothing. An expired or released record is left alone with a warning.
   */
  async adjust(recordId: string, usage: ActualUsage): Promise<AdjustResult> {
    const record = parseRecordId(recordId);
    if (usage === null || typeof usage !== 'object') {
      throw new InvalidTokenCountError(`adjust needs { actualOutput, actualInput? }, got ${describe(usage)}`);
    }
    if (!isCount(usage.actualOutput)) {
      throw new InvalidTokenCountError(`actualOutput must be a non-negative integer, got ${describe(usage.actualOutput)}`);
    }
    for (const field of ['actualInput', 'actualCacheRead', 'actualCacheWrite'] as const) {
      if (usage[field] !== undefined && !isCount(usage[field])) {
        throw new InvalidTokenCountError(`${field} must be a non-negative integer, got ${describe(usage[field])}`);
      }
    }
    const none = { tokensDelta: 0, inputTokensDelta: 0, outputTokensDelta: 0 };
    if (record.degraded) return { status: 'degraded', ...none };

    const { profile, burndownRate } = this.resolved;
    const from = this.tracked.get(record.opId)?.charge ?? record;
    const rawInput =
      record.inputTokens - (profile.admitCacheRead ? record.cacheRead : 0) - (profile.admitCacheWrite ? record.cacheWrite : 0);
    const settled = chargeOf(
      profile,
      burndownRate,
      {
        input: usage.actualInput ?? rawInput,
        output: usage.actualOutput,
        cacheRead: usage.actualCacheRead ?? record.cacheRead,
        cacheWrite: usage.actualCacheWrite ?? record.cacheWrite,
      },
      'settle',
    );
    // A provider that keeps what it reserved (OpenAI) is never refunded, only charged more.
    const to = profile.refunds
      ? settled
      : {
          tokens: Math.max(from.tokens, settled.tokens),
          inputTokens: Math.max(from.inputTokens, settled.inputTokens),
          outputTokens: Math.max(from.outputTokens, settled.outputTokens),
        };
    const delta = {
      tokens: to.tokens - from.tokens,
      inputTokens: to.inputTokens - from.inputTokens,
      outputTokens: to.outputTokens - from.outputTokens,
    };
    if (delta.tokens === 0 && delta.inputTokens === 0 && delta.outputTokens === 0) {
      return this.reportAdjust(recordId, { status: 'unchanged', ...none });
    }
    const adjustKey = adjustKeyOf(record.opId, from, to);
    let reply;
    const target = this.targetOf(record);
    if (!target) {
      if (this.failureMode === 'closed') throw this.unavailable();
      return this.reportAdjust(recordId, { status: 'degraded', ...none });
    }
    try {
      reply = await target.store.adjust({ opId: record.opId, adjustKey, bucket: record.bucket, settings: target.settings, delta });
      if (!record.local) this.markUp();
    } catch (error) {
      if (!(error instanceof RedisUnavailableError)) throw error;
      this.markDown('adjust', error);
      if (this.failureMode === 'closed') throw error;
      return this.reportAdjust(recordId, { status: 'degraded', ...none });
    }
    if (reply.status === 'expired' || reply.status === 'released') {
      this.logger.warn(`adjust of ${recordId} for ${this.model} ignored: the reservation has ${reply.status === 'expired' ? 'left the window' : 'been released'}`);
      return this.reportAdjust(recordId, { status: reply.status, ...none });
    }
    this.track(record.opId, to);
    if (reply.status === 'dup') return this.reportAdjust(recordId, { status: 'unchanged', ...none });
    return this.reportAdjust(recordId, {
      status: 'applied',
      tokensDelta: reply.applied.tokens,
      inputTokensDelta: reply.applied.inputTokens,
      outputTokensDelta: reply.applied.outputTokens,
    });
  }

  /**
   * Gives a reservation back, for a call that never reached the provider. Releasing twice, or
   * after the window has passed, changes nothing.
   */
  async release(recordId: string, options: ReleaseOptions = {}): Promise<void> {
    if (options === null || typeof options !== 'object') {
      throw new RateLimitConfigError(`release options must be an object such as { reachedProvider: true }, got ${describe(options)}`);
    }
    if (options.reachedProvider === true && this.resolved.profile.chargesFailedCalls) {
      parseRecordId(recordId);
      return;
    }
    await this.releaseAs(recordId, 'released');
  }

  private async releaseAs(recordId: string, reason: 'released' | 'aborted'): Promise<void> {
    const record = parseRecordId(recordId);
    if (record.degraded) return;
    const charge = this.tracked.get(record.opId)?.charge ?? record;
    const target = this.targetOf(record);
    if (!target) {
      if (this.failureMode === 'closed') throw this.unavailable();
      return;
    }
    try {
      const reply = await target.store.release({
        opId: record.opId,
        mode: 'release',
        bucket: record.bucket,
        settings: target.settings,
        charged: { ...charge, requests: 1 },
      });
      if (!record.local) this.markUp();
      this.tracked.delete(record.opId);
      if (reply.status === 'ok') this.emit({ type: 'released', model: this.model, recordId, reason });
    } catch (error) {
      if (!(error instanceof RedisUnavailableError)) throw error;
      this.markDown('release', error);
      if (this.failureMode === 'closed') throw error;
    }
  }

  /** Usage of the window ending now, and how many reservations wait. Rejects when the store is down. */
  async getStatus(): Promise<RateLimitStatus> {
    const reply = await this.store.status(this.settings);
    const { limits } = this.resolved;
    const inForce = (limit: number) => scaledLimit(limit, reply.limitFactor);
    return {
      model: this.model,
      windowSeconds: this.resolved.windowMs / 1000,
      tokensUsed: reply.used.tokens,
      tokensLimit: limits.tokens,
      inputTokensUsed: reply.used.inputTokens,
      inputTokensLimit: limits.inputTokens,
      outputTokensUsed: reply.used.outputTokens,
      outputTokensLimit: limits.outputTokens,
      requestsUsed: reply.used.requests,
      requestsLimit: limits.requests,
      queueDepth: reply.queueDepth,
      pausedUntil: reply.pausedUntil,
      limitFactor: reply.limitFactor,
      limitsInForce: {
        tokens: inForce(limits.tokens),
        inputTokens: inForce(limits.inputTokens),
        outputTokens: inForce(limits.outputTokens),
        requests: inForce(limits.requests),
      },
      learning: this.resolved.learn !== undefined,
    };
  }

  /**
   * Tells every process that the provider answered 429 (or is overloaded): admissions of this
   * model pause for `retryAfterMs` (default 1 s), and its limits are cut to 75% (down to 5%),
   * recovering by 10% of the limit per window. 429s within a second of a cut (one burst of
   * in-flight calls) cut once. With `learnLimits`, the learned limits are cut the same way and
   * grow again only under pressing demand, from the end of the pause.
   */
  async backOff(options: { retryAfterMs?: number } = {}): Promise<{ pausedUntil: number; limitFactor: number }> {
    const retryAfterMs = options.retryAfterMs ?? 1000;
    if (typeof retryAfterMs !== 'number' || !Number.isFinite(retryAfterMs) || retryAfterMs < 0) {
      throw new RateLimitConfigError(`retryAfterMs must be a non-negative number of ms, got ${describe(retryAfterMs)}`);
    }
    const pauseMs = Math.min(Math.ceil(retryAfterMs), Math.max(this.resolved.windowMs, 60_000));
    const target = this.feedbackTarget();
    if (!target) throw this.unavailable();
    let reply;
    try {
      reply = await target.store.backOff(target.settings, { pauseMs, cut: BACKOFF_CUT, floor: BACKOFF_FLOOR, settleMs: Math.max(1000, pauseMs) });
    } catch (error) {
      if (error instanceof RedisUnavailableError) this.markDown('observe', error);
      throw error;
    }
    if (!target.local) this.markUp();
    this.logger.warn(
      `${this.model}: the provider answered 429; admissions paused until ${new Date(reply.pausedUntil).toISOString()}, limits at ${Math.round(reply.limitFactor * 100)}%`,
    );
    this.emit({ type: 'backoff', model: this.model, pausedUntil: reply.pausedUntil, limitFactor: reply.limitFactor });
    return reply;
  }

  /**
   * Feeds a provider response's headers back into the shared state: on a 429 (or 529), every
   * process pauses for the provider's retry-after (see `backOff`); and where the provider's
   * remaining figures (`x-ratelimit-remaining-*`, `anthropic-ratelimit-*-remaining`) show less
   * room than this limiter counts, the difference (quota spent by others) is charged now.
   *
   * @example
   * const { data, response } = await openai.chat.completions.create(body).withResponse();
   * await limiter.observe(response.headers, { status: response.status });
   */
  async observe(headers: HeaderSource, options: { status?: number } = {}): Promise<ObserveResult> {
    if (headers === null || typeof headers !== 'object') {
      throw new RateLimitConfigError(`observe needs the response headers, got ${describe(headers)}`);
    }
    const report = readProviderHeaders(headers);
    const none = { tokens: 0, inputTokens: 0, outputTokens: 0, requests: 0 };
    // While Redis is known to be down, the failure mode answers at once: 'local' listens with
    // its in-process share (a provider reporting its window full holds this process back too).
    const target = this.feedbackTarget();
    if (!target) {
      if (this.failureMode === 'closed') throw this.unavailable();
      return { foreign: none };
    }
    try {
      let backoff: { pausedUntil: number; limitFactor: number } | undefined;
      if (options.status === 429 || options.status === 529) {
        backoff = await this.backOff({ retryAfterMs: report.retryAfterMs ?? report.exhaustedResetMs ?? 1000 });
      }
      const { limits } = this.resolved;
      const noise = (limit: number, precision: number) => Math.max(precision, Math.ceil(limit * 0.01));
      const tolerance = {
        tokens: noise(limits.tokens, report.tokenPrecision),
        inputTokens: noise(limits.inputTokens, report.tokenPrecision),
        outputTokens: noise(limits.outputTokens, report.tokenPrecision),
        requests: noise(limits.requests, 1),
      };
      const reported = Object.values(report.remaining).some((v) => v !== undefined);
      const foreign = reported ? await target.store.reconcile(target.settings, { remaining: this.behindProvider(report.remaining), tolerance }) : none;
      if (!target.local) this.markUp();
      if (foreign.tokens + foreign.inputTokens + foreign.outputTokens + foreign.requests > 0) {
        this.emit({ type: 'reconciled', model: this.model, foreign });
      }
      return { ...backoff, foreign };
    } catch (error) {
      if (!(error instanceof RedisUnavailableError)) throw error;
      this.markDown('observe', error);
      if (this.failureMode === 'closed') throw error;
      return { foreign: none };
    }
  }

  /**
   * A token bucket stays its delivery margin's worth of refill behind the provider's: compare the
   * provider's remaining figures less that headroom, or every reconcile would spend it.
   */
  private behindProvider(remaining: Partial<Charge>): Partial<Charge> {
    const { algorithm, deliveryMarginMs, windowMs, limits } = this.resolved;
    if (algorithm !== 'token-bucket' || deliveryMarginMs === 0) return remaining;
    const less = (left: number | undefined, limit: number) =>
      left === undefined ? undefined : Math.max(0, left - Math.ceil((limit * deliveryMarginMs) / windowMs));
    return {
      tokens: less(remaining.tokens, limits.tokens),
      inputTokens: less(remaining.inputTokens, limits.inputTokens),
      outputTokens: less(remaining.outputTokens, limits.outputTokens),
      requests: less(remaining.requests, limits.requests),
    };
  }

  /** Round-trip time to the store, ms (0 for memory); rejects when it cannot be reached. */
  ping(): Promise<number> {
    return this.pingStore();
  }

  /**
   * How many limiter instances for this model were live at the last heartbeat (counted only with
   * `failureMode: 'local'` and no `expectedInstances`; 1 until the first beat).
   */
  get liveInstanceCount(): number {
    return this.liveInstances;
  }

  /** True while the last store call failed and no later one has succeeded. */
  get degraded(): boolean {
    return this.outageSince !== undefined;
  }

  private costOf(request: TokenRequest): { cost: Charge; cacheRead: number; cacheWrite: number } {
    if (request === null || typeof request !== 'object') {
      throw new InvalidTokenCountError(`acquire needs { tokens } or { inputTokens, outputTokens }, got ${describe(request)}`);
    }
    const { tokens, inputTokens, outputTokens, cacheReadTokens, cacheWriteTokens } = request as Record<string, unknown>;
    let call;
    if (tokens !== undefined) {
      if (inputTokens !== undefined || outputTokens !== undefined || cacheReadTokens !== undefined || cacheWriteTokens !== undefined) {
        throw new InvalidTokenCountError('pass either tokens or inputTokens and outputTokens (with optional cache figures), not both');
      }
      if (!isCount(tokens)) throw new InvalidTokenCountError(`tokens must be a non-negative integer, got ${describe(tokens)}`);
      if (this.resolved.split) {
        throw new InvalidTokenCountError(
          `${this.model} has input or output limits (inputTpm/outputTpm): pass inputTokens and outputTokens instead of tokens`,
        );
      }
      call = { input: tokens, output: 0, cacheRead: 0, cacheWrite: 0 };
    } else {
      const cacheRead = cacheReadTokens ?? 0;
      const cacheWrite = cacheWriteTokens ?? 0;
      if (!isCount(inputTokens)) throw new InvalidTokenCountError(`inputTokens must be a non-negative integer, got ${describe(inputTokens)}`);
      if (!isCount(outputTokens)) throw new InvalidTokenCountError(`outputTokens must be a non-negative integer, got ${describe(outputTokens)}`);
      if (!isCount(cacheRead)) throw new InvalidTokenCountError(`cacheReadTokens must be a non-negative integer, got ${describe(cacheRead)}`);
      if (!isCount(cacheWrite)) throw new InvalidTokenCountError(`cacheWriteTokens must be a non-negative integer, got ${describe(cacheWrite)}`);
      call = { input: inputTokens, output: outputTokens, cacheRead, cacheWrite };
    }
    const charged = chargeOf(this.resolved.profile, this.resolved.burndownRate, call, 'admit');
    const cost: Charge = { tokens: charged.tokens, inputTokens: charged.inputTokens, outputTokens: charged.outputTokens, requests: 1 };
    const { limits } = this.resolved;
    if (limits.tokens > 0 && cost.tokens > limits.tokens) this.tooLarge('tpm', cost.tokens, limits.tokens);
    if (limits.inputTokens > 0 && cost.inputTokens > limits.inputTokens) this.tooLarge('inputTpm', cost.inputTokens, limits.inputTokens);
    if (limits.outputTokens > 0 && cost.outputTokens > limits.outputTokens) this.tooLarge('outputTpm', cost.outputTokens, limits.outputTokens);
    return { cost, cacheRead: call.cacheRead, cacheWrite: call.cacheWrite };
  }

  private tooLarge(name: string, needed: number, limit: number): never {
    throw new RequestTooLargeError(
      `a request for ${needed} tokens can never fit ${this.model}'s ${name} of ${limit} per ${this.resolved.windowMs / 1000} s (burst included); split the request or raise the limit`,
      name,
      needed,
      limit,
    );
  }

  private checkAcquireOptions(options: AcquireOptions): number {
    if (options === null || typeof options !== 'object') {
      throw new RateLimitConfigError(`acquire options must be an object such as { maxWaitMs: 5000 }, got ${describe(options)}`);
    }
    const { maxWaitMs, signal } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new RateLimitConfigError(`signal must be an AbortSignal, got ${describe(signal)}`);
    }
    if (maxWaitMs === undefined) return -1;
    if (typeof maxWaitMs !== 'number' || !Number.isFinite(maxWaitMs) || maxWaitMs < 0) {
      throw new RateLimitConfigError(`maxWaitMs must be a non-negative number of ms, got ${describe(maxWaitMs)}`);
    }
    return Math.floor(maxWaitMs);
  }

  private aborted(signal: AbortSignal): AcquireAbortedError {
    return new AcquireAbortedError(`acquire for ${this.model} was aborted; its reservation was released`, { cause: signal.reason });
  }

  private async releaseQuietly(recordId: string, reason: 'aborted'): Promise<void> {
    try {
      await this.releaseAs(recordId, reason);
    } catch (error) {
      this.logger.warn(`could not release ${recordId} for ${this.model}; it frees when its window passes: ${String(error)}`);
    }
  }

  private cancelLater(opId: string, cost: Charge): void {
    this.store
      .release({ opId, mode: 'cancel', bucket: -1, settings: this.settings, charged: cost })
      .then(
        (reply) => {
          if (reply.status === 'ok') this.emit({ type: 'released', model: this.model, recordId: formatDegradedRecordId(opId), reason: 'cancelled' });
        },
        () => {
          // Still unreachable: if the acquire did run, its charge frees when its window passes.
        },
      );
  }

  private track(opId: string, charge: Omit<Charge, 'requests'>): void {
    const now = Date.now();
    for (const [key, entry] of this.tracked) {
      if (entry.keepUntil > now) break;
      this.tracked.delete(key);
    }
    this.tracked.delete(opId);
    this.tracked.set(opId, { charge, keepUntil: now + 2 * this.resolved.windowMs + 60_000 });
  }

  private reportAdjust(recordId: string, result: AdjustResult): AdjustResult {
    this.emit({ type: 'adjusted', model: this.model, recordId, ...result });
    return result;
  }

  /** Where a record's adjust or release goes: its store, or nowhere while Redis is known down. */
  private targetOf(record: { local: boolean }): { store: ModelStore; settings: ModelSettings } | undefined {
    if (record.local) return this.localFallback();
    return this.outageSince === undefined ? { store: this.store, settings: this.settings } : undefined;
  }

  /**
   * Where what the provider says goes: the shared store, or while Redis is known down, this
   * process's fallback with failureMode 'local' (else nowhere).
   */
  private feedbackTarget(): { store: ModelStore; settings: ModelSettings; local: boolean } | undefined {
    if (this.outageSince === undefined) return { store: this.store, settings: this.settings, local: false };
    return this.failureMode === 'local' ? { ...this.localFallback(), local: true } : undefined;
  }

  private unavailable(): RedisUnavailableError {
    const since = new Date(this.outageSince ?? Date.now()).toISOString();
    return new RedisUnavailableError(`${this.model}: Redis has been unavailable since ${since}; ${this.outageCause?.message ?? ''}`, {
      cause: this.outageCause,
    });
  }

  /** The in-process limiter of `failureMode: 'local'`: this process's share of every limit. */
  private localFallback(): { store: ModelStore; settings: ModelSettings } {
    const instances = Math.max(1, this.expectedInstances ?? this.liveInstances);
    if (!this.local || this.local.settings.limits !== this.localLimits?.[1] || this.localLimits[0] !== instances) {
      const share = (limit: number) => (limit > 0 ? Math.max(1, Math.floor(limit / instances)) : 0);
      const l = this.settings.limits;
      const limits = { tokens: share(l.tokens), inputTokens: share(l.inputTokens), outputTokens: share(l.outputTokens), requests: share(l.requests) };
      this.localLimits = [instances, limits];
      // Learned limits are not learned further in the fallback: no 429 reaches it.
      const { windowMs, algorithm, bucketMs, paceMs } = this.settings;
      const settings: ModelSettings = { windowMs, algorithm, bucketMs, paceMs, limits };
      this.local = { store: this.local?.store ?? new MemoryStore(() => this.replayAt ?? Date.now()).forModel(this.model, 'local'), settings };
    }
    return this.local;
  }

  /** With failureMode 'local': this process's reservations of the last window and queued, by slot. */
  private readonly recent: { at: number; cost: Charge; local: boolean }[] = [];
  /** What this process admitted in its fallback during the window before Redis answered again. */
  private handback?: Charge;
  /** While admissions are replayed into a fresh fallback: the time its clock reads. */
  private replayAt?: number;

  private remember(at: number, cost: Charge, local: boolean): void {
    const now = Date.now();
    this.recent.push({ at, cost, local });
    while (this.recent.length > 0 && this.recent[0]!.at <= now - this.resolved.windowMs) this.recent.shift();
  }

  /**
   * A fresh fallback that holds this process's own admissions of the last window where they
   * were made, so the share starts as full as this process had made it on Redis, not empty: an
   * empty one would let every process send its whole share into a provider window that is
   * already full.
   */
  private startFallback(): void {
    this.local = undefined;
    const { store, settings } = this.localFallback();
    const since = Date.now() - this.resolved.windowMs;
    const entries = this.recent.filter((e) => e.at > since).sort((a, b) => a.at - b.at);
    for (const entry of entries) {
      this.replayAt = entry.at;
      // The memory store reads its clock synchronously, before this call returns.
      void store.acquire({ opId: newOpId(), settings, cost: entry.cost, maxWaitMs: -1 });
    }
    this.replayAt = undefined;
  }

  private localLimits?: [number, ModelSettings['limits']];

  /** Announces this instance in Redis every few seconds, to learn how many share the limits. */
  private startHeartbeat(): void {
    if (this.heartbeat || this.failureMode !== 'local' || this.expectedInstances !== undefined) return;
    const beat = () => {
      if (this.outageSince !== undefined) return;
      this.store.heartbeat(this.instanceId, HEARTBEAT_TTL_MS).then(
        (count) => {
          this.liveInstances = Math.max(1, count);
        },
        (error: unknown) => this.logger.warn(`${this.model}: heartbeat failed: ${String(error)}`),
      );
    };
    beat();
    this.heartbeat = setInterval(beat, HEARTBEAT_TTL_MS / 3);
    this.heartbeat.unref();
  }

  private startProbe(): void {
    if (this.probe) return;
    let probing = false;
    this.probe = setInterval(() => {
      if (probing) return;
      probing = true;
      this.pingStore().then(
        () => {
          probing = false;
          this.markUp();
        },
        () => {
          probing = false;
        },
      );
    }, PROBE_INTERVAL_MS);
    this.probe.unref();
  }

  private markDown(operation: 'acquire' | 'adjust' | 'release' | 'status' | 'observe', cause: RedisUnavailableError): void {
    this.outageCause = cause;
    if (this.outageSince !== undefined) return;
    this.outageSince = Date.now();
    if (this.failureMode === 'local') this.startFallback();
    this.startProbe();
    const then = {
      open: 'letting calls through unlimited',
      closed: 'rejecting calls',
      local: `limiting in this process to 1/${Math.max(1, this.expectedInstances ?? this.liveInstances)} of each limit`,
    }[this.failureMode];
    this.logger.warn(`${this.model}: Redis is unavailable (${cause.message}); ${then} until it answers again`);
    this.emit({ type: 'degraded', model: this.model, operation, failureMode: this.failureMode, cause });
  }

  private markUp(): void {
    if (this.outageSince === undefined) return;
    const outageMs = Date.now() - this.outageSince;
    this.outageSince = undefined;
    if (this.failureMode === 'local') {
      // Redis does not know what the fallback admitted (and may have come back empty).
      const since = Date.now() - this.resolved.windowMs;
      const meanwhile = this.recent.filter((e) => e.local && e.at > since).reduce((sum, e) => addCharges(sum, e.cost), NO_CHARGE);
      this.handback = meanwhile.requests > 0 ? meanwhile : undefined;
    }
    clearInterval(this.probe);
    this.probe = undefined;
    this.logger.log?.(`${this.model}: Redis answers again after ${outageMs} ms; limiting resumed`);
    this.emit({ type: 'recovered', model: this.model, outageMs });
  }

  private emit(event: RateLimiterEvent): void {
    if (!this.onEvent) return;
    try {
      this.onEvent(event);
    } catch (error) {
      this.logger.error(`onEvent handler threw on a ${event.type} event: ${String(error)}`);
    }
  }
}
