import { QuantumCounter, TokenBucket } from '../ledger.js';
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
  type Rejection,
} from './policy.js';
import { WindowedLimits } from './windowed.js';

export interface OpenAiPolicyConfig {
  readonly kind: 'openai';
  readonly windowMs: number;
  readonly rpm?: number;
  readonly tpm?: number;
  /**
   * Also enforce each limit over quanta this long, at limit x quantum / window each ("60,000 per
   * minute may be enforced as 1,000 per second"). Off by default.
   */
  readonly quantumMs?: number;
  /**
   * How a quantum is enforced: `'fixed'` (default) counts per fixed interval aligned to the clock;
   * `'bucket'` is a token bucket holding one quantum's worth, refilled continuously.
   */
  readonly quantumKind?: 'fixed' | 'bucket';
  /** Rejected calls count against the limits too (default true): resending does not help. */
  readonly chargeRejected?: boolean;
}

/**
 * OpenAI-like: a call is charged at arrival with the character-based estimate of its prompt plus
 * `max_tokens`, and keeps that charge (real usage is not settled back). Failed calls count, and
 * so do rejected ones unless `chargeRejected` is false.
 */
export class OpenAiPolicy implements Policy {
  readonly kind = 'openai';
  readonly windowMs: number;
  readonly limits: Figures;
  private readonly window: WindowedLimits;
  private readonly quanta = new Map<Dimension, QuantumCounter>();
  private readonly quantumBuckets = new Map<Dimension, TokenBucket>();
  private readonly chargeRejected: boolean;
  private nextId = 1;

  constructor(config: OpenAiPolicyConfig, sink?: ChargeSink, now = Date.now()) {
    this.windowMs = checkWindow(config.windowMs);
    this.limits = { requests: checkLimit('rpm', config.rpm), tokens: checkLimit('tpm', config.tpm) };
    this.window = new WindowedLimits(this.windowMs, this.limits, sink);
    this.chargeRejected = config.chargeRejected ?? true;
    if (config.quantumMs !== undefined) {
      if (!(config.quantumMs > 0 && config.quantumMs <= this.windowMs)) {
        throw new Error(`emulator policy: quantumMs must be in (0, windowMs], got ${config.quantumMs}`);
      }
      for (const dimension of ['requests', 'tokens'] as const) {
        const limit = this.limits[dimension];
        if (!limit) continue;
        const perQuantum = Math.max(1, Math.floor((limit * config.quantumMs) / this.windowMs));
        if (config.quantumKind === 'bucket') this.quantumBuckets.set(dimension, new TokenBucket(perQuantum, limit / this.windowMs, now));
        else this.quanta.set(dimension, new QuantumCounter(config.quantumMs, perQuantum));
      }
    }
  }

  private static chargeOf(call: CallFigures): Figures {
    return { requests: 1, tokens: call.estimatedInput + call.maxTokens };
  }

  admit(now: number, call: CallFigures): Admission {
    const cost = OpenAiPolicy.chargeOf(call);
    const broken = this.window.check(now, cost) ?? this.checkQuanta(now, cost);
    if (broken) {
      if (this.chargeRejected) this.add(now, cost, 'rejected');
      const retryAfterMs = Math.max(broken.retryAfterMs, this.checkQuanta(now, cost)?.retryAfterMs ?? 0);
      return { admitted: false, ...broken, retryAfterMs };
    }
    const entries = this.add(now, cost, 'call');
    return { admitted: true, ticket: { id: this.nextId++, at: now, call, charged: cost, entries } };
  }

  complete(): void {
    // The admission charge stands, whatever the call really used.
  }

  fail(): void {
    // Failed calls count.
  }

  spend(now: number, amounts: Figures): boolean {
    if (this.window.check(now, amounts) ?? this.checkQuanta(now, amounts)) return false;
    this.add(now, amounts, 'foreign');
    return true;
  }

  state(now: number): LimitState[] {
    return this.window.state(now);
  }

  private add(now: number, cost: Figures, source: 'call' | 'rejected' | 'foreign') {
    for (const [dimension, quantum] of this.quanta) quantum.add(now, cost[dimension] ?? 0);
    for (const [dimension, bucket] of this.quantumBuckets) bucket.take(now, cost[dimension] ?? 0);
    return this.window.add(now, cost, source);
  }

  private checkQuanta(now: number, cost: Figures): Omit<Rejection, 'admitted'> | undefined {
    for (const [dimension, quantum] of this.quanta) {
      const requested = cost[dimension] ?? 0;
      const wait = quantum.msUntilFits(now, requested);
      if (wait > 0) return { dimension, limit: quantum.limit, used: quantum.used(now), requested, retryAfterMs: wait };
    }
    for (const [dimension, bucket] of this.quantumBuckets) {
      const requested = cost[dimension] ?? 0;
      const wait = bucket.msUntil(now, requested);
      if (wait > 0)
        return {
          dimension,
          limit: bucket.capacity,
          used: Math.round(bucket.capacity - bucket.levelAt(now)),
          requested,
          retryAfterMs: wait,
        };
    }
    return undefined;
  }
}
