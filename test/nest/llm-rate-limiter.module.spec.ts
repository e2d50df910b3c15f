import { Inject, Injectable, Module } from '@nestjs/common';
import type { TestingModule } from '@nestjs/testing';
import { Redis } from 'ioredis';
import {
  getRateLimiterToken,
  InjectRateLimiter,
  LlmRateLimiterModule,
  type LlmRateLimiterModuleOptions,
  RateLimiter,
  RateLimiterRegistry,
  RedisConnectionManager,
  UnknownModelError,
} from '../../lib/index.js';
import { initModule, recordingNestLogger } from '../support/nest.js';
import { closeClient, redisUrl, uniquePrefix } from '../support/redis.js';

/** A stand-in for @nestjs/config: the application's own settings service. */
@Injectable()
class AppConfig {
  readonly values: Record<string, string> = { REDIS_URL: redisUrl(), GPT_TPM: '30000', CLAUDE_RPM: '50' };
  get(name: string): string {
    return this.values[name];
  }
}

@Module({ providers: [AppConfig], exports: [AppConfig] })
class AppConfigModule {}

@Injectable()
class UsesGpt {
  constructor(
    @InjectRateLimiter('gpt-4o') readonly limiter: RateLimiter,
    readonly registry: RateLimiterRegistry,
  ) {}
}

@Injectable()
class LimiterOptionsFactory {
  constructor(private readonly config: AppConfig) {}
  createLlmRateLimiterOptions(): LlmRateLimiterModuleOptions {
    return {
      redis: { url: this.config.get('REDIS_URL') },
      keyPrefix: uniquePrefix(),
      models: { 'gpt-4o': { tpm: Number(this.config.get('GPT_TPM')) } },
    };
  }
}

