import { Inject } from '@nestjs/common';

/**
 * The injection token of one model's `RateLimiter`, for custom providers and `moduleRef.get()`.
 *
 * @example
 * const limiter = app.get<RateLimiter>(getRateLimiterToken('gpt-4o'));
 */
export function getRateLimiterToken(model: string): string {
  return `LlmRateLimiter:${model}`;
}

// Kept on globalThis under a registered symbol, so that two copies of the package loaded in one
// application (an ESM and a CommonJS build) see the same names.
const INJECTED_MODELS = Symbol.for('nestjs-llm-rate-limiter:injected-models');

/**
 * Every model named by `@InjectRateLimiter()` in this process so far. The module reads it when
 * Nest scans it, after the application's classes are defined, to turn an undeclared model into
 * an error that names it instead of Nest's generic "can't resolve dependencies".
 */
export function injectedModels(): ReadonlySet<string> {
  const holder = globalThis as { [INJECTED_MODELS]?: Set<string> };
  return (holder[INJECTED_MODELS] ??= new Set());
}

/**
 * Injects one model's `RateLimiter`. The model must be declared up front: in `forRoot`'s
 * `models`, in `forRootAsync`'s static `models` list, or with `LlmRateLimiterModule.forFeature()`.
 *
 * @example
 * constructor(@InjectRateLimiter('gpt-4o') private readonly limiter: RateLimiter) {}
 */
export function InjectRateLimiter(model: string): PropertyDecorator & ParameterDecorator {
  (injectedModels() as Set<string>).add(model);
  return Inject(getRateLimiterToken(model));
}
