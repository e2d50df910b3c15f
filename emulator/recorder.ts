import { type ChargeEvent, type ChargeSource, DIMENSIONS, type Dimension, type Figures } from './policies/policy.js';
import type { Protocol } from './protocols.js';

/** One request the emulator answered. */
export interface CallRecord {
  readonly id: number;
  readonly arrivedAt: number;
  readonly protocol: Protocol;
  readonly status: 200 | 429 | 500;
  /** For a 429: the limit the call broke, how full it was, what the call asked, the advised wait. */
  readonly dimension?: Dimension;
  readonly limit?: number;
  readonly used?: number;
  readonly requested?: number;
  readonly retryAfterMs?: number;
  /** When the client says it sent the call (header `x-client-sent-at`, epoch ms), to measure delivery delay. */
  readonly clientSentAt?: number;
  /** For an admitted call, once it completed. */
  completedAt?: number;
  outputTokens?: number;
}

/** Everything the emulator admitted and refused, and every charge, for the report. */
export class EmulatorRecorder {
  readonly calls: CallRecord[] = [];
  readonly charges: ChargeEvent[] = [];
  readonly sink = (event: ChargeEvent): void => {
    this.charges.push(event);
  };

  /** Responses with this status that arrived in [from, to). */
  count(status: CallRecord['status'], from = -Infinity, to = Infinity): number {
    let n = 0;
    for (const call of this.calls) if (call.status === status && call.arrivedAt >= from && call.arrivedAt < to) n++;
    return n;
  }

  /** What each dimension counted in [from, to) from one source, dated where the provider counts it. */
  counted(from: number, to: number, source: ChargeSource = 'call'): Figures {
    const sums: Figures = {};
    for (const event of this.charges) {
      if (event.source !== source || event.at < from || event.at >= to) continue;
      sums[event.dimension] = (sums[event.dimension] ?? 0) + event.amount;
    }
    return sums;
  }

  /** Served capacity in [from, to) as a fraction of what the limits allow over that time. */
  utilisation(from: number, to: number, limits: Figures, windowMs: number, source: ChargeSource = 'call'): Figures {
    const counted = this.counted(from, to, source);
    const out: Figures = {};
    for (const dimension of DIMENSIONS) {
      const limit = limits[dimension];
      if (limit) out[dimension] = (counted[dimension] ?? 0) / ((limit * (to - from)) / windowMs);
    }
    return out;
  }

  /**
   * Tokens served per window as a share of each limit, averaged over every window that ends in
   * [from, to]: the mean over t of counted(t - window, t) / limit. Each charge weighs by the share
   * of those windows that hold it, so the figure does not depend on where bursts fall.
   */
  windowUtilisation(from: number, to: number, limits: Figures, windowMs: number, source: ChargeSource = 'call'): Figures {
    const sums: Figures = {};
    const span = to - from;
    for (const event of this.charges) {
      if (event.source !== source) continue;
      // Windows (t - windowMs, t] with t in [from, to] that hold a charge made at `at`.
      const overlap = Math.min(event.at + windowMs, to) - Math.max(event.at, from);
      if (overlap <= 0) continue;
      sums[event.dimension] = (sums[event.dimension] ?? 0) + (event.amount * overlap) / span;
    }
    const out: Figures = {};
    for (const dimension of DIMENSIONS) {
      const limit = limits[dimension];
      if (limit) out[dimension] = (sums[dimension] ?? 0) / limit;
    }
    return out;
  }

  clear(): void {
    this.calls.length = 0;
    this.charges.length = 0;
  }
}
