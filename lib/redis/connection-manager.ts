import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import { type RetryConfig, resolveRetryConfig } from '../core/config.js';
import { RateLimitConfigError } from '../core/errors.js';
import type { LimiterStore } from '../core/store.js';
import { RedisExecutor } from './executor.js';
import { RedisStore } from './redis-store.js';

/** How to reach Redis and how hard to try. */
export interface RedisConnectionOptions {
  /** `redis://[user:password@]host:port/db` or `rediss://...` for TLS; wins over host/port/db. */
  readonly url?: string;
  /** Default `'localhost'`. */
  readonly host?: string;
  /** Default 6379. */
  readonly port?: number;
  /** Default 0. */
  readonly db?: number;
  /** ACL user name. */
  readonly username?: string;
  readonly password?: string;
  /** `true` for TLS with Node's defaults, or Node TLS options (ca, cert, servername, ...). */
  readonly tls?: boolean | TlsOptions;
  /** Connections opened at most, on demand (default 10). */
  readonly maxConnections?: number;
  /** Retries of transient failures (see `RetryConfig`). */
  readonly retryConfig?: RetryConfig;
  /** Deadline of one attempt, ms (default 500): the limiter's own, whatever ioredis would wait. */
  readonly commandTimeoutMs?: number;
  /** Deadline of opening a connection, ms (default 2000). */
  readonly connectTimeoutMs?: number;
  /** Further ioredis options, applied last (the limiter's safety settings may be overridden here). */
  readonly redisOptions?: RedisOptions;
  /**
   * Use this client instead of opening connections. The application keeps owning it: `close()`
   * leaves it open. Its own options (offline queue, retries) stay as they are; the limiter's
   * deadline and retry policy still apply.
   */
  readonly client?: Redis;
}

function checkInteger(name: string, value: unknown, min: number, max: number): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)) {
    throw new RateLimitConfigError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
}

/**
 * Owns the Redis connections of the limiters built on it: a small pool opened on demand, the
 * limiter's per-call deadline and retry with backoff and jitter. Close it when done, or let
 * `await using` do so.
 *
 * @example
 * await using manager = new RedisConnectionManager({ url: process.env.REDIS_URL });
 * const limiter = new RateLimiter(manager, 'gpt-4o', { tpm: 100_000, rpm: 100 });
 */
export class RedisConnectionManager implements AsyncDisposable {
  /** The store every limiter built on this manager shares. */
  readonly limiterStore: LimiterStore;
  private readonly clients: Redis[] = [];
  private readonly clientOptions: RedisOptions;
  private readonly url?: string;
  private readonly maxConnections: number;
  private next = 0;
  private lastError: unknown;
  private closed = false;
  private readonly external?: Redis;

  constructor(options: RedisConnectionOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw new RateLimitConfigError(`RedisConnectionManager options must be an object, got ${String(options)}`);
    }
    checkInteger('port', options.port, 1, 65535);
    checkInteger('db', options.db, 0, 65535);
    checkInteger('maxConnections', options.maxConnections, 1, 1000);
    checkInteger('commandTimeoutMs', options.commandTimeoutMs, 1, 600_000);
    checkInteger('connectTimeoutMs', options.connectTimeoutMs, 1, 600_000);
    if (options.url !== undefined && (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url))) {
      throw new RateLimitConfigError(`url must start with redis:// or rediss://, got ${JSON.stringify(options.url)}`);
    }
    const retry = resolveRetryConfig(options.retryConfig);
    const commandTimeoutMs = options.commandTimeoutMs ?? 500;
    this.url = options.url;
    this.maxConnections = options.maxConnections ?? 10;
    const tls = options.tls === true ? {} : options.tls || undefined;
    this.clientOptions = {
      host: options.host ?? 'localhost',
      port: options.port ?? 6379,
      db: options.db ?? 0,
      username: options.username,
      password: options.password,
      ...(tls ? { tls } : {}),
      lazyConnect: true,
      connectTimeout: options.connectTimeoutMs ?? 2000,
      // The limiter retries by itself, with the same op id: ioredis must neither queue commands
      // while disconnected nor re-send unanswered ones (a re-sent acquire would count twice).
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
      ...options.redisOptions,
    };
    if (options.client !== undefined) {
      if (!(options.client instanceof Redis)) {
        throw new RateLimitConfigError('client must be an ioredis Redis instance');
      }
      this.external = options.client;
      this.external.on('error', (error: unknown) => {
        this.lastError = error;
      });
    }
    this.limiterStore = new RedisStore(new RedisExecutor(() => this.pick(), { retry, commandTimeoutMs }, () => this.lastError));
  }

  /** The first pooled connection (opened on first use), for your own commands. */
  get client(): Redis {
    return this.external ?? this.clients[0] ?? this.open();
  }

  /** Closes every connection; pending limiter calls then fail (or fail open). */
  async close(): Promise<void> {
    this.closed = true;
    const clients = this.clients.splice(0);
    await Promise.all(
      clients.map(async (client) => {
        if (client.status === 'end') return;
        const ended = new Promise((resolve) => client.once('end', resolve));
        if (client.status === 'ready') {
          await client.quit().catch(() => client.disconnect());
        } else {
          client.disconnect();
        }
        // Resolve only once the socket is gone, so nothing of ours keeps the process alive.
        await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
      }),
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private open(): Redis {
    if (this.closed) throw new RateLimitConfigError('this RedisConnectionManager was closed');
    const client = this.url ? new Redis(this.url, this.clientOptions) : new Redis(this.clientOptions);
    client.on('error', (error: unknown) => {
      // Kept to explain the next failure (TLS and auth causes show up only here).
      this.lastError = error;
    });
    this.clients.push(client);
    return client;
  }

  private pick(): Redis {
    if (this.external) return this.external;
    const clients = this.clients;
    if (clients.length === 0) return this.open();
    // Open another connection only when every open one is up and busy; while Redis is down,
    // opening more would only multiply reconnect attempts.
    const idle = clients.find((c) => c.status === 'ready' && (c as unknown as { commandQueue: { length: number } }).commandQueue.length === 0);
    if (idle) return idle;
    if (clients.length < this.maxConnections && clients.every((c) => c.status === 'ready')) return this.open();
    this.next = (this.next + 1) % clients.length;
    return clients[this.next];
  }
}
