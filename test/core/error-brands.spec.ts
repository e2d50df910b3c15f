// The library's error classes recognise instances made by the other build's copy of the class
// (CommonJS beside ESM in one app) by a Symbol.for brand; test/pack covers the two real builds.
import { AcquireTimeoutError, LlmRateLimiterError, RateLimitConfigError, RequestTooLargeError } from '../../lib/limiter.js';
import { UnknownModelError } from '../../lib/index.js';

/** What an instance of the other copy's class looks like from here: same brands, other prototype chain. */
function otherCopyInstance(name: string, brands: string[]): object {
  const proto = Object.create(Error.prototype) as Record<symbol, unknown>;
  for (const brand of brands) proto[Symbol.for(`nestjs-llm-rate-limiter.error.${brand}`)] = true;
  return Object.assign(Object.create(proto) as object, { name, message: 'from the other copy' });
}

describe('error classes across copies of the package', () => {
  it("recognise the other copy's instances of the same class and of its subclasses", () => {
    const timeout = otherCopyInstance('AcquireTimeoutError', ['AcquireTimeoutError', 'LlmRateLimiterError']);
    expect(timeout instanceof AcquireTimeoutError).toBe(true);
    expect(timeout instanceof LlmRateLimiterError).toBe(true);
    expect(timeout instanceof RequestTooLargeError).toBe(false);
    expect(otherCopyInstance('UnknownModelError', ['UnknownModelError', 'LlmRateLimiterError']) instanceof UnknownModelError).toBe(true);
  });

  it("keep plain instanceof for errors of this copy, for foreign errors and for an application's subclasses", () => {
    class AppConfigError extends RateLimitConfigError {}
    expect(new RequestTooLargeError('x', 'tpm', 2, 1) instanceof LlmRateLimiterError).toBe(true);
    expect(new RequestTooLargeError('x', 'tpm', 2, 1) instanceof AcquireTimeoutError).toBe(false);
    expect(new Error('x') instanceof LlmRateLimiterError).toBe(false);
    expect(new AppConfigError('x') instanceof RateLimitConfigError).toBe(true);
    // A library error carries no brand of the application's class.
    expect(new RateLimitConfigError('x') instanceof AppConfigError).toBe(false);
    expect(otherCopyInstance('RateLimitConfigError', ['RateLimitConfigError', 'LlmRateLimiterError']) instanceof AppConfigError).toBe(
      false,
    );
    expect((null as unknown as object) instanceof LlmRateLimiterError).toBe(false);
  });
});
