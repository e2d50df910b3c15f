import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { LlmRateLimiterModuleOptions } from './llm-rate-limiter.options.js';

/** Extras every `forRoot`/`forRootAsync` call accepts beside the options. */
export interface LlmRateLimiterModuleExtras {
  /** Make the registry, `RedisConnectionManager` and per-model limiters visible in every module. */
  readonly isGlobal?: boolean;
}

export const {
  ConfigurableModuleClass: ConfigurableLlmRateLimiterModule,
  MODULE_OPTIONS_TOKEN: LLM_RATE_LIMITER_OPTIONS,
  OPTIONS_TYPE: LLM_RATE_LIMITER_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: LLM_RATE_LIMITER_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<LlmRateLimiterModuleOptions>({ moduleName: 'LlmRateLimiter' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createLlmRateLimiterOptions')
  .setExtras<LlmRateLimiterModuleExtras>({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
