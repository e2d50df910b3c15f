import type { ConnectionOptions as TlsOptions } from 'node:tls';
import type { Algorithm } from '../core/config.js';
import { RedisConfigurationError, RedisUnavailableError } from '../core/errors.js';
import type { LimiterLogger } from '../core/events.js';
import { RateLimiter } from '../core/rate-limiter.js';
import type { LimiterStore } from '../core/store.js';
import type { RedisExecutor } from './executor.js';
import type { RedisClient } from './scripts.js';
import { checkPermissions } from './self-check-acl.js';
import { readEviction, type RedisEvictionSetting } from './self-check-eviction.js';
import { explainUnreachable } from './self-check-tls.js';

/** What `RedisConnectionManager.verify()` checks against. */
export interface RedisSelfCheckOptions {
  /** Key prefix the limiters use (default `'llmrl'`); the scratch model lives under it. */
  readonly keyPrefix?: string;
  /** Receives each warning (default: none; the report carries them too). Nest's `Logger` fits. */
  readonly logger?: Pick<LimiterLogger, 'warn'>;
}

/** What `RedisConnectionManager.verify()` found. Problems that stop the limiter are thrown instead. */
export interface RedisSelfCheckReport {
  readonly topology: 'standalone' | 'sentinel' | 'cluster';
  /** The ACL user the limiter runs as. */
  readonly username: string;
  readonly keyPrefix: string;
  /** `redis_version` from INFO, when the user may run INFO. */
  readonly serverVersion?: string;
  /** Round trip of one PING, ms. */
  readonly roundTripMs: number;
  /** Algorithms whose scripts (queue: acquire, adjust, release; status) ran on the scratch model. */
  readonly algorithms: readonly Algorithm[];
  /** Eviction settings of every master read, when the user may run CONFIG GET. */
  readonly eviction: readonly RedisEvictionSetting[];
  /** Things that do not stop the limiter but may break its guarantees; each is also logged. */
  readonly warnings: readonly string[];
}

/** What the manager lends the check. */
export interface SelfCheckContext {
  readonly topology: RedisSelfCheckReport['topology'];
  readonly username: string;
  /**
   * A server to diagnose when Redis cannot be reached (one server, or a Cluster's first startup
   * node) with the TLS options the clients use, if any; absent for Sentinel.
   */
  readonly endpoint?: { readonly host: string; readonly port: number; readonly tls?: TlsOptions };
  readonly executor: RedisExecutor;
  readonly store: LimiterStore;
  /**
   * Opens a connection like the one the store hears admissions on (the check subscribes with it
   * once, then closes it); absent when the store hears none.
   */
  readonly subscriber?: () => RedisClient;
}

/** The model the check writes to; its keys expire about 31 s after the check. */
export const SELF_CHECK_MODEL = '__llmrl_self_check__';
const ALGORITHMS: readonly Algorithm[] = ['sliding-window', 'token-bucket'];

function checkKeyPrefix(keyPrefix: unknown): string {
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0 || /[{}]/.test(keyPrefix)) {
    throw new RedisConfigurationError(`verify: keyPrefix must be a non-empty string without braces, got ${JSON.stringify(keyPrefix)}`);
  }
  return keyPrefix;
}

/** The checks of `RedisConnectionManager.verify()`, in order; the first that fails throws. */
export async function runSelfCheck(context: SelfCheckContext, options: RedisSelfCheckOptions): Promise<RedisSelfCheckReport> {
  if (options === null || typeof options !== 'object') {
    throw new RedisConfigurationError(`verify options must be an object such as { keyPrefix: 'llmrl' }, got ${String(options)}`);
  }
  const keyPrefix = checkKeyPrefix(options.keyPrefix ?? 'llmrl');
  const { executor, username } = context;
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    options.logger?.warn(message);
  };

  // 1. Reachable, and the credentials and TLS settings work.
  const started = performance.now();
  try {
    await executor.run('verify: PING', (client) => client.ping());
  } catch (error) {
    if (error instanceof RedisUnavailableError && context.endpoint) await explainUnreachable(context.endpoint, error);
    throw error;
  }
  const roundTripMs = performance.now() - started;

  // 2. Every command inside the scripts is allowed on the limiter's keys and channels.
  await checkPermissions({ executor, username, keyPrefix, model: SELF_CHECK_MODEL, subscriber: context.subscriber });

  // 3. Each script loads and runs with this user, and its replies parse: one call of each
  // operation per algorithm, through the same code path as any limiter.
  const quiet = { warn: () => undefined, error: () => undefined };
  for (const algorithm of ALGORITHMS) {
    const limiter = new RateLimiter(
      context.store,
      SELF_CHECK_MODEL,
      { rpm: 1_000_000, windowSeconds: 1, algorithm },
      { keyPrefix, failureMode: 'closed', logger: quiet },
    );
    // One reservation adjusted, one released: both settle paths of the queue script run, and
    // nothing stays charged.
    const adjusted = await limiter.acquire({ tokens: 1 });
    await limiter.adjust(adjusted.recordId, { actualOutput: 0, actualInput: 0 });
    const released = await limiter.acquire({ tokens: 1 });
    await limiter.release(released.recordId);
    await limiter.getStatus();
  }

  // 4. Facts that only warn: the server version and whether limiter keys can be evicted.
  let serverVersion: string | undefined;
  try {
    const info = await executor.run('verify: INFO server', (client) => client.info('server'));
    serverVersion = /redis_version:([^\r\n]+)/.exec(String(info))?.[1];
  } catch (error) {
    if (!(error instanceof RedisConfigurationError)) throw error;
    // INFO is optional for the limiter: without it there is just no version to report.
  }
  const eviction = await readEviction(executor, username, warn);
  return { topology: context.topology, username, keyPrefix, serverVersion, roundTripMs, algorithms: ALGORITHMS, eviction, warnings };
}
