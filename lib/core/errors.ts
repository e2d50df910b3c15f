/** Own static property of each of the library's error classes: the symbol its instances carry. */
const BRAND = Symbol.for('nestjs-llm-rate-limiter.errorBrand');

/**
 * Base class of every error this library throws, so callers can tell the limiter's errors from
 * their own with one `instanceof` check.
 *
 * `instanceof` also holds across the CommonJS and the ESM build loaded side by side in one app
 * (an error thrown by one copy, checked against the other copy's class): each class is branded
 * with a `Symbol.for` key both copies share.
 */
export class LlmRateLimiterError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }

  static override [Symbol.hasInstance](this: abstract new (...args: never[]) => unknown, value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    // Only the library's own classes carry a brand; an application's subclass keeps plain instanceof.
    const brand = Object.hasOwn(this, BRAND) ? (this as unknown as Record<symbol, symbol>)[BRAND] : undefined;
    return brand !== undefined && value !== null && typeof value === 'object' && (value as Record<symbol, unknown>)[brand] === true;
  }
}

/** Marks `errorClass` and its instances with a brand named `name`, the same in both builds. */
export function brandError(errorClass: abstract new (...args: never[]) => LlmRateLimiterError, name: string): void {
  const brand = Symbol.for(`nestjs-llm-rate-limiter.error.${name}`);
  Object.defineProperty(errorClass, BRAND, { value: brand });
  Object.defineProperty(errorClass.prototype, brand, { value: true });
}

/**
 * A configuration value is missing, of the wrong type or out of range. Thrown by constructors
 * and module bootstrap before anything is stored.
 *
 * @example
 * new RateLimiter(store, 'gpt-4o', { tpm: -5 }); // RateLimitConfigError: tpm must be ...
 */
export class RateLimitConfigError extends LlmRateLimiterError {}

/**
 * A token count passed to `acquire` or `adjust` is not a non-negative safe integer. Nothing is
 * sent to the store.
 */
export class InvalidTokenCountError extends LlmRateLimiterError {}

/**
 * A record id passed to `adjust` or `release` was not produced by `acquire`.
 */
export class InvalidRecordIdError extends LlmRateLimiterError {}

/**
 * One request asks for more than a limit allows in a whole window, so it could never be
 * admitted. Raised at once instead of waiting forever.
 */
export class RequestTooLargeError extends LlmRateLimiterError {
  constructor(
    message: string,
    /** The limit that can never fit the request: `tpm`, `inputTpm`, `outputTpm` or `rpm`. */
    readonly limitName: string,
    /** What the request needs of that limit. */
    readonly requested: number,
    /** The limit with the burst multiplier applied. */
    readonly limit: number,
  ) {
    super(message);
  }
}

/**
 * The caller could not be admitted within its `maxWaitMs`: refused at once when the store saw
 * it could not be admitted in time, or given up after waiting that long. Nothing stays reserved.
 */
export class AcquireTimeoutError extends LlmRateLimiterError {
  constructor(
    message: string,
    /**
     * How long the caller would have had to wait (refused at once), or waited before giving up,
     * in ms.
     */
    readonly waitMs: number,
    readonly maxWaitMs: number,
    /**
     * When a request enqueued now could be admitted, ms from now, as the store estimates it from
     * what the window and the queue hold (after a wait: the same estimate from the window's
     * figures without the queue's, a lower bound).
     */
    readonly estimatedWaitMs: number = waitMs,
  ) {
    super(message);
  }
}

/**
 * The caller's `AbortSignal` fired while it waited for its slot. The reservation was released.
 * `cause` holds the signal's reason.
 */
export class AcquireAbortedError extends LlmRateLimiterError {}

/**
 * Redis could not be reached (or answered only with transient errors) within the retry budget,
 * and the limiter runs with `failureMode: 'closed'`. With the default `'open'` the call is let
 * through instead, marked `degraded`.
 */
export class RedisUnavailableError extends LlmRateLimiterError {}

/**
 * Redis answered, but with an error that retrying cannot fix: wrong password, missing ACL
 * permission, CROSSSLOT, a script error. Never swallowed by fail-open: a misconfigured
 * deployment must not silently stop limiting.
 */
export class RedisConfigurationError extends LlmRateLimiterError {}

for (const [errorClass, name] of [
  [LlmRateLimiterError, 'LlmRateLimiterError'],
  [RateLimitConfigError, 'RateLimitConfigError'],
  [InvalidTokenCountError, 'InvalidTokenCountError'],
  [InvalidRecordIdError, 'InvalidRecordIdError'],
  [RequestTooLargeError, 'RequestTooLargeError'],
  [AcquireTimeoutError, 'AcquireTimeoutError'],
  [AcquireAbortedError, 'AcquireAbortedError'],
  [RedisUnavailableError, 'RedisUnavailableError'],
  [RedisConfigurationError, 'RedisConfigurationError'],
] as const) {
  brandError(errorClass, name);
}
