import { BUCKETS } from '../core/store.js';
import type { ModelSettings } from '../core/store.js';
import { Arrivals } from './arrivals.js';
import type { Capacity, Placement } from './capacity.js';
import { addTo, bucketOf, bucketStart, zero } from './figures.js';
import type { Figures } from './figures.js';

/**
 * Sliding window, as the window hash of lua/queue.lua: a charge goes into the bucket of the
 * moment it is admitted and counts over the BUCKETS + 1 buckets ending with the current one;
 * `sums` are the running sums of every bucket from `base` on. With `paceMs`, every admission
 * must also fit a pacing bucket per figure, so a window's quota is spread over it.
 */
export class SlidingWindow implements Capacity {
  private base: number | undefined;
  private readonly sums: Figures = zero();
  private readonly buckets = new Map<number, Figures>();
  private readonly pace = new Arrivals();

  advance(settings: ModelSettings, now: number): void {
    const oldest = bucketOf(now, settings.windowMs) - BUCKETS;
    if (this.base !== undefined && this.base >= oldest) return;
    for (const [k, figures] of this.buckets) {
      if (k >= oldest) continue;
      addTo(this.sums, figures, -1);
      this.buckets.delete(k);
    }
    this.base = oldest;
  }

  fits(settings: ModelSettings, cost: Figures, limit: Figures, now: number): boolean {
    if (!cost.every((c, d) => limit[d] === 0 || this.sums[d] + c <= limit[d])) return false;
    return settings.paceMs <= 0 || this.paceStartUs(settings, cost, limit, now) <= now * 1000;
  }

  admit(settings: ModelSettings, cost: Figures, limit: Figures, now: number): Placement {
    const n = bucketOf(now, settings.windowMs);
    this.addToBucket(n, cost);
    const ends: Figures = settings.paceMs > 0 ? this.pace.admit(cost, limit, settings.windowMs, now * 1000) : [-1, -1, -1, -1];
    return { bucket: n, ends };
  }

  move(settings: ModelSettings, place: Placement, delta: Figures, limit: Figures, now: number): Figures | 'expired' {
    if (place.bucket < bucketOf(now, settings.windowMs) - BUCKETS) return 'expired';
    const bucket = this.buckets.get(place.bucket) ?? zero();
    // A refund takes at most what the bucket holds, so no figure goes below zero.
    const applied = delta.map((x, d) => Math.max(0, bucket[d] + x) - bucket[d]) as Figures;
    this.addToBucket(place.bucket, applied);
    if (settings.paceMs > 0) this.pace.move(place.ends, applied, limit, settings.windowMs, now * 1000);
    return applied;
  }

  fitTime(settings: ModelSettings, cost: Figures, limit: Figures, now: number): number {
    const window = this.windowTime(settings.windowMs, cost, limit, now);
    if (settings.paceMs <= 0) return window;
    return Math.max(window, Math.ceil(this.paceStartUs(settings, cost, limit, now) / 1000));
  }

  used(settings: ModelSettings, _limit: Figures, now: number): Figures {
    const n = bucketOf(now, settings.windowMs);
    const used = zero();
    for (let k = n - BUCKETS; k <= n; k++) addTo(used, this.buckets.get(k), 1);
    return used;
  }

  reconcile(settings: ModelSettings, remaining: (number | undefined)[], tolerance: Figures, limit: Figures, now: number): Figures {
    const used = this.used(settings, limit, now);
    const excess = zero();
    for (let d = 0; d < 4; d++) {
      const left = remaining[d];
      if (limit[d] === 0 || left === undefined) continue;
      excess[d] = Math.max(0, Math.floor(limit[d] - used[d] - left - tolerance[d]));
    }
    if (excess.some((x) => x > 0)) {
      const n = bucketOf(now, settings.windowMs);
      this.base ??= n - BUCKETS;
      this.addToBucket(n, excess);
    }
    return excess;
  }

  /**
   * First bucket j >= n whose window (buckets j - B .. n; none after n hold anything) leaves
   * room for `cost`, as its start time; a cost above a limit (cut by back-off) never fits, and
   * gets the time the window is empty.
   */
  private windowTime(windowMs: number, cost: Figures, limit: Figures, now: number): number {
    const n = bucketOf(now, windowMs);
    const used: Figures = [...this.sums];
    for (let j = n; j <= n + BUCKETS + 1; j++) {
      if (cost.every((c, d) => limit[d] === 0 || used[d] + c <= limit[d])) return j === n ? now : bucketStart(j, windowMs);
      addTo(used, this.buckets.get(j - BUCKETS), -1);
    }
    return bucketStart(n + BUCKETS + 1, windowMs);
  }

  private paceStartUs(settings: ModelSettings, cost: Figures, limit: Figures, now: number): number {
    return this.pace.startUs(cost, limit, settings.windowMs, settings.paceMs * 1000, now * 1000);
  }

  private addToBucket(j: number, figures: Figures): void {
    const bucket = this.buckets.get(j) ?? zero();
    addTo(bucket, figures, 1);
    addTo(this.sums, figures, 1);
    if (bucket.every((v) => v === 0)) this.buckets.delete(j);
    else this.buckets.set(j, bucket);
  }
}
