import { type DynamicModule, type InjectionToken, Module, type Provider, Scope } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { RateLimitConfigError } from '../core/errors.js';
import { sharedAcrossCopies } from '../core/shared.js';
import { RedisConnectionManager } from '../redis/connection-manager.js';
import { UnknownModelError } from './errors/unknown-model.error.js';
import { getRateLimiterToken, injectedModels } from './inject-rate-limiter.decorator.js';
import { LlmRateLimiterFeatureModule } from './llm-rate-limiter-feature.module.js';
import {
  ConfigurableLlmRateLimiterModule,
  LLM_RATE_LIMITER_ASYNC_OPTIONS_TYPE,
  LLM_RATE_LIMITER_OPTIONS_TYPE,
} from './llm-rate-limiter.module-definition.js';
import { RateLimitLlmExplorer } from './rate-limit-llm.explorer.js';
import { RATE_LIMITER_REGISTRY, RateLimiterRegistry } from './rate-limiter.registry.js';

/** `forRoot` options: the module options plus `isGlobal`. */
export type LlmRateLimiterModuleRootOptions = typeof LLM_RATE_LIMITER_OPTIONS_TYPE;

/**
 * `forRootAsync` options: `imports`, `inject` and one of `useFactory`, `useClass`,
 * `useExisting`, plus `isGlobal`, plus `models`, the names of the models to make injectable
 * with `@InjectRateLimiter()` (the factory's result is not known when Nest declares tokens).
 */
export type LlmRateLimiterModuleAsyncOptions = typeof LLM_RATE_LIMITER_ASYNC_OPTIONS_TYPE & {
  readonly models?: readonly string[];
};

function limiterProvider(model: string, registryOptional: boolean): Provider {
  return {
    provide: getRateLimiterToken(model),
    useFactory: (registry: RateLimiterRegistry | undefined) => {
      if (!registry) {
        throw new RateLimitConfigError(
          `LlmRateLimiterModule.forFeature([${JSON.stringify(model)}]) cannot see a RateLimiterRegistry: ` +
            'register LlmRateLimiterModule.forRoot() or forRootAsync() with isGlobal: true.',
        );
      }
      return registry.get(model);
    },
    inject: [{ token: RATE_LIMITER_REGISTRY, optional: registryOptional }],
  };
}

// Models declared by forFeature() anywhere in this process: the feature module provides them,
// so the root module must not answer for them (see undeclaredLimiterProvider).
const FEATURE_MODELS = Symbol.for('nestjs-llm-rate-limiter:feature-models');
function featureModels(): Set<string> {
  const holder = globalThis as { [FEATURE_MODELS]?: Set<string> };
  return (holder[FEATURE_MODELS] ??= new Set());
}

/**
 * Answers for a model that `@InjectRateLimiter()` names but the root module does not declare,
 * with an error naming it and the declared list. Transient, so Nest calls the factory only
 * when a class actually injects the token: an unused name (a class of another application in
 * the same process) costs nothing.
 */
function undeclaredLimiterProvider(model: string, declared: readonly string[], method: 'forRoot' | 'forRootAsync'): Provider {
  const quoted = (names: readonly string[]) => `[${names.map((m) => JSON.stringify(m)).join(', ')}]`;
  return {
    provide: getRateLimiterToken(model),
    scope: Scope.TRANSIENT,
    useFactory: (registry: RateLimiterRegistry) => {
      const inject = `@InjectRateLimiter(${JSON.stringify(model)})`;
      if (method === 'forRootAsync' && registry.has(model)) {
        throw new RateLimitConfigError(
          `${inject}: ${JSON.stringify(model)} is configured by the forRootAsync factory but missing from forRootAsync's models list ${quoted(declared)}, ` +
            `which declares the injectable limiters before the factory runs. Add it: models: ${quoted([...declared, model])}.`,
        );
      }
      throw new UnknownModelError(model, registry.models, `${inject}: `);
    },
    inject: [RATE_LIMITER_REGISTRY],
  };
}

/**
 * The classes applications inject by type, of every copy of the package loaded in this process
 * (the CommonJS and the ESM build can both be, when one dependency requires the package and
 * another imports it). Nest tells injection tokens apart by identity, so the module also
 * provides the other copies' classes, as aliases of its own providers.
 */
interface InjectableClasses {
  readonly registry: InjectionToken;
  readonly connectionManager: InjectionToken;
}
const copies = sharedAcrossCopies<InjectableClasses[]>('injectableClasses', () => []);
const own: InjectableClasses = { registry: RateLimiterRegistry, connectionManager: RedisConnectionManager };
copies.push(own);

