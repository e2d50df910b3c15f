import { SlidingLedger, type LedgerEntry } from '../ledger.js';
import { type ChargeSink, type ChargeSource, DIMENSIONS, type Dimension, type Figures, type LimitState, type Rejection } from './policy.js';

/** Limits enforced over one strict sliding window, one ledger per limited dimension. */
export class WindowedLimits {
  private readonly ledgers = new Map<Dimension, SlidingLedger>();

  constructor(
    readonly windowMs: number,
    readonly limits: Figures,
    private readonly sink?: ChargeSink,
  ) {
    for (const dimension of DIMENSIONS) {
      if (limits[dimension]) this.ledgers.set(dimension, new SlidingLedger(windowMs));
    }
  }

  /** The first limit `cost` breaks, with the wait until all of them would hold; undefined when it fits. */
  check(now: number, cost: Figures): Omit<Rejection, 'admitted'> | undefined {
    let first: Omit<Rejection, 'admitted'> | undefined;
    let retryAfterMs = 0;
    for (const [dimension, ledger] of this.ledgers) {
      const limit = this.limits[dimension]!;
      const requested = cost[dimension] ?? 0;
      const wait = ledger.msUntilFits(now, requested, limit);
      if (wait > 0) {
        retryAfterMs = Math.max(retryAfterMs, wait);
        first ??= { dimension, limit, used: ledger.used(now), requested, retryAfterMs: 0 };
      }
    }
    return first && { ...first, retryAfterMs };
  }

  add(now: number, cost: Figures, source: ChargeSource): Partial<Record<Dimension, LedgerEntry>> {
    const entries: Partial<Record<Dimension, LedgerEntry>> = {};
    for (const [dimension, ledger] of this.ledgers) {
      const amount = cost[dimension] ?? 0;
      entries[dimension] = ledger.add(now, amount);
      if (amount !== 0) this.sink?.({ at: now, dimension, amount, source });
    }
    return entries;
  }

  /** Moves the entries of a call to new figures, dated at the call's admission. */
  settle(now: number, entries: Partial<Record<Dimension, LedgerEntry>>, to: Figures, source: ChargeSource = 'call'): void {
    for (const [dimension, ledger] of this.ledgers) {
      const entry = entries[dimension];
      const amount = to[dimension];
      if (!entry || amount === undefined || amount === entry.amount) continue;
      const delta = amount - entry.amount;
      // Past the window the provider no longer counts the call; the report still dates it at admission.
      ledger.settle(now, entry, amount);
      entry.amount = amount;
      this.sink?.({ at: entry.at, dimension, amount: delta, source });
    }
  }

  state(now: number): LimitState[] {
    return [...this.ledgers].map(([dimension, ledger]) => {
      const limit = this.limits[dimension]!;
      return { dimension, limit, remaining: Math.max(0, limit - ledger.used(now)), resetMs: ledger.msUntilEmpty(now) };
    });
  }
}
