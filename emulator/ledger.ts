/**
 * The counting devices providers are built from: a strict sliding window whose entries can be
 * settled in place, a continuously refilled token bucket, and fixed sub-window quanta.
 */

/** One charge in a sliding window; `settle` changes it in place while it is still counted. */
export interface LedgerEntry {
  readonly at: number;
  amount: number;
  expired: boolean;
}

/**
 * A strict sliding window: an entry made at `at` counts while `now < at + windowMs`. Entries are
 * added in time order (the emulator's clock never goes back).
 */
export class SlidingLedger {
  private entries: LedgerEntry[] = [];
  private head = 0;
  private sum = 0;

  constructor(readonly windowMs: number) {}

  used(now: number): number {
    this.expire(now);
    return this.sum;
  }

  add(now: number, amount: number): LedgerEntry {
    this.expire(now);
    const entry: LedgerEntry = { at: now, amount, expired: false };
    this.entries.push(entry);
    this.sum += amount;
    return entry;
  }

  /** Sets an entry's amount; an entry that has left the window is left alone. */
  settle(now: number, entry: LedgerEntry, amount: number): void {
    this.expire(now);
    if (entry.expired) return;
    this.sum += amount - entry.amount;
    entry.amount = amount;
  }

  /** Ms from `now` until `extra` more fits under `limit`, if nothing is added meanwhile. */
  msUntilFits(now: number, extra: number, limit: number): number {
    this.expire(now);
    if (this.sum + extra <= limit) return 0;
    if (extra > limit) return Infinity;
    let remaining = this.sum;
    for (let i = this.head; i < this.entries.length; i++) {
      const entry = this.entries[i];
      remaining -= entry.amount;
      if (remaining + extra <= limit) return entry.at + this.windowMs - now;
    }
    return Infinity;
  }

  /** Ms from `now` until every entry counted now has left the window. */
  msUntilEmpty(now: number): number {
    this.expire(now);
    const last = this.entries[this.entries.length - 1];
    return last && !last.expired ? Math.max(0, last.at + this.windowMs - now) : 0;
  }

  private expire(now: number): void {
    const horizon = now - this.windowMs;
    while (this.head < this.entries.length && this.entries[this.head].at <= horizon) {
      const entry = this.entries[this.head++];
      entry.expired = true;
      this.sum -= entry.amount;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * A token bucket: holds at most `capacity`, refills continuously at `refillPerMs`. Its level may
 * go below zero when a charge is taken after the fact (output counted as produced).
 */
export class TokenBucket {
  private level: number;
  private last: number;

  constructor(
    readonly capacity: number,
    readonly refillPerMs: number,
    now: number,
  ) {
    this.level = capacity;
    this.last = now;
  }

  levelAt(now: number): number {
    if (now > this.last) {
      this.level = Math.min(this.capacity, this.level + (now - this.last) * this.refillPerMs);
      this.last = now;
    }
    return this.level;
  }

  take(now: number, amount: number): void {
    this.level = this.levelAt(now) - amount;
  }

  give(now: number, amount: number): void {
    this.level = Math.min(this.capacity, this.levelAt(now) + amount);
  }

  /** Ms from `now` until the level reaches `amount`. */
  msUntil(now: number, amount: number): number {
    const level = this.levelAt(now);
    if (level >= amount) return 0;
    if (amount > this.capacity) return Infinity;
    return (amount - level) / this.refillPerMs;
  }

  /** Ms from `now` until the bucket is full again. */
  msUntilFull(now: number): number {
    return (this.capacity - this.levelAt(now)) / this.refillPerMs;
  }
}

/** A limit enforced over fixed quanta (`quantumMs` long, aligned to the epoch), as "per second". */
export class QuantumCounter {
  private index = Number.NEGATIVE_INFINITY;
  private sum = 0;

  constructor(
    readonly quantumMs: number,
    readonly limit: number,
  ) {}

  used(now: number): number {
    this.roll(now);
    return this.sum;
  }

  add(now: number, amount: number): void {
    this.roll(now);
    this.sum += amount;
  }

  msUntilFits(now: number, extra: number): number {
    this.roll(now);
    if (this.sum + extra <= this.limit) return 0;
    if (extra > this.limit) return Infinity;
    return (this.index + 1) * this.quantumMs - now;
  }

  msUntilReset(now: number): number {
    this.roll(now);
    return this.sum === 0 ? 0 : (this.index + 1) * this.quantumMs - now;
  }

  private roll(now: number): void {
    const index = Math.floor(now / this.quantumMs);
    if (index !== this.index) {
      this.index = index;
      this.sum = 0;
    }
  }
}
