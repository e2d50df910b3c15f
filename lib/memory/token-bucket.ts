import type { ModelSettings } from '../core/store.js';
import { Arrivals } from './arrivals.js';
import type { Capacity, Placement } from './capacity.js';
import { refillUs, zero } from './figures.js';
import type { Figures } from './figures.js';

/**
 * Token bucket (GCRA), as lua/tb-queue.lua: per figure, a bucket holding `bucketMs` of refill at
 * limit / windowMs. Nothing ages out, so `advance` has nothing to do.
 */
export class TokenBucket implements Capacity {
  private readonly arrivals = new Arrivals();

  advance(): void {}

  fits(settings: ModelSettings, cost: Figures, limit: Figures, now: number): boolean {
    return this.startUs(settings, cost, limit, now) <= now * 1000;
  }

  admit(settings: ModelSettings, cost: Figures, limit: Figures, now: number): Placement {
    return { bucket: 0, ends: this.arrivals.admit(cost, limit, settings.windowMs, now * 1000) };
  }

  /** Says the change of the reservation as asked, whatever the refill cap gave back. */
  move(settings: ModelSettings, place: Placement, delta: Figures, limit: Figures, now: number): Figures {
    this.arrivals.move(place.ends, delta, limit, settings.windowMs, now * 1000);
    return delta;
  }

  fitTime(settings: ModelSettings, cost: Figures, limit: Figures, now: number): number {
    return Math.max(now, Math.ceil(this.startUs(settings, cost, limit, now) / 1000));
  }

  /** What the bucket still owes, in each figure's units. */
  used(settings: ModelSettings, limit: Figures, now: number): Figures {
    const used = zero();
    for (let d = 0; d < 4; d++) {
      const owed = Math.max(0, this.arrivals.arrival(d) - now * 1000);
      if (limit[d] > 0) used[d] = Math.ceil((owed * limit[d]) / (settings.windowMs * 1000));
    }
    return used;
  }

  reconcile(settings: ModelSettings, remaining: (number | undefined)[], tolerance: Figures, limit: Figures, now: number): Figures {
    const { windowMs, bucketMs } = settings;
    const us = now * 1000;
    const excess = zero();
    for (let d = 0; d < 4; d++) {
      const left = remaining[d];
      if (limit[d] === 0 || left === undefined) continue;
      const owed = Math.max(this.arrivals.arrival(d), us) - us;
      const room = (limit[d] * bucketMs) / windowMs - (owed * limit[d]) / (windowMs * 1000);
      excess[d] = Math.max(0, Math.floor(room - left - tolerance[d]));
      if (excess[d] > 0) this.arrivals.charge(d, refillUs(excess[d], limit[d], windowMs), us);
    }
    return excess;
  }

  private startUs(settings: ModelSettings, cost: Figures, limit: Figures, now: number): number {
    return this.arrivals.startUs(cost, limit, settings.windowMs, settings.bucketMs * 1000, now * 1000);
  }
}
