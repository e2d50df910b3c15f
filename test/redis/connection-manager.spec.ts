import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { RateLimitConfigError, RateLimiter, RedisConnectionManager } from '../../lib/index.js';
import { recordingLogger } from '../support/backends.js';
import { closeClient, redisUrl, uniquePrefix } from '../support/redis.js';
import { OwnRedisServer } from '../support/redis-server.js';

describe('RedisConnectionManager', () => {
  it('closes its connections with await using', async () => {
    let client: Redis | undefined;
    {
      await using manager = new RedisConnectionManager({ url: redisUrl() });
      const limiter = new RateLimiter(manager, 'm', { tpm: 100 }, { keyPrefix: uniquePrefix() });
      await limiter.acquire({ tokens: 1 });
      client = manager.client;
      expect(client.status).toBe('ready');
    }
    expect(client.status).toBe('end');
  });

  // ioredis listens for a socket's first error only; a TLS socket may emit a second (the server's
  // alert after a refused certificate), which Node throws as an unhandled 'error'.
  it('keeps a second socket error quiet, on a live connection and on one that failed to connect', async () => {
    const manager = new RedisConnectionManager({ url: redisUrl(), retryConfig: { maxRetries: 0 } });
    try {
      const limiter = new RateLimiter(manager, 'm', { tpm: 100 }, { keyPrefix: uniquePrefix() });
      await limiter.acquire({ tokens: 1 });
      const live = manager.client.stream;
      expect(() => live.emit('error', new Error('first'))).not.toThrow();
      expect(() => live.emit('error', new Error('second'))).not.toThrow();
    } finally {
      await manager.close();
    }
    // A server that answers the TLS hello with plain text: the handshake fails on the first error.
    const accepted: Socket[] = [];
    const server = createServer((socket) => {
      accepted.push(socket);
      socket.end('-ERR not TLS\r\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const failing = new RedisConnectionManager({ host: '127.0.0.1', port, tls: true, retryConfig: { maxRetries: 0 } });
    try {
      await expect(failing.verify()).rejects.toThrow(/TLS handshake failed/);
      const stream = failing.client.stream;
      expect(() => stream.emit('error', new Error('a late alert'))).not.toThrow();
    } finally {
      await failing.close();
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('opens at most maxConnections connections under concurrent load', async () => {
    const manager = new RedisConnectionManager({ url: redisUrl(), maxConnections: 3 });
    try {
      const limiter = new RateLimiter(manager, 'm', { tpm: 1e9 }, { keyPrefix: uniquePrefix() });
      for (let round = 0; round < 5; round++) {
        await Promise.all(Array.from({ length: 64 }, () => limiter.acquire({ tokens: 1 })));
      }
      const clients = (manager as unknown as { clients: Redis[] }).clients;
      expect(clients.length).toBeGreaterThanOrEqual(1);
      expect(clients.length).toBeLessThanOrEqual(3);
      expect((await limiter.getStatus()).requestsUsed).toBe(320);
    } finally {
      await manager.close();
    }
  });

  it('uses an application-owned client and leaves it open on close', async () => {
    const own = new Redis(redisUrl());
    const manager = new RedisConnectionManager({ client: own });
    const limiter = new RateLimiter(manager, 'm', { tpm: 100 }, { keyPrefix: uniquePrefix() });
    await limiter.acquire({ tokens: 5 });
    await manager.close();
    expect(own.status).toBe('ready');
    await closeClient(own);
  });

  it('accepts a plain ioredis client as a backend, on RESP2 as well as RESP3', async () => {
    for (const protocol of [2, 3] as const) {
      const client = new Redis(redisUrl(), { protocol });
      try {
        const limiter = new RateLimiter(client, 'm', { inputTpm: 1000, outputTpm: 100, rpm: 5 }, { keyPrefix: uniquePrefix() });
        const r = await limiter.acquire({ inputTokens: 10, outputTokens: 20 });
        await limiter.adjust(r.recordId, { actualOutput: 5 });
        expect(await limiter.getStatus()).toMatchObject({ inputTokensUsed: 10, outputTokensUsed: 5, requestsUsed: 1, queueDepth: 0 });
      } finally {
        await closeClient(client);
      }
    }
  });

  it('rejects bad options with RateLimitConfigError', () => {
    expect(() => new RedisConnectionManager({ port: 0 })).toThrow(RateLimitConfigError);
    expect(() => new RedisConnectionManager({ port: 70000 })).toThrow(/port/);
    expect(() => new RedisConnectionManager({ maxConnections: 0 })).toThrow(/maxConnections/);
    expect(() => new RedisConnectionManager({ url: 'http://x' })).toThrow(/url/);
    expect(() => new RedisConnectionManager({ retryConfig: { jitter: 2 } })).toThrow(/retryConfig.jitter/);
    expect(() => new RedisConnectionManager({ retryConfig: { maxRetries: -1 } })).toThrow(/maxRetries/);
    expect(() => new RedisConnectionManager({ retryConfig: { baseDelayMs: 100, maxDelayMs: 50 } })).toThrow(/maxDelayMs/);
    expect(() => new RedisConnectionManager({ retryConfig: { retries: 3 } as never })).toThrow(/retries is not a retry setting/);
    expect(() => new RedisConnectionManager({ client: {} as never })).toThrow(/client/);
  });

  it('counts an acquire once when its first attempts time out and a retry gets the answer', async () => {
    // CLIENT PAUSE holds every write past the limiter's deadline: the first attempt times out
    // and is retried with the same op id; when the pause ends all attempts run, one counts.
    const own = await OwnRedisServer.start();
    const admin = new Redis(own.url);
    const manager = new RedisConnectionManager({
      url: own.url,
      maxConnections: 1,
      commandTimeoutMs: 250,
      retryConfig: { maxRetries: 6, baseDelayMs: 100, maxDelayMs: 200 },
    });
    try {
      const limiter = new RateLimiter(manager, 'm', { tpm: 1000 }, { logger: recordingLogger() });
      await limiter.acquire({ tokens: 1 });
      await admin.call('CLIENT', 'PAUSE', '700', 'WRITE');
      const result = await limiter.acquire({ tokens: 100 });
      expect(result.degraded).toBe(false);
      expect(await limiter.getStatus()).toMatchObject({ tokensUsed: 101, requestsUsed: 2 });
    } finally {
      await manager.close();
      await closeClient(admin);
      await own.stop();
    }
  });
});