describe('LlmRateLimiterModule', () => {
  const open: TestingModule[] = [];
  const start = async (...args: Parameters<typeof initModule>) => {
    const moduleRef = await initModule(...args);
    open.push(moduleRef);
    return moduleRef;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((m) => m.close()));
  });

  describe('forRoot', () => {
    it('without redis, limits each model in memory and says once that limits then hold per process', async () => {
      const logger = recordingNestLogger();
      const moduleRef = await start(
        { imports: [LlmRateLimiterModule.forRoot({ models: { 'gpt-4o': { tpm: 1000 }, claude: { rpm: 5 } } })], providers: [UsesGpt] },
        logger,
      );
      const registry = moduleRef.get(RateLimiterRegistry);
      expect(registry.backend).toBe('memory');
      expect(registry.models).toEqual(['gpt-4o', 'claude']);
      expect([...registry].map((l) => l.model)).toEqual(['gpt-4o', 'claude']);
      expect(moduleRef.get(UsesGpt).limiter).toBe(registry.get('gpt-4o'));
      expect(moduleRef.get(getRateLimiterToken('claude'))).toBe(registry.get('claude'));
      const memoryLines = logger.lines.filter((l) => l.context === 'LlmRateLimiter' && /per process/.test(l.message));
      expect(memoryLines).toHaveLength(1);
    });

    it('without redis, provides RedisConnectionManager as null', async () => {
      const moduleRef = await start({ imports: [LlmRateLimiterModule.forRoot({ models: { m: { rpm: 1 } } })] });
      expect(moduleRef.get(RedisConnectionManager)).toBeNull();
      expect(moduleRef.get(RateLimiterRegistry).connectionManager).toBeUndefined();
    });

    it('with redis, shares one RedisConnectionManager, injectable by class, and closes it on shutdown', async () => {
      const moduleRef = await initModule({
        imports: [
          LlmRateLimiterModule.forRoot({
            redis: { url: redisUrl(), maxConnections: 2 },
            keyPrefix: uniquePrefix(),
            models: { 'gpt-4o': { tpm: 1000 } },
          }),
        ],
        providers: [UsesGpt],
      });
      const manager = moduleRef.get(RedisConnectionManager);
      const registry = moduleRef.get(RateLimiterRegistry);
      expect(manager).toBeInstanceOf(RedisConnectionManager);
      expect(registry.connectionManager).toBe(manager);
      expect(registry.backend).toBe('redis');
      await registry.get('gpt-4o').acquire({ tokens: 10 });
      const connection = manager.client;
      expect(connection.status).toBe('ready');
      await moduleRef.close();
      expect(connection.status).toBe('end');
    });

    it('uses an ioredis client the application passes, and leaves it open on shutdown', async () => {
      const client = new Redis(redisUrl());
      try {
        const moduleRef = await initModule({
          imports: [LlmRateLimiterModule.forRoot({ redis: client, keyPrefix: uniquePrefix(), models: { m: { rpm: 3 } } })],
        });
        const registry = moduleRef.get(RateLimiterRegistry);
        expect(registry.backend).toBe('redis');
        await registry.get('m').acquire({ tokens: 1 });
        expect((await registry.get('m').getStatus()).requestsUsed).toBe(1);
        await moduleRef.close();
        expect(client.status).toBe('ready');
      } finally {
        await closeClient(client);
      }
    });

    it('throws UnknownModelError naming the configured models for any other name', async () => {
      const moduleRef = await start({ imports: [LlmRateLimiterModule.forRoot({ models: { 'gpt-4o': { tpm: 1 }, claude: { tpm: 1 } } })] });
      const registry = moduleRef.get(RateLimiterRegistry);
      expect(() => registry.get('gpt-5')).toThrow(UnknownModelError);
      expect(() => registry.get('gpt-5')).toThrow('no rate limiter is configured for model "gpt-5"; configured models: "gpt-4o", "claude"');
    });
  });

  describe('forRootAsync', () => {
    it('builds the limiters from an injected config service, with the models listed beside the factory injectable', async () => {
      const moduleRef = await start({
        imports: [
          LlmRateLimiterModule.forRootAsync({
            imports: [AppConfigModule],
            inject: [AppConfig],
            models: ['gpt-4o'],
            useFactory: (config: AppConfig) => ({
              redis: { url: config.get('REDIS_URL') },
              keyPrefix: uniquePrefix(),
              models: { 'gpt-4o': { tpm: Number(config.get('GPT_TPM')) }, claude: { rpm: Number(config.get('CLAUDE_RPM')) } },
            }),
          }),
        ],
        providers: [UsesGpt],
      });
      const { limiter, registry } = moduleRef.get(UsesGpt);
      expect(limiter.config).toEqual({ tpm: 30000 });
      expect(registry.backend).toBe('redis');
      // Not listed beside the factory, so not a token; the registry still has it.
      expect(registry.get('claude').config).toEqual({ rpm: 50 });
      expect(() => moduleRef.get(getRateLimiterToken('claude'))).toThrow();
    });

    it('takes its options from a class (useClass)', async () => {
      const moduleRef = await start({
        imports: [LlmRateLimiterModule.forRootAsync({ imports: [AppConfigModule], useClass: LimiterOptionsFactory, models: ['gpt-4o'] })],
        providers: [UsesGpt],
      });
      expect(moduleRef.get(UsesGpt).limiter.config).toEqual({ tpm: 30000 });
    });

    it('takes its options from an existing provider (useExisting)', async () => {
      @Module({ imports: [AppConfigModule], providers: [LimiterOptionsFactory], exports: [LimiterOptionsFactory] })
      class OptionsModule {}
      const moduleRef = await start({
        imports: [LlmRateLimiterModule.forRootAsync({ imports: [OptionsModule], useExisting: LimiterOptionsFactory })],
      });
      expect(moduleRef.get(RateLimiterRegistry).get('gpt-4o').config).toEqual({ tpm: 30000 });
    });

    it('fails at bootstrap when a model listed beside the factory is not configured by it', async () => {
      await expect(
        initModule({
          imports: [
            LlmRateLimiterModule.forRootAsync({ useFactory: () => ({ models: { 'gpt-4o': { tpm: 1 } } }), models: ['gpt-4o', 'claude'] }),
          ],
        }),
      ).rejects.toThrow(/no rate limiter is configured for model "claude"; configured models: "gpt-4o"/);
    });
  });

  describe('forFeature', () => {
    @Injectable()
    class FeatureService {
      constructor(@InjectRateLimiter('claude') readonly limiter: RateLimiter) {}
    }

    it('declares per-model limiters in a feature module, resolved from a global root module', async () => {
      @Module({ imports: [LlmRateLimiterModule.forFeature(['claude'])], providers: [FeatureService], exports: [FeatureService] })
      class FeatureModule {}
      const moduleRef = await start({
        imports: [
          LlmRateLimiterModule.forRootAsync({
            isGlobal: true,
            useFactory: async () => ({ models: { 'gpt-4o': { tpm: 1 }, claude: { rpm: 2 } } }),
          }),
          FeatureModule,
        ],
      });
      expect(moduleRef.get(FeatureService).limiter).toBe(moduleRef.get(RateLimiterRegistry).get('claude'));
    });

    it('says to make the root module global when it cannot see the registry', async () => {
      @Module({ imports: [LlmRateLimiterModule.forFeature(['claude'])], providers: [FeatureService] })
      class FeatureModule {}
      await expect(
        initModule({ imports: [LlmRateLimiterModule.forRoot({ models: { claude: { rpm: 2 } } }), FeatureModule] }),
      ).rejects.toThrow(/forFeature\(\["claude"\]\) cannot see a RateLimiterRegistry: .*isGlobal: true/);
    });

    it('fails at bootstrap on a model the root module does not configure', async () => {
      @Module({ imports: [LlmRateLimiterModule.forFeature(['claude'])], providers: [FeatureService] })
      class FeatureModule {}
      await expect(
        initModule({ imports: [LlmRateLimiterModule.forRoot({ isGlobal: true, models: { 'gpt-4o': { rpm: 2 } } }), FeatureModule] }),
      ).rejects.toThrow(UnknownModelError);
    });
  });

  it('makes the registry visible everywhere with isGlobal', async () => {
    @Injectable()
    class Deep {
      constructor(@Inject(RateLimiterRegistry) readonly registry: RateLimiterRegistry) {}
    }
    @Module({ providers: [Deep], exports: [Deep] })
    class DeepModule {}
    const moduleRef = await start({ imports: [LlmRateLimiterModule.forRoot({ isGlobal: true, models: { m: { rpm: 1 } } }), DeepModule] });
    expect(moduleRef.get(Deep).registry.models).toEqual(['m']);
  });
});
