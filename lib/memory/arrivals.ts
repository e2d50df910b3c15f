import { moveArrival, refillUs, zero } from './figures.js';
import type { Figures } from './figures.js';

/**
 * GCRA arrival times (epoch µs at which a figure's bucket would be full again), one per figure:
 * the token bucket's `a_d`, and the sliding window's pacing bucket `q_d`. A figure whose limit
 * is 0 is off: never tested, never charged.
 *
 * `shift` is the refill given back by refunds so far. An admitted reservation remembers
 * `end = arrival + shift` at its admission; `end - shift` later is where its refill ends once
 * every refund since is counted, so a refund can give back only what of its own refill is still
 * ahead. Without that cap, releasing a reservation whose refill already happened would hand out
 * room the bucket had already given again.
 */
export class Arrivals {
  private readonly at: Figures = zero();
  private readonly shift: Figures = zero();

  /** Arrival of figure d, µs (0 before any charge). */
  arrival(d: number): number {
    return this.at[d];
  }

  /** Charges `change` µs of refill to figure d from now on (reconcile). */
  charge(d: number, change: number, us: number): void {
    this.at[d] = moveArrival(this.at[d], change, us);
  }

  /**
   * Earliest time (µs) `cost` fits a bucket holding `tau` µs of refill, per limited figure; `us`
   * when no figure is limited. A cost larger than the bucket fits when the bucket is full.
   */
  startUs(cost: Figures, limit: Figures, windowMs: number, tau: number, us: number): number {
    let start = us;
    for (let d = 0; d < 4; d++) {
      if (limit[d] === 0) continue;
      const inc = refillUs(cost[d], limit[d], windowMs);
      start = Math.max(start, Math.max(this.at[d], us) + inc - Math.max(tau, inc));
    }
    return start;
  }

  /** Charges `cost` now; returns each figure's `end` (-1 for a figure that is off). */
  admit(cost: Figures, limit: Figures, windowMs: number, us: number): Figures {
    const ends: Figures = [-1, -1, -1, -1];
    for (let d = 0; d < 4; d++) {
      if (limit[d] === 0) continue;
      this.at[d] = Math.max(this.at[d], us) + refillUs(cost[d], limit[d], windowMs);
      ends[d] = this.at[d] + this.shift[d];
    }
    return ends;
  }

  /**
   * Moves an admitted reservation's charge by `delta`: more is charged from now on; a refund
   * gives back at most what of this reservation's refill is still ahead, and never fills the
   * bucket beyond full.
   */
  move(ends: Figures, delta: Figures, limit: Figures, windowMs: number, us: number): void {
    for (let d = 0; d < 4; d++) {
      if (limit[d] === 0 || ends[d] < 0 || delta[d] === 0) continue;
      const change = refillUs(delta[d], limit[d], windowMs);
      if (change > 0) {
        this.at[d] = moveArrival(this.at[d], change, us);
        continue;
      }
      const ahead = Math.max(0, ends[d] - this.shift[d] - us);
      const give = Math.min(-change, ahead, Math.max(0, this.at[d] - us));
      this.at[d] -= give;
      this.shift[d] += give;
    }
  }
}
