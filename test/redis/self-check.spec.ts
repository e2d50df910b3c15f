import { Redis } from 'ioredis';
import { RedisConfigurationError, RedisConnectionManager, RedisUnavailableError } from '../../lib/index.js';
import { scriptCommands } from '../../lib/redis/script-commands.js';
import { closeClient, inspector, redisUrl, uniquePrefix } from '../support/redis.js';
import { freePort, OwnRedisServer } from '../support/redis-server.js';

/** An ACL user with everything a limiter needs on `prefix` (the ACL docs/cluster.md gives), changed by `tweak`. */
async function limiterUser(admin: Redis, prefix: string, ...tweak: string[]): Promise<{ username: string; password: string }> {
  const username = uniquePrefix('user');
  const password = 'pw-' + username;
  const commands = [
    '+eval',
    '+evalsha',
    '+ping',
    '+hello',
    '+info',
    '+subscribe',
    '+unsubscribe',
    ...scriptCommands().map((c) => `+${c.toLowerCase()}`),
  ];
  await admin.call('ACL', 'SETUSER', username, 'reset', 'on', `>${password}`, `~{${prefix}:*`, `&{${prefix}:*`, ...commands, ...tweak);
  return { username, password };
}

describe('RedisConnectionManager.verify', () => {
  let admin: Redis;
  const users: string[] = [];
  beforeAll(() => {
    admin = inspector();
  });
  afterAll(async () => {
    for (const user of users) await admin.call('ACL', 'DELUSER', user);
    await closeClient(admin);
  });

  async function check(prefix: string, ...tweak: string[]) {
    const user = await limiterUser(admin, prefix, ...tweak);
    users.push(user.username);
    const manager = new RedisConnectionManager({ url: redisUrl(), ...user });
    try {
      return await manager.verify({ keyPrefix: prefix });
    } finally {
      await manager.close();
    }
  }

  it('reports a working setup: both algorithms ran, the server version and its eviction policy', async () => {
    const manager = new RedisConnectionManager({ url: redisUrl() });
    const warned: string[] = [];
    try {
      const report = await manager.verify({ keyPrefix: uniquePrefix(), logger: { warn: (m) => warned.push(m) } });
      expect(report).toMatchObject({
        topology: 'standalone',
        username: 'default',
        algorithms: ['sliding-window', 'token-bucket'],
        warnings: [],
      });
      expect(report.serverVersion).toMatch(/^\d+\.\d+/);
      expect(report.eviction).toEqual([expect.objectContaining({ policy: 'noeviction' })]);
      expect(warned).toEqual([]);
    } finally {
      await manager.close();
    }
  });

  it('passes with exactly the documented ACL: script commands, EVAL/EVALSHA, PING, HELLO, and no CONFIG', async () => {
    const prefix = uniquePrefix();
    const report = await check(prefix);
    expect(report.username).toMatch(/^user-/);
    // CONFIG GET is not granted: the check says so and goes on
    expect(report.warnings).toEqual([expect.stringMatching(/could not read maxmemory-policy: CONFIG GET is not allowed/)]);
  });

  it.each(['TIME', 'ZCARD', 'PEXPIREAT', 'HDEL'])(
    'names %s when the ACL lacks it, though no script fails on it every call',
    async (command) => {
      const err = await check(uniquePrefix(), `-${command.toLowerCase()}`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisConfigurationError);
      expect((err as Error).message).toMatch(new RegExp(`may not run ${command}\\b.*ACL SETUSER user-\\S+ \\+${command.toLowerCase()}`));
    },
  );

  it("names the channel permission when the user may not publish to the limiter's channels", async () => {
    const prefix = uniquePrefix();
    const err = await check(prefix, 'resetchannels').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConfigurationError);
    expect((err as Error).message).toMatch(
      new RegExp(`may not publish to the limiter's channels.*ACL SETUSER user-\\S+ &\\{${prefix}:\\*`),
    );
  });

  it('names SUBSCRIBE when the ACL lacks it: the scripts publish, the store subscribes', async () => {
    const prefix = uniquePrefix();
    const err = await check(prefix, '-subscribe').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConfigurationError);
    expect((err as Error).message).toMatch(/may not run SUBSCRIBE.*ACL SETUSER user-\S+ \+subscribe/);
  });

  it('says which key pattern the user needs', async () => {
    const err = await check(uniquePrefix(), 'resetkeys', '~other:*').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConfigurationError);
    expect((err as Error).message).toMatch(/may not use the limiter's keys.*~\{t-[0-9a-f]+:\*/);
  });

  it('says that EVAL is missing', async () => {
    const err = await check(uniquePrefix(), '-eval').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConfigurationError);
    expect((err as Error).message).toMatch(/NOPERM.*'eval'/);
  });

  it('rejects a wrong password with RedisConfigurationError at once', async () => {
    const manager = new RedisConnectionManager({ url: redisUrl(), username: 'nobody-' + uniquePrefix(), password: 'wrong' });
    try {
      const err = await manager.verify().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisConfigurationError);
      expect((err as Error).message).toMatch(/WRONGPASS.*Check username and password/);
    } finally {
      await manager.close();
    }
  });

  it('rejects with RedisUnavailableError when nothing listens', async () => {
    const manager = new RedisConnectionManager({ host: '127.0.0.1', port: await freePort(), retryConfig: { maxRetries: 1 } });
    try {
      await expect(manager.verify()).rejects.toThrow(RedisUnavailableError);
    } finally {
      await manager.close();
    }
  });

  it('warns when the eviction policy may drop limiter keys', async () => {
    const own = await OwnRedisServer.start(['--maxmemory', '64mb', '--maxmemory-policy', 'volatile-lru']);
    const manager = new RedisConnectionManager({ url: own.url });
    try {
      const report = await manager.verify();
      expect(report.eviction).toEqual([{ node: expect.stringMatching(/:\d+$/), policy: 'volatile-lru', maxmemoryBytes: 64 * 1024 * 1024 }]);
      expect(report.warnings).toEqual([expect.stringMatching(/maxmemory-policy is volatile-lru .* may evict limiter keys/)]);
    } finally {
      await manager.close();
      await own.stop();
    }
  });

  it('knows every command the scripts call', () => {
    expect(scriptCommands()).toEqual(expect.arrayContaining(['TIME', 'HMGET', 'HSET', 'ZADD', 'ZSCORE', 'PEXPIREAT', 'ZRANK', 'PUBLISH']));
    expect(scriptCommands()).not.toContain('EVAL');
  });
});
