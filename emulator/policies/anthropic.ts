import { TokenBucket } from '../ledger.js';
import {
  type Admission,
  type CallFigures,
  type ChargeSink,
  checkLimit,
  checkWindow,
  type Dimension,
  type Figures,
  type LimitState,
  type Policy,
  type Ticket,
} from './policy.js';

export interface AnthropicPolicyConfig {
  readonly kind: 'anthropic';
  readonly windowMs: number;
  readonly rpm?: number;
  /** Input tokens per window: uncached input + cache writes (cache reads excluded). */
  readonly inputTpm?: number;
  /** Output tokens per window. */
  readonly outputTpm?: number;
  /** Each bucket holds this many ms of refill (default windowMs: a full minute's worth). */
  readonly bucketMs?: number;
  /**
   * `'produced'` (default, current docs): output counts as it is produced and `max_tokens` plays
   * no part at admission. `'max-tokens'` (older docs): `max_tokens` is reserved at admission and
   * the unused part returned at the end.
   */
  readonly outputCounting?: 'produced' | 'max-tokens';
  /** Count cache reads against input too (older models); default false. */
  readonly cacheReadsCount?: boolean;
}

/**
 * Anthropic-like: RPM, ITPM and OTPM as token buckets, refilled continuously at limit / window up
 * to `bucketMs` worth.
 */
export class AnthropicPolicy implements Policy {
  readonly kind = 'anthropic';
  readonly windowMs: number;
  readonly limits: Figures;
  private readonly buckets = new Map<Dimension, TokenBucket>();
  private readonly outputCounting: 'produced' | 'max-tokens';
  private readonly cacheReadsCount: boolean;
  private nextId = 1;

  constructor(
    config: AnthropicPolicyConfig,
    private readonly sink?: ChargeSink,
    now = Date.now(),
  ) {
    this.windowMs = checkWindow(config.windowMs);
    this.limits = {
      requests: checkLimit('rpm', config.rpm),
      inputTokens: checkLimit('inputTpm', config.inputTpm),
      outputTokens: checkLimit('outputTpm', config.outputTpm),
    };
    const bucketMs = config.bucketMs ?? this.windowMs;
    if (!(bucketMs > 0 && bucketMs <= this.windowMs))
      throw new Error(`emulator policy: bucketMs must be in (0, windowMs], got ${bucketMs}`);
    for (const dimension of ['requests', 'inputTokens', 'outputTokens'] as const) {
      const limit = this.limits[dimension];
      if (limit) this.buckets.set(dimension, new TokenBucket((limit * bucketMs) / this.windowMs, limit / this.windowMs, now));
    }
    this.outputCounting = config.outputCounting ?? 'produced';
    this.cacheReadsCount = config.cacheReadsCount ?? false;
  }

  admit(now: number, call: CallFigures): Admission {
    const input = call.input + call.cacheWrite + (this.cacheReadsCount ? call.cacheRead : 0);
    const reserveOutput = this.outputCounting === 'max-tokens' ? call.maxTokens : 0;
    const cost: Figures = { requests: 1, inputTokens: input, outputTokens: reserveOutput };
    // With output counted as produced, a call is let in while the output bucket is not empty.
    const needed: Figures = { ...cost, outputTokens: this.outputCounting === 'produced' ? 1 : reserveOutput };
    let broken: Exclude<Admission, { admitted: true }> | undefined;
    let retryAfterMs = 0;
    for (const [dimension, bucket] of this.buckets) {
      const requested = needed[dimension] ?? 0;
      const wait = bucket.msUntil(now, requested);
      if (wait > 0) {
        retryAfterMs = Math.max(retryAfterMs, wait);
        broken ??= {
          admitted: false,
          dimension,
          limit: this.limits[dimension]!,
          used: Math.round(bucket.capacity - bucket.levelAt(now)),
          requested,
          retryAfterMs: 0,
        };
      }
    }
    if (broken) return { ...broken, retryAfterMs };
    for (const [dimension, bucket] of this.buckets) this.take(now, dimension, bucket, cost[dimension] ?? 0, 'call');
    return { admitted: true, ticket: { id: this.nextId++, at: now, call, charged: cost, entries: {} } };
  }

  complete(now: number, ticket: Ticket, outputTokens: number): void {
    const bucket = this.buckets.get('outputTokens');
    if (!bucket) return;
    const reserved = ticket.charged.outputTokens ?? 0;
    this.take(now, 'outputTokens', bucket, outputTokens - reserved, 'call');
  }

  fail(now: number, ticket: Ticket): void {
    for (const [dimension, bucket] of this.buckets) {
      const amount = ticket.charged[dimension] ?? 0;
      if (amount) this.take(now, dimension, bucket, -amount, 'call');
    }
  }

  spend(now: number, amounts: Figures): boolean {
    for (const [dimension, bucket] of this.buckets) {
      if (bucket.msUntil(now, amounts[dimension] ?? 0) > 0) return false;
    }
    for (const [dimension, bucket] of this.buckets) this.take(now, dimension, bucket, amounts[dimension] ?? 0, 'foreign');
    return true;
  }

  state(now: number): LimitState[] {
    return [...this.buckets].map(([dimension, bucket]) => ({
      dimension,
      limit: this.limits[dimension]!,
      remaining: Math.max(0, Math.floor(bucket.levelAt(now))),
      resetMs: bucket.msUntilFull(now),
    }));
  }

  private take(now: number, dimension: Dimension, bucket: TokenBucket, amount: number, source: 'call' | 'foreign'): void {
    if (amount === 0) return;
    if (amount > 0) bucket.take(now, amount);
    else bucket.give(now, -amount);
    this.sink?.({ at: now, dimension, amount, source });
  }
}
