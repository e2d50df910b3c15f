import { AsyncLocalStorage } from 'node:async_hooks';
import type { RateLimiter } from '../core/rate-limiter.js';

/**
 * One logical provider call (a decorated method's call): the limiter it runs under and the
 * reservation made for it, which the first HTTP attempt inside the call takes over. Retries made
 * by the SDK find it taken and reserve anew, as the provider counts them anew.
 */
export class LlmCallScope {
  private firstRecordId: string | undefined;
  /** HTTP attempts made by a limited fetch inside this call. */
  attempts = 0;

  constructor(
    readonly limiter: RateLimiter,
    recordId: string,
  ) {
    this.firstRecordId = recordId;
  }

  /** The call's reservation for the first attempt; undefined once an attempt has taken it. */
  takeReservation(): string | undefined {
    const recordId = this.firstRecordId;
    this.firstRecordId = undefined;
    this.attempts++;
    return recordId;
  }

  /** True once a limited fetch saw an attempt: it settles the attempts, not the caller. */
  get seenByFetch(): boolean {
    return this.attempts > 0;
  }
}

// Carried through every continuation the call starts (the SDK's request, its retries, a helper
// stream's reads), so that the fetch finds the call it belongs to without being told.
const storage = new AsyncLocalStorage<LlmCallScope>();

export function runInCallScope<T>(scope: LlmCallScope, fn: () => T): T {
  return storage.run(scope, fn);
}

export function currentCallScope(): LlmCallScope | undefined {
  return storage.getStore();
}
