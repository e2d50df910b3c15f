import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { type RetryConfig, resolveRetryConfig } from './retry.js';
import { RateLimitConfigError } from '../core/errors.js';
import { describe } from '../core/describe.js';
import {
  type CommonSettings,
  type RedisClusterConnection,
  type RedisSentinelConnection,
  clusterOptions,
  clusterStartup,
  sentinelOptions,
  standaloneOptions,
} from './client-options.js';
import { RedisExecutor } from './executor.js';
import { ManagerClosedError } from './redis-errors.js';
import { RedisStore } from './redis-store.js';
import { duplicateOf, type RedisClient } from './scripts.js';
import { type RedisSelfCheckOptions, type RedisSelfCheckReport, runSelfCheck } from './self-check.js';
import { watchErrors } from './watch-errors.js';

/** How to reach Redis and how hard to try. */
export interface RedisConnectionOptions {
  /** `redis://[user:password@]host:port/db` or `rediss://...` for TLS; wins over host/port/db. */
  readonly url?: string;
  /** Default `'localhost'`. */
  readonly host?: string;
  /** Default 6379. */
  readonly port?: number;
  /** Default 0 (a Cluster has only db 0). */
  readonly db?: number;
  /** ACL user name, for every data node of any topology. */
  readonly username?: string;
  readonly password?: string;
  /** `true` for TLS with Node's defaults, or Node TLS options (ca, cert, servername, ...); every topology. */
  readonly tls?: boolean | TlsOptions;
  /** A Redis Cluster instead of one server (`url`, `host`, `port` and `db` are then not used). */
  readonly cluster?: RedisClusterConnection;
  /** A master found through Redis Sentinel instead of one fixed server. */
  readonly sentinel?: RedisSentinelConnection;
  /**
   * Connections opened at most, on demand (default 10). A Cluster uses one client, which keeps a
   * connection to each node it needs.
   */
  readonly maxConnections?: number;
  /** Retries of transient failures (see `RetryConfig`). */
  readonly retryConfig?: RetryConfig;
  /** Deadline of one attempt, ms (default 500): the limiter's own, whatever ioredis would wait. */
  readonly commandTimeoutMs?: number;
  /** Deadline of opening a connection, ms (default 2000). */
  readonly connectTimeoutMs?: number;
  /**
   * Further ioredis options, applied last (the limiter's safety settings may be overridden here).
   * With a Cluster they apply to each node's connection.
   */
  readonly redisOptions?: RedisOptions;
  /**
   * Use this client instead of opening connections. The application keeps owning it: `close()`
   * leaves it open. Its own options (offline queue, retries) stay as they are; the limiter's
   * deadline and retry policy still apply.
   */
  readonly client?: Redis | Cluster;
}

/** Which kind of deployment a manager talks to. */
export type RedisTopology = 'standalone' | 'sentinel' | 'cluster';

