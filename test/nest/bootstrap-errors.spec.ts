import { LlmRateLimiterModule, type LlmRateLimiterModuleOptions, RateLimitConfigError } from '../../lib/index.js';
import { initModule } from '../support/nest.js';

const bootstrap = (options: unknown) => initModule({ imports: [LlmRateLimiterModule.forRoot(options as LlmRateLimiterModuleOptions)] });
const bootstrapAsync = (options: unknown) =>
  initModule({ imports: [LlmRateLimiterModule.forRootAsync({ useFactory: async () => options as LlmRateLimiterModuleOptions })] });

describe('LlmRateLimiterModule refuses bad options at bootstrap', () => {
  it.each([
    ['a negative limit', { models: { 'gpt-4o': { tpm: -5 } } }, 'models["gpt-4o"].tpm must be a non-negative integer no larger than 1000000000000 (0 turns it off), got -5'],
    ['a fractional limit', { models: { claude: { rpm: 1.5 } } }, 'models["claude"].rpm must be a non-negative integer'],
    ['an unknown limit field', { models: { 'gpt-4o': { tmp: 10 } } }, 'models["gpt-4o"].tmp is not a rate limit setting'],
    ['every limit off', { models: { 'gpt-4o': {} } }, 'models["gpt-4o"].tpm, inputTpm, outputTpm and rpm are all off'],
    ['a bad window', { models: { 'gpt-4o': { tpm: 1, windowSeconds: 0 } } }, 'models["gpt-4o"].windowSeconds must be a number of seconds'],
    ['a config that is not an object', { models: { 'gpt-4o': 100 } }, 'models["gpt-4o"] must be an object'],
    ['no models', { models: {} }, 'models must name at least one model with its limits'],
    ['an empty model name', { models: { '': { tpm: 1 } } }, 'models[""]: a model name must be a non-empty'],
    ['an unknown option', { models: { m: { tpm: 1 } }, failuremode: 'open' }, 'failuremode is not an LlmRateLimiterModule option'],
    ['a bad failure mode', { models: { m: { tpm: 1 } }, failureMode: 'sometimes' }, "failureMode must be 'open'"],
    ['a bad retry setting', { models: { m: { tpm: 1 } }, retryConfig: { maxRetries: -1 } }, 'retryConfig.maxRetries must be an integer from 0 to 100, got -1'],
    ['a bad Redis port', { models: { m: { tpm: 1 } }, redis: { port: 0 } }, 'redis: port must be an integer from 1 to 65535, got 0'],
    ['a Redis url of another scheme', { models: { m: { tpm: 1 } }, redis: { url: 'http://localhost' } }, 'redis: url must start with redis:// or rediss://'],
    ['redis given as a string', { models: { m: { tpm: 1 } }, redis: 'redis://localhost' }, 'redis must be connection settings such as'],
    ['an onEvent that is no function', { models: { m: { tpm: 1 } }, onEvent: 'log' }, 'onEvent must be a function'],
  ])('with %s, forRoot fails naming the field', async (_, options, message) => {
    const failure = bootstrap(options);
    await expect(failure).rejects.toThrow(RateLimitConfigError);
    await expect(failure).rejects.toThrow(message);
  });

  it('fails the same way when the options come from a forRootAsync factory', async () => {
    await expect(bootstrapAsync({ models: { 'gpt-4o': { tpm: -5 } } })).rejects.toThrow('models["gpt-4o"].tpm must be a non-negative integer');
  });

  it('fails on options that are not an object', async () => {
    await expect(bootstrapAsync(undefined)).rejects.toThrow('LlmRateLimiterModule options must be an object');
  });
});
