import { Injectable } from '@nestjs/common';
import {
  getRateLimiterToken,
  InjectRateLimiter,
  LlmRateLimiterModule,
  type LlmRateLimiterModuleOptions,
  RateLimitConfigError,
  RateLimiter,
  UnknownModelError,
} from '../../lib/index.js';
import { initModule } from '../support/nest.js';

const bootstrap = (options: unknown) => initModule({ imports: [LlmRateLimiterModule.forRoot(options as LlmRateLimiterModuleOptions)] });
const bootstrapAsync = (options: unknown) =>
  initModule({ imports: [LlmRateLimiterModule.forRootAsync({ useFactory: async () => options as LlmRateLimiterModuleOptions })] });

describe('LlmRateLimiterModule refuses bad options at bootstrap', () => {
  it.each([
    [
      'a negative limit',
      { models: { 'gpt-4o': { tpm: -5 } } },
      'models["gpt-4o"].tpm must be a non-negative integer no larger than 1000000000000 (0 turns it off), got -5',
    ],
    ['a fractional limit', { models: { claude: { rpm: 1.5 } } }, 'models["claude"].rpm must be a non-negative integer'],
    ['an unknown limit field', { models: { 'gpt-4o': { tmp: 10 } } }, 'models["gpt-4o"].tmp is not a rate limit setting'],
    ['every limit off', { models: { 'gpt-4o': {} } }, 'models["gpt-4o"].tpm, inputTpm, outputTpm and rpm are all off'],
    ['a bad window', { models: { 'gpt-4o': { tpm: 1, windowSeconds: 0 } } }, 'models["gpt-4o"].windowSeconds must be a number of seconds'],
    ['a config that is not an object', { models: { 'gpt-4o': 100 } }, 'models["gpt-4o"] must be an object'],
    ['no models', { models: {} }, 'models must name at least one model with its limits'],
    ['an empty model name', { models: { '': { tpm: 1 } } }, 'models[""]: a model name must be a non-empty'],
    ['an unknown option', { models: { m: { tpm: 1 } }, failuremode: 'open' }, 'failuremode is not an LlmRateLimiterModule option'],
    ['a bad failure mode', { models: { m: { tpm: 1 } }, failureMode: 'sometimes' }, "failureMode must be 'open'"],
    [
      'a bad retry setting',
      { models: { m: { tpm: 1 } }, retryConfig: { maxRetries: -1 } },
      'retryConfig.maxRetries must be an integer from 0 to 100, got -1',
    ],
    [
      'a bad Redis port',
      { models: { m: { tpm: 1 } }, redis: { host: 'localhost', port: 0 } },
      'redis: port must be an integer from 1 to 65535, got 0',
    ],
    [
      'a Redis url of another scheme',
      { models: { m: { tpm: 1 } }, redis: { url: 'http://localhost' } },
      'redis: url must start with redis:// or rediss://',
    ],
    ['redis given as a string', { models: { m: { tpm: 1 } }, redis: 'redis://localhost' }, 'redis must be connection settings such as'],
    ['an onEvent that is no function', { models: { m: { tpm: 1 } }, onEvent: 'log' }, 'onEvent must be a function'],
  ])('with %s, forRoot fails naming the field', async (_, options, message) => {
    const failure = bootstrap(options);
    await expect(failure).rejects.toThrow(RateLimitConfigError);
    await expect(failure).rejects.toThrow(message);
  });

  it('fails the same way when the options come from a forRootAsync factory', async () => {
    await expect(bootstrapAsync({ models: { 'gpt-4o': { tpm: -5 } } })).rejects.toThrow(
      'models["gpt-4o"].tpm must be a non-negative integer',
    );
  });

  it('fails on options that are not an object', async () => {
    await expect(bootstrapAsync(undefined)).rejects.toThrow('LlmRateLimiterModule options must be an object');
  });

  it.each([
    ['an unset url', { url: undefined }, 'redis.url is undefined (an environment variable that is not set?)'],
    ['an empty url', { url: '' }, 'redis.url is "" (an environment variable that is not set?)'],
    ['no server at all', { port: 6379 }, 'redis names no server'],
  ])('with %s in redis, fails instead of connecting to localhost', async (_, redis, message) => {
    const failure = bootstrap({ models: { m: { tpm: 1 } }, redis });
    await expect(failure).rejects.toThrow(RateLimitConfigError);
    await expect(failure).rejects.toThrow(message);
    await expect(failure).rejects.toThrow("for a local server say so with host: 'localhost'");
  });

  it.each([
    [
      'a limit',
      { models: { 'gpt-4o': { tpm: '30000' } } },
      'models["gpt-4o"].tpm must be a non-negative integer no larger than 1000000000000 (0 turns it off), got "30000", a string: wrap',
    ],
    [
      'a window',
      { models: { 'gpt-4o': { tpm: 1, windowSeconds: '60' } } },
      'models["gpt-4o"].windowSeconds must be a number of seconds from 0.1 to 86400 in whole milliseconds, got "60", a string: wrap',
    ],
    [
      'a Redis port',
      { models: { m: { tpm: 1 } }, redis: { host: 'localhost', port: '6379' } },
      'redis.port must be a number, got "6379", a string: wrap',
    ],
  ])('with %s given as a numeric string, says to wrap it in Number()', async (_, options, message) => {
    const failure = bootstrap(options);
    await expect(failure).rejects.toThrow(message);
    await expect(failure).rejects.toThrow('in Number()');
  });
});

