import type { ConnectionOptions as TlsOptions } from 'node:tls';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import { RateLimitConfigError } from '../core/errors.js';

/** A Redis node's address. */
export interface RedisNodeAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * A Redis Cluster to connect to. A few startup nodes are enough: the client learns the rest
 * from the cluster.
 *
 * @example
 * { nodes: ['rediss://limiter:secret@10.0.0.1:6379', '10.0.0.2:6379'] }
 */
export interface RedisClusterConnection {
  /** Startup nodes: `'host:port'`, `'redis://[user:password@]host:port'`, `'rediss://...'` or `{ host, port }`. */
  readonly nodes: ReadonlyArray<string | RedisNodeAddress>;
  /** Further ioredis Cluster options, applied last (`redisOptions` inside is merged, not replaced). */
  readonly options?: ClusterOptions;
}

/**
 * A master found through Redis Sentinel. The top-level `username`, `password` and `tls` of the
 * connection options apply to the master; these settings apply to the sentinels themselves.
 *
 * @example
 * { sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }], name: 'mymaster' }
 */
export interface RedisSentinelConnection {
  readonly sentinels: ReadonlyArray<RedisNodeAddress>;
  /** The master group name the sentinels monitor. */
  readonly name: string;
  /** ACL user of the sentinels, when they require one. */
  readonly sentinelUsername?: string;
  readonly sentinelPassword?: string;
  /** TLS to the sentinels: `true` for Node's defaults, or Node TLS options. */
  readonly sentinelTls?: boolean | TlsOptions;
  /**
   * Switch to the new master as soon as a sentinel announces the failover (default `true`).
   * Without it the client stays on a demoted master until that one drops the connection,
   * about 10 s in which writes are lost.
   */
  readonly failoverDetector?: boolean;
}

/** Settings every topology shares, already checked. */
export interface CommonSettings {
  readonly username?: string;
  readonly password?: string;
  readonly tls?: TlsOptions;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly redisOptions?: RedisOptions;
}

/**
 * Options of one data connection. The limiter retries by itself, with the same op id, within its
 * own deadline: ioredis must neither queue commands while disconnected nor re-send unanswered
 * ones (a re-sent acquire would land late, after the caller was let through).
 */
function nodeOptions(common: CommonSettings): RedisOptions {
  return {
    ...(common.username !== undefined ? { username: common.username } : {}),
    ...(common.password !== undefined ? { password: common.password } : {}),
    ...(common.tls ? { tls: common.tls } : {}),
    connectTimeout: common.connectTimeoutMs,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    // A master demoted under us answers READONLY: reconnect (Sentinel then finds the new master)
    // without re-sending, since the limiter retries itself.
    reconnectOnError: (error) => (/^(ERR )?READONLY/.test(error.message) ? 1 : false),
  };
}

/** Reconnects soon at first, then at most once a second. */
const reconnectDelay = (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000);

export function standaloneOptions(common: CommonSettings, address: { host: string; port: number; db: number }): RedisOptions {
  return {
    ...address,
    ...nodeOptions(common),
    lazyConnect: true,
    retryStrategy: reconnectDelay,
    ...common.redisOptions,
  };
}

export function sentinelOptions(common: CommonSettings, sentinel: RedisSentinelConnection, db: number): RedisOptions {
  const sentinelTls = sentinel.sentinelTls === true ? {} : sentinel.sentinelTls || undefined;
  return {
    sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
    name: sentinel.name,
    db,
    ...nodeOptions(common),
    ...(sentinel.sentinelUsername !== undefined ? { sentinelUsername: sentinel.sentinelUsername } : {}),
    ...(sentinel.sentinelPassword !== undefined ? { sentinelPassword: sentinel.sentinelPassword } : {}),
    ...(sentinelTls ? { enableTLSForSentinelMode: true, sentinelTLS: sentinelTls } : {}),
    failoverDetector: sentinel.failoverDetector ?? true,
    // Asking a sentinel for the master must not outlast a connection attempt.
    sentinelCommandTimeout: common.connectTimeoutMs,
    lazyConnect: true,
    retryStrategy: reconnectDelay,
    ...common.redisOptions,
  };
}

/** Startup nodes in ioredis's shape, with the credentials and TLS that `rediss://` URLs carry. */
export function clusterStartup(nodes: RedisClusterConnection['nodes']): {
  nodes: RedisNodeAddress[];
  username?: string;
  password?: string;
  tls: boolean;
} {
  let username: string | undefined;
  let password: string | undefined;
  let tls = false;
  const addresses = nodes.map((node, i) => {
    if (typeof node === 'object' && node !== null) {
      if (typeof node.host !== 'string' || !Number.isInteger(node.port) || node.port < 1 || node.port > 65535) {
        throw new RateLimitConfigError(
          `cluster.nodes[${i}] must be { host, port } with a port from 1 to 65535, got ${JSON.stringify(node)}`,
        );
      }
      return { host: node.host, port: node.port };
    }
    if (typeof node !== 'string' || node.length === 0) {
      throw new RateLimitConfigError(
        `cluster.nodes[${i}] must be a 'host:port' or redis:// URL string or { host, port }, got ${String(node)}`,
      );
    }
    let url: URL;
    try {
      url = new URL(/^[a-z]+:\/\//i.test(node) ? node : `redis://${node}`);
    } catch {
      throw new RateLimitConfigError(`cluster.nodes[${i}] is not a valid address: ${JSON.stringify(node)}`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new RateLimitConfigError(`cluster.nodes[${i}] must use redis:// or rediss://, got ${JSON.stringify(node)}`);
    }
    if (url.protocol === 'rediss:') tls = true;
    if (url.username) username ??= decodeURIComponent(url.username);
    if (url.password) password ??= decodeURIComponent(url.password);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    return { host, port: url.port ? Number(url.port) : 6379 };
  });
  if (addresses.length === 0) throw new RateLimitConfigError('cluster.nodes must name at least one startup node');
  return { nodes: addresses, username, password, tls };
}

export function clusterOptions(common: CommonSettings, extra: ClusterOptions = {}): ClusterOptions {
  // ioredis decides on the offline queue and reconnection of cluster nodes itself.
  const { enableOfflineQueue: _q, retryStrategy: _r, ...perNode } = { ...nodeOptions(common), ...common.redisOptions };
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    // Within one attempt of the limiter, ioredis follows MOVED/ASK and retries a closed
    // connection, CLUSTERDOWN or TRYAGAIN a few times; the limiter's deadline bounds the wait
    // and its retries (same op id, deduplicated by the scripts) span the failover.
    maxRedirections: 16,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: Math.max(common.commandTimeoutMs, 1000),
    clusterRetryStrategy: reconnectDelay,
    ...extra,
    redisOptions: { ...perNode, ...extra.redisOptions },
  };
}
