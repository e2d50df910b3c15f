import type { LimiterLogger, RateLimiterEvent } from '../core/events.js';
import type { RateLimiter } from '../core/rate-limiter.js';
import type { RateLimitStatus } from '../core/results.js';
import type { BatchCallback, LimiterMeter } from './limiter-meter.js';

/** Each figure's name in the `figure` label, with where the status keeps it. */
const FIGURES = [
  ['tokens', 'tokensUsed', 'tokensLimit', 'tokens'],
  ['input_tokens', 'inputTokensUsed', 'inputTokensLimit', 'inputTokens'],
  ['output_tokens', 'outputTokensUsed', 'outputTokensLimit', 'outputTokens'],
  ['requests', 'requestsUsed', 'requestsLimit', 'requests'],
] as const satisfies ReadonlyArray<readonly [string, keyof RateLimitStatus, keyof RateLimitStatus, keyof RateLimitStatus['limitsInForce']]>;

// Waits run from nothing (admitted at once) to a window or more; the SDK's default buckets are
// sized for milliseconds.
const WAIT_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

/**
 * Records the limiters' state and events as OpenTelemetry metrics, labelled by `model`.
 * Gauges are read when the metrics are collected (one status read per model per collection,
 * nothing per acquire); counters and the wait histogram come from the limiters' events, so
 * `onEvent` must reach `record`. The Nest module does both when given `metrics: { meter }`.
 *
 * Instruments: `llm_rate_limiter.used` and `.limit` (per `figure`: tokens, input_tokens,
 * output_tokens, requests; the limit in force after 429 cuts or learning), `.limit_factor`,
 * `.queue_depth`, `.paused` (0/1), `.degraded` (0/1), `.wait` (histogram, s), `.admissions`
 * (by `degraded`), `.releases` (by `reason`), `.backoffs` (provider 429s heard), `.outages`.
 *
 * @example
 * const metrics = new LimiterMetrics(meterProvider.getMeter('llm'));
 * const limiter = new RateLimiter(manager, 'gpt-4o', { tpm: 30_000 }, { onEvent: metrics.record });
 * metrics.observe(limiter);
 */
export class LimiterMetrics {
  private readonly limiters = new Map<string, RateLimiter>();
  /** Models whose last status read failed, so an outage is logged once rather than per collection. */
  private readonly failing = new Set<string>();
  private readonly gauges: { used: object; limit: object; limitFactor: object; queueDepth: object; paused: object; degraded: object };
  private readonly wait;
  private readonly admissions;
  private readonly releases;
  private readonly backoffs;
  private readonly outages;
  private readonly collect: BatchCallback;
  private closed = false;

  constructor(
    private readonly meter: LimiterMeter,
    private readonly logger: LimiterLogger = console,
  ) {
    const gauge = (name: string, description: string) => meter.createObservableGauge(`llm_rate_limiter.${name}`, { description });
    this.gauges = {
      used: gauge('used', 'What the window ending now holds, per figure (tokens, input_tokens, output_tokens, requests)'),
      limit: gauge('limit', 'The limit admissions are held to now, per figure (after 429 cuts or learning)'),
      limitFactor: gauge('limit_factor', 'Fraction of the configured limits in force (below 1 after 429s; above 1 when learned)'),
      queueDepth: gauge('queue_depth', 'Reservations waiting for admission, from every process'),
      paused: gauge('paused', '1 while admissions are paused after a provider 429'),
      degraded: gauge('degraded', "1 while this process cannot reach the limiter's store (failureMode applies)"),
    };
    this.wait = meter.createHistogram('llm_rate_limiter.wait', {
      description: 'Time from acquire to admission',
      unit: 's',
      advice: { explicitBucketBoundaries: WAIT_BUCKETS_SECONDS },
    });
    this.admissions = meter.createCounter('llm_rate_limiter.admissions', {
      description: 'Calls admitted (degraded: let through while the store was unavailable)',
    });
    this.releases = meter.createCounter('llm_rate_limiter.releases', {
      description: 'Reservations given back, by reason (released, aborted, timeout, cancelled)',
    });
    this.backoffs = meter.createCounter('llm_rate_limiter.backoffs', {
      description: 'Provider 429s heard through observe() or backOff(), each pausing admissions',
    });
    this.outages = meter.createCounter('llm_rate_limiter.outages', { description: "Times this process lost the limiter's store" });
    this.collect = (result) => this.report(result);
    meter.addBatchObservableCallback(this.collect, Object.values(this.gauges));
  }

  /** Reports a limiter's gauges from now on (its events must reach `record`). */
  observe(limiter: RateLimiter): void {
    this.limiters.set(limiter.model, limiter);
  }

  /** Counts one limiter event; pass it as the limiters' `onEvent` (it is bound). */
  readonly record = (event: RateLimiterEvent): void => {
    const model = { model: event.model };
    switch (event.type) {
      case 'acquired':
        this.admissions.add(1, { ...model, degraded: String(event.degraded) });
        this.wait.record(event.waitMs / 1000, model);
        break;
      case 'released':
        this.releases.add(1, { ...model, reason: event.reason });
        break;
      case 'backoff':
        this.backoffs.add(1, model);
        break;
      case 'degraded':
        this.outages.add(1, { ...model, failure_mode: event.failureMode });
        break;
      default:
        break;
    }
  };

  /** Stops reporting the gauges (counters stop with the limiters' events). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.meter.removeBatchObservableCallback(this.collect, Object.values(this.gauges));
  }

  private async report(result: Parameters<BatchCallback>[0]): Promise<void> {
    const { gauges } = this;
    await Promise.all(
      [...this.limiters.values()].map(async (limiter) => {
        const model = { model: limiter.model };
        result.observe(gauges.degraded, limiter.degraded ? 1 : 0, model);
        let status: RateLimitStatus;
        try {
          status = await limiter.getStatus();
        } catch (error) {
          if (!this.failing.has(limiter.model)) {
            this.failing.add(limiter.model);
            this.logger.warn(
              `metrics: ${limiter.model}'s usage cannot be read, so its usage gauges are left out until it can: ${String(error)}`,
            );
          }
          return;
        }
        this.failing.delete(limiter.model);
        for (const [figure, used, limit, inForce] of FIGURES) {
          // A figure whose limit is off is not limited: no series for it.
          if (status[limit] === 0) continue;
          result.observe(gauges.used, status[used], { ...model, figure });
          result.observe(gauges.limit, status.limitsInForce[inForce], { ...model, figure });
        }
        result.observe(gauges.limitFactor, status.limitFactor, model);
        result.observe(gauges.queueDepth, status.queueDepth, model);
        result.observe(gauges.paused, status.pausedUntil > Date.now() ? 1 : 0, model);
      }),
    );
  }
}
