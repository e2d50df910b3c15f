import { brandError, LlmRateLimiterError } from '../../core/errors.js';

/**
 * A model was asked for that `LlmRateLimiterModule` has no limits for: from `registry.get()`,
 * `@InjectRateLimiter()`, `forFeature()` or `@RateLimitLlm({ model })`. Raised at bootstrap
 * wherever the name is known then.
 */
export class UnknownModelError extends LlmRateLimiterError {
  constructor(
    /** The name asked for. */
    readonly model: string,
    /** The models the module was configured with. */
    readonly knownModels: readonly string[],
    where = '',
  ) {
    super(
      `${where}no rate limiter is configured for model ${JSON.stringify(model)}; configured models: ${knownModels.map((m) => JSON.stringify(m)).join(', ')}. ` +
        "Fix the name, or add the model to LlmRateLimiterModule's models.",
    );
  }
}

brandError(UnknownModelError, 'UnknownModelError');
