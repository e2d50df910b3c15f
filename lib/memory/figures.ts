import { BUCKETS } from '../core/store.js';
import type { Charge, ModelSettings } from '../core/store.js';

/** The four figures a limit can count, in the order the Redis scripts keep them. */
export type Figures = [tokens: number, input: number, output: number, requests: number];

export function zero(): Figures {
  return [0, 0, 0, 0];
}

export function figuresOf(c: Charge): Figures {
  return [c.tokens, c.inputTokens, c.outputTokens, c.requests];
}

export function chargeOf(f: Figures): Charge {
  return { tokens: f[0], inputTokens: f[1], outputTokens: f[2], requests: f[3] };
}

export function limitsOf(settings: ModelSettings): Figures {
  const l = settings.limits;
  return [l.tokens, l.inputTokens, l.outputTokens, l.requests];
}

export function addTo(target: Figures, figures: Figures | undefined, sign: 1 | -1): void {
  if (!figures) return;
  for (let d = 0; d < 4; d++) target[d] += sign * figures[d];
}

/**
 * Microseconds of refill `amount` tokens take, rounded away from zero (charges round up, refunds
 * round down, so rounding never adds capacity), as refill_us in lua/includes/bucket.lua.
 */
export function refillUs(amount: number, limit: number, windowMs: number): number {
  const us = (amount * windowMs * 1000) / limit;
  return us >= 0 ? Math.ceil(us) : -Math.floor(-us);
}

/** An arrival time moved by `change` us of refill, as move_arrival in lua/includes/bucket.lua. */
export function moveArrival(tat: number, change: number, us: number): number {
  return change > 0 ? Math.max(tat, us) + change : Math.max(tat + change, us);
}

export function bucketOf(ms: number, windowMs: number): number {
  return Math.floor((ms * BUCKETS) / windowMs);
}

export function bucketStart(j: number, windowMs: number): number {
  return Math.ceil((j * windowMs) / BUCKETS);
}
