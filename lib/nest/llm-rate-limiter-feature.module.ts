import { Module } from '@nestjs/common';

/**
 * Holds the per-model limiter providers `LlmRateLimiterModule.forFeature()` declares; they are
 * resolved from the registry of the (global) `forRoot`/`forRootAsync` module.
 */
@Module({})
export class LlmRateLimiterFeatureModule {}
