import type { ModelSettings } from '../core/store.js';
import type { Figures } from './figures.js';

/** Where an admitted reservation's charge sits, to move it when it settles. */
export interface Placement {
  /** Sliding-window bucket it was charged to (0 for the token bucket). */
  readonly bucket: number;
  /** Per figure, its refill end (µs) in the token bucket or pacing bucket; -1 when not tracked. */
  readonly ends: Figures;
}

/**
 * The capacity arithmetic of one algorithm, apart from the queue and the back-off pause (which
 * the model state applies to both). `limit` is always the limits in force at the call.
 */
export interface Capacity {
  /** Forgets what left the window by `now` (the first step of every queue call). */
  advance(settings: ModelSettings, now: number): void;
  fits(settings: ModelSettings, cost: Figures, limit: Figures, now: number): boolean;
  /** Charges `cost` now. */
  admit(settings: ModelSettings, cost: Figures, limit: Figures, now: number): Placement;
  /**
   * Moves a settled reservation's charge by `delta` (negative: given back). Says what really
   * moved, or 'expired' when the charge had left the window and nothing moved.
   */
  move(settings: ModelSettings, place: Placement, delta: Figures, limit: Figures, now: number): Figures | 'expired';
  /** Earliest epoch ms (>= now) at which `cost` could fit from time passing alone. */
  fitTime(settings: ModelSettings, cost: Figures, limit: Figures, now: number): number;
  /** What counts against the limits now, per figure. */
  used(settings: ModelSettings, limit: Figures, now: number): Figures;
  /** Charges now what the provider reports beyond our own figures; returns the charge. */
  reconcile(settings: ModelSettings, remaining: (number | undefined)[], tolerance: Figures, limit: Figures, now: number): Figures;
}
