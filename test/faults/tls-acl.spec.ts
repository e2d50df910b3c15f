// T27-T31 over a real TLS server with ACL users: what a misconfigured deployment sees, at
// startup (verify) and on the first acquire. None of these may fail open.
import { Redis } from 'ioredis';
import { RateLimiter, RedisConfigurationError, RedisConnectionManager, type RedisConnectionOptions } from '../../lib/index.js';
import { recordingLogger } from '../support/backends.js';
import { closeClient, redisUrl, uniquePrefix } from '../support/redis.js';
import { OwnTlsRedis } from '../support/redis-tls.js';
import { limiterAcl } from '../support/limiter-acl.js';

/** The ACL a limiter user needs, as docs/cluster.md gives it, with its channel pattern (INFO added to spare ioredis's warning). */
const LIMITER_ACL = limiterAcl();

describe('TLS and ACL', () => {
  let tls: OwnTlsRedis;
  let admin: Redis;
  const managers: RedisConnectionManager[] = [];

  beforeAll(async () => {
    tls = await OwnTlsRedis.start();
    admin = new Redis({ host: '127.0.0.1', port: tls.port, tls: { ca: tls.certificates.ca } });
    await admin.call('ACL', 'SETUSER', 'limiter', 'reset', 'on', '>limiter-pw', '~{llmrl:*', '-@all', ...LIMITER_ACL);
    await admin.call('ACL', 'SETUSER', 'notime', 'reset', 'on', '>pw', '~{llmrl:*', '-@all', ...LIMITER_ACL, '-time');
    await admin.call('ACL', 'SETUSER', 'otherkeys', 'reset', 'on', '>pw', '~jobs:*', '-@all', ...LIMITER_ACL);
  });

  afterAll(async () => {
    await Promise.all(managers.map((m) => m.close()));
    if (admin) await closeClient(admin);
    await tls?.stop();
  });

  function manager(options: RedisConnectionOptions): RedisConnectionManager {
    const m = new RedisConnectionManager({ retryConfig: { maxRetries: 1 }, ...options });
    managers.push(m);
    return m;
  }

  /** The error a limiter's first acquire gets, and how long it took. */
  async function firstAcquire(m: RedisConnectionManager): Promise<{ error: unknown; ms: number }> {
    const limiter = new RateLimiter(m, 'gpt-4o', { tpm: 1000 }, { logger: recordingLogger() });
    const started = performance.now();
    const error = await limiter.acquire({ tokens: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    return { error, ms: performance.now() - started };
  }

  it('works over rediss:// with the CA and the documented ACL, by IP and by host name (T30, T31)', async () => {
    for (const host of ['127.0.0.1', 'localhost']) {
      const m = manager({ url: `rediss://limiter:limiter-pw@${host}:${tls.port}`, tls: { ca: tls.certificates.ca } });
      const report = await m.verify();
      expect(report).toMatchObject({ username: 'limiter', algorithms: ['sliding-window', 'token-bucket'] });
      // CONFIG is not part of the ACL: said, not fatal
      expect(report.warnings).toEqual([expect.stringMatching(/CONFIG GET is not allowed for the Redis user "limiter"/)]);
      const limiter = new RateLimiter(m, uniquePrefix('model'), { tpm: 1000 });
      expect((await limiter.acquire({ tokens: 10 })).degraded).toBe(false);
    }
  });

  it('works for a user without INFO: no version in the report, limits as usual (T31)', async () => {
    await admin.call('ACL', 'SETUSER', 'noinfo', 'reset', 'on', '>pw', '~{llmrl:*', '-@all', ...LIMITER_ACL, '-info');
    const m = manager({ url: `rediss://noinfo:pw@127.0.0.1:${tls.port}`, tls: { ca: tls.certificates.ca } });
    const report = await m.verify();
    expect(report.serverVersion).toBeUndefined();
    const limiter = new RateLimiter(m, uniquePrefix('model'), { tpm: 1000 });
    expect((await limiter.acquire({ tokens: 10 })).degraded).toBe(false);
  });

  it('works with the tls option and username/password instead of a URL', async () => {
    const m = manager({ host: '127.0.0.1', port: tls.port, tls: { ca: tls.certificates.ca }, username: 'limiter', password: 'limiter-pw' });
    await expect(m.verify()).resolves.toMatchObject({ topology: 'standalone' });
  });

  it.each([
    ['no CA (self-signed chain)', { tls: true }, /self-signed certificate|unable to verify/i],
    [
      'a CA that did not sign the server certificate',
      { tls: { ca: [] as Buffer[] } },
      /self-signed certificate|unable to verify|unable to get/i,
    ],
    ['a host name the certificate does not name', { tls: { servername: 'redis.example.com' } }, /Hostname\/IP does not match|altnames/i],
  ])('reports a TLS failure with its cause: %s (T30)', async (_case, extra, cause) => {
    const tlsOptions = {
      ca: _case.startsWith('a CA') ? tls.certificates.otherCa : tls.certificates.ca,
      ...(typeof extra.tls === 'object' ? extra.tls : {}),
    };
    const m = manager({
      host: '127.0.0.1',
      port: tls.port,
      username: 'limiter',
      password: 'limiter-pw',
      tls: extra.tls === true ? true : tlsOptions,
    });
    const err = await m.verify().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConfigurationError);
    expect((err as Error).message).toMatch(cause);
    expect((err as Error).message).toMatch(/TLS handshake failed/);
    // and a limiter never fails open over it
    const { error, ms } = await firstAcquire(m);
    expect(error).toBeInstanceOf(RedisConfigurationError);
    expect(ms).toBeLessThan(5000);
  });

  it('says the port expects TLS when the client speaks plain text to it (T30)', async () => {
    const m = manager({ url: `redis://limiter:limiter-pw@127.0.0.1:${tls.port}` });
    const err = await m.verify().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConfigurationError);
    expect((err as Error).message).toMatch(/expects TLS but the limiter connects in plain text: use a rediss:\/\/ URL/);
  });

  it('reports TLS spoken to a plain-text port as a TLS failure (T30)', async () => {
    const plain = new URL(redisUrl());
    const m = manager({ url: `rediss://${plain.hostname}:${plain.port}`, tls: { ca: tls.certificates.ca } });
    const err = await m.verify().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConfigurationError);
    expect((err as Error).message).toMatch(/speaks plain text but the limiter connects with TLS/);
  });

  it('rejects a wrong password at startup and on acquire, naming WRONGPASS (T27)', async () => {
    const m = manager({ url: `rediss://limiter:not-the-password@127.0.0.1:${tls.port}`, tls: { ca: tls.certificates.ca } });
    await expect(m.verify()).rejects.toThrow(/WRONGPASS.*Check username and password/);
    const { error } = await firstAcquire(m);
    expect(error).toBeInstanceOf(RedisConfigurationError);
  });

  it('rejects a missing password when the default user is off, naming NOAUTH (T27)', async () => {
    const own = await OwnTlsRedis.start(['--user', 'default', 'off']);
    try {
      const m = manager({ url: `rediss://127.0.0.1:${own.port}`, tls: { ca: own.certificates.ca } });
      const err = await m.verify().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisConfigurationError);
      expect((err as Error).message).toMatch(/NOAUTH|WRONGPASS|authenticat/i);
    } finally {
      await own.stop();
    }
  });

  it('names the command an ACL lacks inside the scripts, at startup (T28)', async () => {
    const m = manager({ url: `rediss://notime:pw@127.0.0.1:${tls.port}`, tls: { ca: tls.certificates.ca } });
    const err = await m.verify().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConfigurationError);
    expect((err as Error).message).toMatch(
      /the Redis user "notime" may not run TIME, which the limiter's scripts call.*ACL SETUSER notime \+time/,
    );
    const { error } = await firstAcquire(m);
    expect(error).toBeInstanceOf(RedisConfigurationError);
    expect((error as Error).message).toMatch(/can't run this command.*An ACL permission is missing/);
  });

  it('names the key pattern an ACL lacks (T29)', async () => {
    const m = manager({ url: `rediss://otherkeys:pw@127.0.0.1:${tls.port}`, tls: { ca: tls.certificates.ca } });
    await expect(m.verify()).rejects.toThrow(/may not use the limiter's keys, which all start with \{llmrl:.*~\{llmrl:\*/);
    const { error } = await firstAcquire(m);
    expect(error).toBeInstanceOf(RedisConfigurationError);
  });
});
