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

/**
 * Injects one model's `RateLimiter`. The model must be declared up front: in `forRoot`'s
 * `models`, in `forRootAsync`'s static `models` list, or with `LlmRateLimiterModule.forFeature()`.
 *
 * @example
 * constructor(@InjectRateLimiter('gpt-4o') private readonly limiter: RateLimiter) {}
 */
export function InjectRateLimiter(model: string): PropertyDecorator & ParameterDecorator {
  return Inject(getRateLimiterToken(model));
}
