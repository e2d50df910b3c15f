/** What `acquire` resolves with once the caller's slot has come. */
export interface AcquireResult {
  /** When the slot starts, epoch ms by the store's clock (Redis server time for Redis). */
  readonly slotTime: number;
  /** How long the caller was held back for its slot, ms (0 when admitted at once). */
  readonly waitTime: number;
  /** Reservations ahead of this one that had not started when it was granted (0 = none). */
  readonly queuePosition: number;
  /** Pass to `adjust` after the call, or to `release` when the call never reached the provider. */
  readonly recordId: string;
  /** True when the store could not be reached and the call was let through unlimited. */
  readonly degraded: boolean;
}

/** What an `adjust` did. */
export interface AdjustResult {
  /**
   * `'applied'` the difference was charged or refunded; `'unchanged'` nothing differed (adjusting
   * twice to the same values lands here); `'expired'` the reservation has left the window;
   * `'released'` it was released; `'degraded'` the store could not be reached (fail-open).
   */
  readonly status: 'applied' | 'unchanged' | 'expired' | 'released' | 'degraded';
  /** Change of the combined figure, in tokens (negative = freed). */
  readonly tokensDelta: number;
  readonly inputTokensDelta: number;
  readonly outputTokensDelta: number;
}

/** Usage of the window that ends now. Limits include the burst multiplier; 0 = off. */
export interface RateLimitStatus {
  readonly model: string;
  readonly windowSeconds: number;
  /** Combined tokens as counted against `tpm` (output weighted by the burndown rate). */
  readonly tokensUsed: number;
  readonly tokensLimit: number;
  readonly inputTokensUsed: number;
  readonly inputTokensLimit: number;
  readonly outputTokensUsed: number;
  readonly outputTokensLimit: number;
  readonly requestsUsed: number;
  readonly requestsLimit: number;
  /** Reservations granted a slot that has not started yet. */
  readonly queueDepth: number;
  /** Admissions are paused after a 429 until this epoch ms; 0 when not paused. */
  readonly pausedUntil: number;
  /**
   * Fraction of the configured limits in force after 429s (1 = all); it recovers by 0.1 per
   * window. With `learnLimits`: the learned limits over the starting figures (2 = twice them).
   */
  readonly limitFactor: number;
  /**
   * The limits admissions are held to now: the configured ones (burst included) times
   * `limitFactor`. With `learnLimits`, the limits learned so far.
   */
  readonly limitsInForce: { readonly tokens: number; readonly inputTokens: number; readonly outputTokens: number; readonly requests: number };
  /** True when the limits are learned (`learnLimits`): the `...Limit` figures are where learning started. */
  readonly learning: boolean;
}

/** What `observe` made of a provider response. */
export interface ObserveResult {
  /** Set when the response was a 429/529 and admissions were paused. */
  readonly pausedUntil?: number;
  readonly limitFactor?: number;
  /** What others spent of the quota beyond our own figures, now charged in the store. */
  readonly foreign: { tokens: number; inputTokens: number; outputTokens: number; requests: number };
}