function checkInteger(name: string, value: unknown, min: number, max: number): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)) {
    throw new RateLimitConfigError(`${name} must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
}

/**
 * Owns the Redis connections of the limiters built on it: a small pool opened on demand (one
 * Cluster client for a Cluster), the limiter's per-call deadline and retry with backoff and
 * jitter. Works with one server, Sentinel or Cluster, over TLS and with ACL users. Close it when
 * done, or let `await using` do so.
 *
 * @example
 * await using manager = new RedisConnectionManager({ url: process.env.REDIS_URL });
 * await manager.verify(); // throws RedisConfigurationError on a wrong password, ACL or TLS
 * const limiter = new RateLimiter(manager, 'gpt-4o', { tpm: 100_000, rpm: 100 });
 */
export class RedisConnectionManager implements AsyncDisposable {
  /** The store every limiter built on this manager shares. */
  readonly limiterStore: RedisStore;
  /** Which kind of deployment this manager talks to. */
  readonly topology: RedisTopology;
  private readonly clients: RedisClient[] = [];
  private readonly create: () => RedisClient;
  private readonly maxConnections: number;
  private readonly username: string;
  private readonly endpoint: { host: string; port: number; tls?: TlsOptions } | undefined;
  private readonly executor: RedisExecutor;
  private next = 0;
  private lastError: unknown;
  private closed = false;
  private readonly external?: RedisClient;

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
    const given = [options.client && 'client', options.cluster && 'cluster', options.sentinel && 'sentinel'].filter(Boolean);
    if (given.length > 1) throw new RateLimitConfigError(`pass only one of client, cluster and sentinel, got ${given.join(' and ')}`);
    const retry = resolveRetryConfig(options.retryConfig);
    const commandTimeoutMs = options.commandTimeoutMs ?? 500;
    this.maxConnections = options.maxConnections ?? 10;
    const url = options.url ? new URL(options.url) : undefined;
    const tls =
      options.tls === true || url?.protocol === 'rediss:' ? (typeof options.tls === 'object' ? options.tls : {}) : options.tls || undefined;
    const common: CommonSettings = {
      username: options.username,
      password: options.password,
      tls,
      connectTimeoutMs: options.connectTimeoutMs ?? 2000,
      commandTimeoutMs,
      redisOptions: options.redisOptions,
    };
    this.username = options.username ?? (url?.username ? decodeURIComponent(url.username) : undefined) ?? 'default';

    if (options.client !== undefined) {
      if (!(options.client instanceof Redis) && !(options.client instanceof Cluster)) {
        throw new RateLimitConfigError('client must be an ioredis Redis or Cluster instance');
      }
      this.topology = options.client instanceof Cluster ? 'cluster' : options.client.options.sentinels ? 'sentinel' : 'standalone';
      this.external = options.client;
      watchErrors(this.external, (error) => {
        this.lastError = error;
      });
      this.create = () => options.client as RedisClient;
    } else if (options.cluster !== undefined) {
      if (options.cluster === null || typeof options.cluster !== 'object' || !Array.isArray(options.cluster.nodes)) {
        throw new RateLimitConfigError('cluster must be { nodes: [...], options? } with at least one startup node');
      }
      const startup = clusterStartup(options.cluster.nodes);
      const clusterCommon: CommonSettings = {
        ...common,
        username: common.username ?? startup.username,
        password: common.password ?? startup.password,
        tls: common.tls ?? (startup.tls ? {} : undefined),
      };
      if (options.username === undefined && startup.username) this.username = startup.username;
      this.topology = 'cluster';
      this.endpoint = { ...startup.nodes[0], tls: clusterCommon.tls };
      this.maxConnections = 1;
      const built = clusterOptions(clusterCommon, options.cluster.options);
      this.create = () => new Cluster(startup.nodes, built);
    } else if (options.sentinel !== undefined) {
      const sentinel = options.sentinel;
      if (sentinel === null || typeof sentinel !== 'object' || !Array.isArray(sentinel.sentinels) || sentinel.sentinels.length === 0) {
        throw new RateLimitConfigError('sentinel must be { sentinels: [{ host, port }, ...], name } with at least one sentinel');
      }
      if (typeof sentinel.name !== 'string' || sentinel.name.length === 0) {
        throw new RateLimitConfigError(
          `sentinel.name must name the master group the sentinels monitor, got ${JSON.stringify(sentinel.name)}`,
        );
      }
      sentinel.sentinels.forEach((node: unknown, i) => {
        const s = node as { host?: unknown; port?: unknown } | null;
        if (
          s === null ||
          typeof s !== 'object' ||
          typeof s.host !== 'string' ||
          typeof s.port !== 'number' ||
          !Number.isInteger(s.port) ||
          s.port < 1 ||
          s.port > 65535
        ) {
          throw new RateLimitConfigError(`sentinel.sentinels[${i}] must be { host, port }, got ${describe(node)}`);
        }
      });
      this.topology = 'sentinel';
      const built = sentinelOptions(common, sentinel, options.db ?? 0);
      this.create = () => new Redis(built);
    } else {
      this.topology = 'standalone';
      const address = {
        host: url?.hostname.replace(/^\[(.*)\]$/, '$1') || options.host || 'localhost',
        port: url?.port ? Number(url.port) : url ? 6379 : (options.port ?? 6379),
        db: url && url.pathname.length > 1 ? Number(url.pathname.slice(1)) : (options.db ?? 0),
      };
      this.endpoint = { host: address.host, port: address.port, tls };
      const built = standaloneOptions(common, address);
      this.create = options.url ? () => new Redis(options.url!, built) : () => new Redis(built);
    }
    this.executor = new RedisExecutor(
      () => this.pick(),
      { retry, commandTimeoutMs },
      () => this.lastError,
      (client) => this.retire(client),
    );
    this.limiterStore = new RedisStore(this.executor, { subscriber: () => this.openSubscriber() });
  }

  /**
   * The first pooled connection (opened on first use), for your own commands. With a Cluster,
   * use `cluster` instead.
   */
  get client(): Redis {
    const client = this.anyClient();
    if (client instanceof Cluster) {
      throw new RateLimitConfigError('this RedisConnectionManager talks to a Redis Cluster: use manager.cluster for your own commands');
    }
    return client;
  }

  /** The Cluster client (opened on first use), when the manager talks to a Redis Cluster. */
  get cluster(): Cluster {
    const client = this.anyClient();
    if (!(client instanceof Cluster)) {
      throw new RateLimitConfigError(`this RedisConnectionManager talks to ${this.topology} Redis, not to a Cluster: use manager.client`);
    }
    return client;
  }

  /**
   * Checks, once at startup, that the limiter can work: Redis answers; the user may run every
   * script and every command inside them on the limiter's keys (one run of each script on a
   * scratch model of `keyPrefix`); and the eviction policy will not drop limiter keys.
   *
   * Resolves with a report (whose `warnings` are also logged); rejects with
   * `RedisConfigurationError` for a wrong password, a missing ACL permission (naming the
   * commands), a missing command or a TLS failure, and with `RedisUnavailableError` when Redis
   * cannot be reached within the retry budget.
   *
   * @example
   * const report = await manager.verify({ keyPrefix: 'llmrl', logger: new Logger('LlmRateLimiter') });
   */
  verify(options: RedisSelfCheckOptions = {}): Promise<RedisSelfCheckReport> {
    return runSelfCheck(
      {
        topology: this.topology,
        username: this.username,
        endpoint: this.endpoint,
        executor: this.executor,
        store: this.limiterStore,
        subscriber: () => this.openSubscriber(),
      },
      options,
    );
  }

  /** Closes every connection; pending limiter calls then fail (or fail open). */
  async close(): Promise<void> {
    this.closed = true;
    await this.limiterStore.close();
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
        closeFailoverDetector(client);
      }),
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private anyClient(): RedisClient {
    return this.external ?? this.clients[0] ?? this.open();
  }

  private open(): RedisClient {
    if (this.closed) throw new ManagerClosedError();
    const client = this.create();
    // Kept to explain the next failure (TLS and auth causes show up only here).
    watchErrors(client, (error) => {
      this.lastError = error;
    });
    this.clients.push(client);
    return client;
  }

  /** A connection of its own for hearing admissions (a subscribed connection takes no commands). */
  private openSubscriber(): RedisClient {
    if (this.closed) throw new ManagerClosedError();
    const client = this.external ? duplicateOf(this.external) : this.create();
    watchErrors(client, (error) => {
      this.lastError = error;
    });
    return client;
  }

  /**
   * Closes a pooled connection that is open but silent or garbled; the next pick opens another.
   * A Cluster client (one for all nodes) and the application's own client are left as they are.
   */
  private retire(client: RedisClient): void {
    if (client === this.external || client instanceof Cluster) return;
    const at = this.clients.indexOf(client);
    if (at < 0) return;
    this.clients.splice(at, 1);
    client.disconnect();
    closeFailoverDetector(client);
  }

  private pick(): RedisClient {
    if (this.external) return this.external;
    if (this.closed) throw new ManagerClosedError();
    const clients = this.clients;
    if (clients.length === 0) return this.open();
    // Open another connection only when every open one is up and busy; while Redis is down,
    // opening more would only multiply reconnect attempts.
    const idle = clients.find((c) => c.status === 'ready' && pending(c) === 0);
    if (idle) return idle;
    if (clients.length < this.maxConnections && clients.every((c) => c.status === 'ready')) return this.open();
    this.next = (this.next + 1) % clients.length;
    return clients[this.next];
  }
}

/**
 * After quit(), ioredis leaves a Sentinel client's failover detector subscribed: one connection
 * per sentinel, reconnecting every minute for ever, which keeps the process alive. Close them.
 */
function closeFailoverDetector(client: RedisClient): void {
  const connector = (client as unknown as { connector?: { failoverDetector?: { cleanup?: () => void } | null } }).connector;
  connector?.failoverDetector?.cleanup?.();
}

/** Commands written to a connection and not yet answered. */
function pending(client: RedisClient): number {
  const queue = (client as unknown as { commandQueue?: { length: number } }).commandQueue;
  return queue?.length ?? 0;
}
