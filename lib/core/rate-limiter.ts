import { localStoreFactory, toLimiterStore } from './backend.js';
import { type ActualUsage, adjustTarget, costOf, type TokenRequest } from './charges.js';
import { describe } from './describe.js';
import { type FailureMode, type RateLimitConfig, type ResolvedConfig, resolveConfig } from './config.js';
import { reconcileCommandOf, storeSettingsOf } from './feedback.js';
import { RateLimitConfigError, RedisUnavailableError } from './errors.js';
import { consoleLogger, type LimiterLogger, type RateLimiterEvent } from './events.js';
import { FailoverStore } from './failover-store.js';
import {
  type AcquireOptions,
  checkAcquireOptions,
  checkLimiterOptions,
  checkModel,
  type RateLimiterBackend,
  type RateLimiterOptions,
  type ReleaseOptions,
} from './options.js';
import { formatDegradedRecordId, formatRecordId, newOpId, parseRecordId } from './record-id.js';
import { type HeaderSource, readProviderHeaders } from '../providers/headers.js';
import { billingCodeOf } from '../providers/billing-errors.js';
import type { AcquireResult, AdjustResult, ObserveResult, RateLimitStatus, ReleaseResult } from './results.js';
import { BACKOFF_CUT, BACKOFF_FLOOR, type Charge, type ModelSettings, type SettleReply } from './store.js';
import { statusOf } from './status.js';
import { Waiters } from './waiters.js';

export type { ActualUsage, TokenRequest } from './charges.js';
export type { AcquireOptions, RateLimiterBackend, RateLimiterOptions, ReleaseOptions } from './options.js';

const NOTHING = { tokensDelta: 0, inputTokensDelta: 0, outputTokensDelta: 0 };
const NOTHING_FREED = { tokensFreed: 0, inputTokensFreed: 0, outputTokensFreed: 0 };

/**
 * Whether a settle was answered without the record it names: let through with nothing recorded
 * (failureMode 'open'), or a record of the shared store while it is down. A record of the local
 * fallback is settled there for real, and its reply counts as any other.
 */
function answeredWithout(reply: SettleReply, record: { readonly local: boolean }): boolean {
  return reply.degraded === 'open' || (reply.degraded === 'local' && !record.local);
}

