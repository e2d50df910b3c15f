import {
  LlmRateLimiterModule,
  RateLimiterRegistry,
  RedisConfigurationError,
  RedisUnavailableError,
  type LlmRateLimiterModuleOptions,
} from '../../lib/index.js';
import { initModule, recordingNestLogger } from '../support/nest.js';
import { closeClient, inspector, redisUrl, uniquePrefix } from '../support/redis.js';
import { freePort } from '../support/redis-server.js';

const boot = (options: Partial<LlmRateLimiterModuleOptions>, logger = recordingNestLogger()) =>
  initModule({ imports: [LlmRateLimiterModule.forRoot({ models: { m: { tpm: 100 } }, ...options })] }, logger);

describe('LlmRateLimiterModule checks Redis at startup', () => {
  const user = uniquePrefix('user');
  beforeAll(async () => {
    const admin = inspector();
    await admin.call('ACL', 'SETUSER', user, 'on', '>right', '~*', '+@all');
    await closeClient(admin);
  });
  afterAll(async () => {
    const admin = inspector();
    await admin.call('ACL', 'DELUSER', user);
    await closeClient(admin);
  });

  it('starts and says what it checked when Redis is right', async () => {
    const logger = recordingNestLogger();
    const app = await boot({ redis: { url: redisUrl() }, keyPrefix: uniquePrefix() }, logger);
    expect(logger.lines.some((l) => /checked: scripts run as/.test(l.message))).toBe(true);
    await app.close();
  });

  it('fails the bootstrap on a wrong password', async () => {
    const url = new URL(redisUrl());
    await expect(boot({ redis: { host: url.hostname, port: Number(url.port), username: user, password: 'wrong' } })).rejects.toThrow(
      RedisConfigurationError,
    );
  });

  it('starts anyway, with a warning, when Redis is unreachable and calls may fail open', async () => {
    const logger = recordingNestLogger();
    const app = await boot({ redis: { host: '127.0.0.1', port: await freePort() } }, logger);
    expect(logger.lines.some((l) => l.level === 'warn' && /cannot be reached at startup/.test(l.message))).toBe(true);
    expect(app.get(RateLimiterRegistry).backend).toBe('redis');
    await app.close();
  });

  it("fails the bootstrap when Redis is unreachable and failureMode is 'closed'", async () => {
    await expect(boot({ redis: { host: '127.0.0.1', port: await freePort() }, failureMode: 'closed' })).rejects.toThrow(
      RedisUnavailableError,
    );
  });

  it('skips the check with verifyOnStartup: false, and refuses a non-boolean', async () => {
    const url = new URL(redisUrl());
    const app = await boot({
      redis: { host: url.hostname, port: Number(url.port), username: user, password: 'wrong' },
      verifyOnStartup: false,
    });
    await app.close();
    await expect(boot({ verifyOnStartup: 'yes' as never })).rejects.toThrow(/verifyOnStartup must be true or false/);
  });
});