@Injectable()
class SonnetUser {
  constructor(@InjectRateLimiter('claude-sonnet') readonly limiter: RateLimiter) {}
}

// Defined and never provided: a name injected somewhere in the process must not break an
// application that does not use the class.
@Injectable()
class UnusedUser {
  constructor(@InjectRateLimiter('never-configured') readonly limiter: RateLimiter) {}
}

describe('LlmRateLimiterModule names an injected model it does not declare', () => {
  const limits = { tpm: 1000 };
  const asyncRoot = (configured: Record<string, { tpm: number }>) =>
    LlmRateLimiterModule.forRootAsync({ models: ['gpt-4o'], useFactory: () => ({ models: configured }) });

  it('when forRootAsync configures it but its models list leaves it out', async () => {
    const failure = initModule({ imports: [asyncRoot({ 'gpt-4o': limits, 'claude-sonnet': limits })], providers: [SonnetUser] });
    await expect(failure).rejects.toThrow(RateLimitConfigError);
    await expect(failure).rejects.toThrow(
      '@InjectRateLimiter("claude-sonnet"): "claude-sonnet" is configured by the forRootAsync factory but missing from forRootAsync\'s models list ["gpt-4o"]',
    );
    await expect(failure).rejects.toThrow('Add it: models: ["gpt-4o", "claude-sonnet"].');
  });

  it('when no limits are configured for it, listing the configured models', async () => {
    const failure = initModule({ imports: [asyncRoot({ 'gpt-4o': limits })], providers: [SonnetUser] });
    await expect(failure).rejects.toThrow(UnknownModelError);
    await expect(failure).rejects.toThrow(
      '@InjectRateLimiter("claude-sonnet"): no rate limiter is configured for model "claude-sonnet"; configured models: "gpt-4o"',
    );
  });

  it('with forRoot as well', async () => {
    const failure = initModule({ imports: [LlmRateLimiterModule.forRoot({ models: { 'gpt-4o': limits } })], providers: [SonnetUser] });
    await expect(failure).rejects.toThrow(
      '@InjectRateLimiter("claude-sonnet"): no rate limiter is configured for model "claude-sonnet"; configured models: "gpt-4o"',
    );
  });

  it('when the injecting class loads after forRootAsync() ran', async () => {
    const root = asyncRoot({ 'gpt-4o': limits });
    @Injectable()
    class LateUser {
      constructor(@InjectRateLimiter('late-model') readonly limiter: RateLimiter) {}
    }
    await expect(initModule({ imports: [root], providers: [LateUser] })).rejects.toThrow(
      '@InjectRateLimiter("late-model"): no rate limiter is configured',
    );
  });

  it('injects a declared model and ignores names only classes outside the application inject', async () => {
    expect(UnusedUser).toBeDefined();
    const moduleRef = await initModule({ imports: [asyncRoot({ 'gpt-4o': limits, 'claude-sonnet': limits })], providers: [] });
    try {
      expect(moduleRef.get(getRateLimiterToken('gpt-4o'))).toBeInstanceOf(RateLimiter);
    } finally {
      await moduleRef.close();
    }
  });

  it('leaves a model declared by forFeature to the feature module', async () => {
    const moduleRef = await initModule({
      imports: [
        LlmRateLimiterModule.forRootAsync({
          isGlobal: true,
          models: ['gpt-4o'],
          useFactory: () => ({ models: { 'gpt-4o': limits, 'claude-sonnet': limits } }),
        }),
        LlmRateLimiterModule.forFeature(['claude-sonnet']),
      ],
      providers: [SonnetUser],
    });
    try {
      expect(moduleRef.get(SonnetUser).limiter.model).toBe('claude-sonnet');
    } finally {
      await moduleRef.close();
    }
  });
});
