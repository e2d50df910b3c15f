import { brandError, LlmRateLimiterError } from '../../core/errors.js';

/**
 * A method decorated with `@RateLimitLlm()` was called on an instance no limiter is bound to:
 * one Nest did not create, one of a request-scoped provider, or one called before the
 * application initialised. The call is refused rather than let through unlimited.
 */
export class RateLimitLlmNotBoundError extends LlmRateLimiterError {}

brandError(RateLimitLlmNotBoundError, 'RateLimitLlmNotBoundError');
