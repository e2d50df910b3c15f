/** What `acquire` resolves with once the caller is admitted. */
export interface AcquireResult {
  /** When the reservation was admitted (entered the window), epoch ms by the store's clock (Redis server time for Redis). */
  readonly slotTime: number;
  /** How long the caller was held before admission, ms (0 when admitted at once). */
  readonly waitTime: number;
  /** Waiting reservations ahead of this one when it was enqueued (0 when admitted at once). */
  readonly queuePosition: number;
  /** Pass to `adjust` after the call, or to `release` when the call never reached the provider. */
  readonly recordId: string;
  /** True when the store could not be reached: let through unlimited, or limited in this process only. */
  readonly degraded: boolean;
}

/** What an `adjust` did. */
export interface AdjustResult {
  /**
   * `'applied'` the difference was charged or refunded, and the reservation is settled;
   * `'unchanged'` it is settled, and nothing differed (or nothing could move: a provider that
   * keeps what it reserved is never refunded); `'settled'` it had been settled already (a
   * second adjust changes nothing); `'expired'` its charge had left the window (settled,
   * nothing moved); `'released'` it had been released (or dropped before admission);
   * `'unknown'` this model's store does not know the id (another model's, crafted, never
   * acquired, or forgotten SETTLED_HORIZON_MS after it ended); `'degraded'` the store could not
   * be reached (fail-open), nothing changed.
   */
  readonly status: 'applied' | 'unchanged' | 'expired' | 'released' | 'settled' | 'unknown' | 'degraded';
  /** Change of the combined figure, in tokens (negative = freed). */
  readonly tokensDelta: number;
  readonly inputTokensDelta: number;
  readonly outputTokensDelta: number;
}

/** What a `release` did. */
export interface ReleaseResult {
  /**
   * `'released'` the whole charge was given back (a reservation still waiting left the queue);
   * `'kept'` the call reached a provider that counts failed calls, so the charge stays and the
   * reservation is settled; `'settled'` it had been adjusted or kept already, nothing changed;
   * `'released-before'` it had been released already (or dropped before admission), nothing
   * changed; `'unknown'` this model's store does not know the id (another model's, crafted, or
   * forgotten SETTLED_HORIZON_MS after it ended); `'degraded'` the store could not be reached
   * (fail-open), or the reservation was let through unlimited: nothing to give back.
   */
  readonly status: 'released' | 'kept' | 'settled' | 'released-before' | 'unknown' | 'degraded';
  /** What was given back, per figure (0 unless `'released'`). */
  readonly tokensFreed: number;
  readonly inputTokensFreed: number;
  readonly outputTokensFreed: number;
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
  /** Reservations waiting in the queue for admission, from every process. */
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
  readonly limitsInForce: {
    readonly tokens: number;
    readonly inputTokens: number;
    readonly outputTokens: number;
    readonly requests: number;
  };
  /** True when the limits are learned (`learnLimits`): the `...Limit` figures are where learning started. */
  readonly learning: boolean;
}

/** What `observe` made of a provider response. */
export interface ObserveResult {
  /** Set when the response was a 429/529 and admissions were paused. */
  readonly pausedUntil?: number;
  readonly limitFactor?: number;
  /** The provider's billing code when the response was a billing refusal (nothing else changed). */
  readonly billing?: string;
  /** What others spent of the quota beyond our own figures, now charged in the store. */
  readonly foreign: { tokens: number; inputTokens: number; outputTokens: number; requests: number };
}
