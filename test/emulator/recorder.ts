import { type ChargeEvent, type ChargeSource, DIMENSIONS, type Dimension, type Figures } from './policies/policy.js';
import type { Protocol } from './protocols.js';

/** One request the emulator answered. */
export interface CallRecord {
  readonly id: number;
  readonly arrivedAt: number;
  readonly protocol: Protocol;
  readonly status: 200 | 429 | 500;
  /** For a 429: the limit the call broke, and the wait the emulator advised. */
  readonly dimension?: Dimension;
  readonly retryAfterMs?: number;
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

  clear(): void {
    this.calls.length = 0;
    this.charges.length = 0;
  }
}