/** Aliases for the copies loaded so far: forRoot runs once the app's modules are imported. */
function otherCopiesAliases(): Provider[] {
  return copies
    .filter((copy) => copy !== own)
    .flatMap((copy) => [
      { provide: copy.registry, useExisting: RATE_LIMITER_REGISTRY },
      { provide: copy.connectionManager, useExisting: RedisConnectionManager },
    ]);
}

function withLimiters(definition: DynamicModule, models: readonly string[], method: 'forRoot' | 'forRootAsync'): DynamicModule {
  const providers = [...models.map((model) => limiterProvider(model, false)), ...otherCopiesAliases()];
  const all = (): Provider[] => {
    const undeclared = [...injectedModels()].filter((m) => !models.includes(m) && !featureModels().has(m));
    return [...providers, ...undeclared.map((m) => undeclaredLimiterProvider(m, models, method))];
  };
  const module: DynamicModule = { ...definition };
  // Read when Nest scans the module, by then every decorated class of the application is
  // defined, whereas forRoot() may run before the file of a class that injects a limiter loads.
  Object.defineProperty(module, 'providers', { enumerable: true, get: () => [...(definition.providers ?? []), ...all()] });
  Object.defineProperty(module, 'exports', {
    enumerable: true,
    get: () => [...(definition.exports ?? []), ...all().map((p) => (p as { provide: InjectionToken }).provide)],
  });
  return module;
}

const redisConnectionManagerProvider: Provider = {
  provide: RedisConnectionManager,
  // Without redis there is no manager: the token resolves to null rather than being absent,
  // so one module definition serves both cases (forRootAsync cannot know which in advance).
  useFactory: (registry: RateLimiterRegistry) => registry.connectionManager ?? null,
  inject: [RATE_LIMITER_REGISTRY],
};

/** A list of model names, checked at run time: JavaScript callers and casts reach forFeature too. */
function isModelList(value: unknown): value is readonly string[] {
  return Array.isArray(value) && value.every((m) => typeof m === 'string');
}

/**
 * Keeps calls to LLM providers within their limits across every process sharing Redis.
 * Provides `RateLimiterRegistry`, `RedisConnectionManager` (null without redis), one
 * `RateLimiter` per declared model (`@InjectRateLimiter()`), and binds `@RateLimitLlm()`
 * methods at bootstrap.
 *
 * @example
 * LlmRateLimiterModule.forRoot({ redis: { url: process.env.REDIS_URL }, models: { 'gpt-4o': { tpm: 30_000, rpm: 500 } } })
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    RateLimiterRegistry,
    { provide: RATE_LIMITER_REGISTRY, useExisting: RateLimiterRegistry },
    redisConnectionManagerProvider,
    RateLimitLlmExplorer,
  ],
  exports: [RateLimiterRegistry, RATE_LIMITER_REGISTRY, RedisConnectionManager],
})
export class LlmRateLimiterModule extends ConfigurableLlmRateLimiterModule {
  /** Options known up front; every configured model becomes injectable. */
  static override forRoot(options: LlmRateLimiterModuleRootOptions): DynamicModule {
    const models =
      options !== null && typeof options === 'object' && options.models && typeof options.models === 'object'
        ? Object.keys(options.models)
        : [];
    return withLimiters(super.forRoot(options), models, 'forRoot');
  }

  /**
   * Options from a factory, class or existing provider. Models listed in `models` become
   * injectable; `RateLimiterRegistry.get()` works for every configured model.
   *
   * @example
   * LlmRateLimiterModule.forRootAsync({
   *   imports: [ConfigModule], inject: [ConfigService], models: ['gpt-4o'],
   *   useFactory: (config: ConfigService) => ({ redis: { url: config.get('REDIS_URL') }, models: { 'gpt-4o': { tpm: 30_000 } } }),
   * })
   */
  static override forRootAsync(options: LlmRateLimiterModuleAsyncOptions): DynamicModule {
    const { models = [], ...rest } = options;
    return withLimiters(super.forRootAsync(rest), models, 'forRootAsync');
  }

  /**
   * Makes these models' limiters injectable in the importing module, resolved from the registry
   * at bootstrap (an unknown name fails then). Needs the root module registered with
   * `isGlobal: true`.
   *
   * @example
   * imports: [LlmRateLimiterModule.forFeature(['gpt-4o'])]
   */
  static forFeature(models: readonly string[]): DynamicModule {
    if (!isModelList(models)) {
      throw new RateLimitConfigError(
        `LlmRateLimiterModule.forFeature() takes a list of model names, such as ['gpt-4o'], got ${String(models)}`,
      );
    }
    for (const model of models) featureModels().add(model);
    const providers = models.map((model) => limiterProvider(model, true));
    return { module: LlmRateLimiterFeatureModule, providers, exports: providers.map((p) => (p as { provide: string }).provide) };
  }
}
