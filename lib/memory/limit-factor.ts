import { scaledLimit } from '../core/store.js';
import type { BackOffCommand, BackOffReply, ModelSettings } from '../core/store.js';
import { limitsOf } from './figures.js';
import type { Figures } from './figures.js';

/** Fraction of the limit the factor regains per window, as RECOVERY in lua/includes/common.lua. */
const BACKOFF_RECOVERY = 0.1;

/**
 * One model's 429 back-off and learned limits, as the 'p', 'f', 'fa' (-1: learned), 'fc' and 'fg'
 * fields of the scripts: the pause after a 429, and the factor its limits are scaled by, which a
 * 429 cuts and which then recovers with time or, for learned limits, grows with demand.
 */
export class LimitFactor {
  private paused = 0;
  private factor?: { value: number; at: number; cutAt: number };
  private grewAt?: number;

  /** Epoch ms before which nothing is admitted (0: never paused). */
  get pausedUntil(): number {
    return this.paused;
  }

  /** A 429: pause until `now + c.pauseMs`, and cut the factor unless it was cut within `c.settleMs`. */
  backOff(settings: ModelSettings, c: BackOffCommand, now: number): BackOffReply {
    this.paused = Math.max(this.paused, now + c.pauseMs);
    let value = this.at(now, settings.windowMs);
    let cutAt = this.factor?.cutAt ?? 0;
    if (c.cut < 1 && now - cutAt >= c.settleMs) {
      value = Math.max(c.floor, value * c.cut);
      cutAt = now;
    }
    // Learned limits do not recover by time (at -1); their growth counts from the pause's end.
    this.factor = { value, at: settings.learn ? -1 : now, cutAt };
    if (settings.learn) this.grewAt = this.paused;
    return { pausedUntil: this.paused, limitFactor: value };
  }

  /** As learned_factor in lua/includes/common.lua: demand pressed, so the learned limits grow. */
  learn(settings: ModelSettings, now: number): void {
    const learn = settings.learn;
    if (!learn) return;
    const since = Math.min(settings.windowMs, Math.max(0, now - (this.grewAt ?? now)));
    const value = Math.min(learn.maxFactor, (this.factor?.value ?? 1) + (learn.increasePerWindow * since) / settings.windowMs);
    this.factor = { value, at: -1, cutAt: this.factor?.cutAt ?? 0 };
    this.grewAt = now;
  }

  /** The factor the limits are scaled by at `now`: a cut recovers by time, a learned one does not. */
  at(now: number, windowMs: number): number {
    if (!this.factor) return 1;
    if (this.factor.at < 0) return this.factor.value;
    return Math.min(1, this.factor.value + (BACKOFF_RECOVERY * (now - this.factor.at)) / windowMs);
  }

  /** The limits in force: read afresh, since learning within a call may have grown them. */
  scaled(settings: ModelSettings, now: number): Figures {
    const limit = limitsOf(settings);
    const factor = this.at(now, settings.windowMs);
    return factor === 1 ? limit : (limit.map((l) => scaledLimit(l, factor)) as Figures);
  }
}
