import { sharedAcrossCopies } from '../core/shared.js';
import type { RateLimitLlmMetadata } from './rate-limit-llm.options.js';
import type { RateLimitedCall } from '../providers/rate-limited-call.js';

/**
 * Which limiter each decorated method of each instance runs under, set by the explorer at
 * bootstrap. Kept per instance, not per class, so two applications in one process (or two
 * instances of one provider) each use their own registry. Shared by both builds' copies: a method
 * decorated through one copy may be bound by the other copy's explorer.
 */
const bindings = sharedAcrossCopies('rateLimitLlmBindings', () => new WeakMap<object, Map<RateLimitLlmMetadata, RateLimitedCall>>());

export function bindRateLimitedMethod(instance: object, method: RateLimitLlmMetadata, call: RateLimitedCall): void {
  let methods = bindings.get(instance);
  if (!methods) bindings.set(instance, (methods = new Map<RateLimitLlmMetadata, RateLimitedCall>()));
  methods.set(method, call);
}

export function boundCall(instance: unknown, method: RateLimitLlmMetadata): RateLimitedCall | undefined {
  return instance !== null && (typeof instance === 'object' || typeof instance === 'function')
    ? bindings.get(instance)?.get(method)
    : undefined;
}