/**
 * Keeps calls to one model within its provider limits across every process that shares the
 * backend. `acquire` resolves when the caller is admitted (one FIFO queue per model, shared by
 * every process); report the real usage with `adjust`, or `release` a reservation whose call
 * never reached the provider. Whatever frees room lets the head of the queue in at once.
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
  private readonly store: FailoverStore;
  private readonly waiters: Waiters;
  private readonly backendKind: 'redis' | 'memory';
  private readonly logger: LimiterLogger;
  private readonly onEvent?: (event: RateLimiterEvent) => void;
  private readonly pingStore: () => Promise<number>;

  constructor(backend: RateLimiterBackend, model: string, config: RateLimitConfig, options: RateLimiterOptions = {}) {
    checkModel(model);
    this.resolved = resolveConfig(config);
    this.settings = storeSettingsOf(this.resolved);
    const { failureMode, expectedInstances: expected, keyPrefix } = checkLimiterOptions(options);
    const store = toLimiterStore(backend);
    // Resolved now, so that a missing fallback is a configuration error, not an outage's.
    const makeLocal = failureMode === 'local' ? localStoreFactory() : undefined;
    this.model = model;
    this.config = Object.freeze({ ...config });
    this.failureMode = failureMode;
    this.backendKind = store.kind;
    this.pingStore = () => store.ping();
    this.logger = options.logger ?? consoleLogger;
    this.onEvent = options.onEvent;
    // Stored in every waiting record: 8 characters (48 random bits) tell processes apart.
    const owner = newOpId().slice(0, 8);
    this.store = new FailoverStore({
      inner: store.forModel(model, keyPrefix),
      model,
      settings: this.settings,
      windowMs: this.resolved.windowMs,
      failureMode,
      expectedInstances: expected,
      instanceId: owner,
      ping: this.pingStore,
      leaseHoldMs: store.leaseHoldMs,
      fallbackStore: (clock) => (makeLocal ?? localStoreFactory())(clock).forModel(model, 'local'),
      logger: this.logger,
      emit: (event) => this.emit(event),
    });
    this.waiters = new Waiters({
      store: this.store,
      owner,
      settings: this.settings,
      model,
      logger: this.logger,
      release: (opId, recordId, reason) => this.giveBack(opId, recordId, reason),
    });
  }

  /** Where the state lives: `'redis'` (shared) or `'memory'` (this process only). */
  get backend(): 'redis' | 'memory' {
    return this.backendKind;
  }

  /**
   * Reserves capacity for one call and resolves once it is admitted. Rejects at once with
   * `InvalidTokenCountError` or `RequestTooLargeError` for a request that can never be served,
   * `AcquireTimeoutError` past `maxWaitMs`, `AcquireAbortedError` when `signal` fires.
   */
  async acquire(request: TokenRequest, options: AcquireOptions = {}): Promise<AcquireResult> {
    const { cost, call } = costOf(this.resolved, this.model, request);
    const maxWaitMs = checkAcquireOptions(options);
    const admission = await this.waiters.admit({
      cost,
      maxWaitMs,
      signal: options.signal,
      recordIdOf: (opId, degraded) =>
        degraded === 'open'
          ? formatDegradedRecordId(opId)
          : formatRecordId({
              opId,
              local: degraded === 'local',
              input: call.input,
              output: call.output,
              cacheRead: call.cacheRead,
              cacheWrite: call.cacheWrite,
            }),
    });
    const { recordId, waitedMs, position } = admission;
    const degraded = admission.degraded !== undefined;
    if (this.onEvent) this.emit({ type: 'acquired', model: this.model, recordId, waitMs: waitedMs, queuePosition: position, degraded });
    return { slotTime: admission.slotMs, waitTime: waitedMs, queuePosition: position, recordId, degraded };
  }

  /**
   * Settles a reservation at the call's real usage, in every figure it touches (combined, input,
   * output; burndown applied): the difference is charged, or refunded where the provider
   * refunds. A reservation settles once: a second adjust changes nothing (`'settled'`).
   */
  async adjust(recordId: string, usage: ActualUsage): Promise<AdjustResult> {
    const record = parseRecordId(recordId);
    const to = adjustTarget(this.resolved, this.model, record, usage);
    if (record.degraded) return this.reportAdjust(recordId, { status: 'degraded', ...NOTHING });
    const reply = await this.settle(record.opId, 'adjust', to);
    if (answeredWithout(reply, record)) return this.reportAdjust(recordId, { status: 'degraded', ...NOTHING });
    const { applied } = reply;
    switch (reply.status) {
      case 'ok': {
        const moved = applied.tokens !== 0 || applied.inputTokens !== 0 || applied.outputTokens !== 0;
        const deltas = { tokensDelta: applied.tokens, inputTokensDelta: applied.inputTokens, outputTokensDelta: applied.outputTokens };
        return this.reportAdjust(recordId, moved ? { status: 'applied', ...deltas } : { status: 'unchanged', ...NOTHING });
      }
      case 'settled':
        return this.reportAdjust(recordId, { status: 'settled', ...NOTHING });
      case 'expired':
        this.logger.warn(`adjust of ${recordId} for ${this.model}: the reservation has left the window; nothing moved`);
        return this.reportAdjust(recordId, { status: 'expired', ...NOTHING });
      case 'released':
      case 'timeout':
      case 'lost':
        this.logger.warn(`adjust of ${recordId} for ${this.model} ignored: the reservation has been released`);
        return this.reportAdjust(recordId, { status: 'released', ...NOTHING });
      default:
        this.logger.warn(`adjust of ${recordId} for ${this.model} ignored: ${this.unknownWhy(reply.status)}`);
        return this.reportAdjust(recordId, { status: 'unknown', ...NOTHING });
    }
  }

  /**
   * Gives a reservation back, for a call that never reached the provider, or that reached one
   * which does not count failed calls; with `reachedProvider` and a provider that does (OpenAI),
   * the charge stays and the reservation is settled. A second release changes nothing.
   */
  async release(recordId: string, options: ReleaseOptions = {}): Promise<ReleaseResult> {
    if (options === null || typeof options !== 'object') {
      throw new RateLimitConfigError(`release options must be an object such as { reachedProvider: true }, got ${describe(options)}`);
    }
    const record = parseRecordId(recordId);
    if (record.degraded) return { status: 'degraded', ...NOTHING_FREED };
    const keep = options.reachedProvider === true && this.resolved.profile.chargesFailedCalls;
    const reply = await this.settle(record.opId, keep ? 'keep' : 'release');
    if (answeredWithout(reply, record)) return { status: 'degraded', ...NOTHING_FREED };
    switch (reply.status) {
      case 'ok':
      case 'expired': {
        if (keep) return { status: 'kept', ...NOTHING_FREED };
        this.emit({ type: 'released', model: this.model, recordId, reason: 'released' });
        const { applied } = reply;
        return {
          status: 'released',
          tokensFreed: -applied.tokens,
          inputTokensFreed: -applied.inputTokens,
          outputTokensFreed: -applied.outputTokens,
        };
      }
      case 'settled':
        return { status: 'settled', ...NOTHING_FREED };
      case 'released':
      case 'timeout':
      case 'lost':
        return { status: 'released-before', ...NOTHING_FREED };
      default:
        this.logger.warn(`release of ${recordId} for ${this.model} ignored: ${this.unknownWhy(reply.status)}`);
        return { status: 'unknown', ...NOTHING_FREED };
    }
  }

  /** Usage of the window ending now, and how many reservations wait. Rejects when the store is down. */
  async getStatus(): Promise<RateLimitStatus> {
    return statusOf(this.model, this.resolved, await this.store.status(this.settings));
  }

  /**
   * Tells every process that the provider answered 429 (or is overloaded): admissions of this
   * model pause for `retryAfterMs` (default 1 s), and its limits are cut to 75% (down to 5%),
   * recovering by 10% of the limit per window. 429s within a second of a cut (one burst of
   * in-flight calls) cut once. With `learnLimits`, the learned limits are cut the same way and
   * grow again only under pressing demand, from the end of the pause. While Redis is down it
   * rejects with `RedisUnavailableError`, except with `failureMode: 'local'` (this process pauses).
   */
  async backOff(options: { retryAfterMs?: number } = {}): Promise<{ pausedUntil: number; limitFactor: number }> {
    const retryAfterMs = options.retryAfterMs ?? 1000;
    if (typeof retryAfterMs !== 'number' || !Number.isFinite(retryAfterMs) || retryAfterMs < 0) {
      throw new RateLimitConfigError(`retryAfterMs must be a non-negative number of ms, got ${describe(retryAfterMs)}`);
    }
    const pauseMs = Math.min(Math.ceil(retryAfterMs), Math.max(this.resolved.windowMs, 60_000));
    const reply = await this.store.backOff(this.settings, {
      pauseMs,
      cut: BACKOFF_CUT,
      floor: BACKOFF_FLOOR,
      settleMs: Math.max(1000, pauseMs),
    });
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
   * room than this limiter counts, the difference (quota spent by others) is charged now. Pass
   * the error `body` of a refused call: a billing refusal (`insufficient_quota`, `billing_error`)
   * is reported as a `billing` event and changes nothing else.
   *
   * @example
   * const { data, response } = await openai.chat.completions.create(body).withResponse();
   * await limiter.observe(response.headers, { status: response.status });
   */
  async observe(headers: HeaderSource, options: { status?: number; body?: unknown } = {}): Promise<ObserveResult> {
    if (headers === null || typeof headers !== 'object') {
      throw new RateLimitConfigError(`observe needs the response headers, got ${describe(headers)}`);
    }
    const none = { tokens: 0, inputTokens: 0, outputTokens: 0, requests: 0 };
    const billing = options.status !== undefined && options.status >= 400 ? billingCodeOf(options.body) : undefined;
    if (billing !== undefined) {
      this.logger.warn(
        `${this.model}: the provider refused a call for billing (${billing}); limits unchanged, the error goes to the caller`,
      );
      this.emit({ type: 'billing', model: this.model, status: options.status!, code: billing });
      return { foreign: none, billing };
    }
    const report = readProviderHeaders(headers);
    try {
      let backoff: { pausedUntil: number; limitFactor: number } | undefined;
      if (options.status === 429 || options.status === 529) {
        backoff = await this.backOff({ retryAfterMs: report.retryAfterMs ?? report.exhaustedResetMs ?? 1000 });
      }
      const command = reconcileCommandOf(this.resolved, report);
      const foreign = command ? await this.store.reconcile(this.settings, command) : none;
      if (foreign.tokens + foreign.inputTokens + foreign.outputTokens + foreign.requests > 0) {
        this.emit({ type: 'reconciled', model: this.model, foreign });
      }
      return { ...backoff, foreign };
    } catch (error) {
      if (!(error instanceof RedisUnavailableError) || this.failureMode === 'closed') throw error;
      return { foreign: none };
    }
  }

  /** Round-trip time to the store, ms (0 for memory); rejects when it cannot be reached. */
  ping(): Promise<number> {
    return this.pingStore();
  }

  /**
   * How many limiter instances for this model were live at the last heartbeat (counted only with
   * `failureMode: 'local'`; 1 until the first beat).
   */
  get liveInstanceCount(): number {
    return this.store.liveInstanceCount;
  }

  /** True while the last store call failed and no later one has succeeded. */
  get degraded(): boolean {
    return this.store.degraded;
  }

  /** One settle of a record; what its reply says of the queue goes to the waiters. */
  private async settle(opId: string, mode: 'adjust' | 'release' | 'keep', to?: Omit<Charge, 'requests'>): Promise<SettleReply> {
    const reply = await this.store.settle({ opId, settings: this.settings, mode, to, refunds: this.resolved.profile.refunds });
    this.waiters.news(reply);
    return reply;
  }

  /** Gives back a reservation whose caller stopped waiting; undefined when the store failed. */
  private async giveBack(opId: string, recordId: string, reason: 'aborted' | 'timeout'): Promise<SettleReply | undefined> {
    try {
      const reply = await this.settle(opId, 'release');
      if (reply.status === 'ok' && !reply.degraded) this.emit({ type: 'released', model: this.model, recordId, reason });
      return reply;
    } catch (error) {
      this.logger.warn(
        `could not release ${recordId} for ${this.model}; the store drops it when it reaches the head of the queue, or its charge leaves with its window: ${String(error)}`,
      );
      return undefined;
    }
  }

  private unknownWhy(status: SettleReply['status']): string {
    return status === 'waiting'
      ? 'the reservation has not been admitted yet'
      : "this model's store does not know it (another model's record id, one never acquired, or one settled more than 10 s ago)";
  }

  private reportAdjust(recordId: string, result: AdjustResult): AdjustResult {
    if (this.onEvent) this.emit({ type: 'adjusted', model: this.model, recordId, ...result });
    return result;
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
