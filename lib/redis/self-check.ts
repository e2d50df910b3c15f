import { connect as netConnect } from 'node:net';
import { type ConnectionOptions as TlsOptions, connect as tlsConnect } from 'node:tls';
import { Cluster } from 'ioredis';
import type { Algorithm } from '../core/config.js';
import { RedisConfigurationError, RedisUnavailableError } from '../core/errors.js';
import type { LimiterLogger } from '../core/events.js';
import { RateLimiter } from '../core/rate-limiter.js';
import type { LimiterStore } from '../core/store.js';
import type { RedisExecutor } from './executor.js';
import { modelKeys } from './keys.js';
import { hintFor, isTlsError, messageOf } from './redis-errors.js';
import { scriptCommands } from './script-commands.js';
import type { RedisClient } from './scripts.js';

/** What `RedisConnectionManager.verify()` checks against. */
export interface RedisSelfCheckOptions {
  /** Key prefix the limiters use (default `'llmrl'`); the scratch model lives under it. */
  readonly keyPrefix?: string;
  /** Receives each warning (default: none; the report carries them too). Nest's `Logger` fits. */
  readonly logger?: Pick<LimiterLogger, 'warn'>;
}

/** The eviction settings of one Redis node. */
export interface RedisEvictionSetting {
  /** `host:port` of the node, as the client knows it. */
  readonly node: string;
  readonly policy: string;
  /** 0 = no memory limit, so nothing is evicted. */
  readonly maxmemoryBytes: number;
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

/**
 * Calls, with harmless arguments on the scratch keys, every command the limiter's scripts call,
 * and names those the server refuses. A refused command inside a real script only says "the user
 * executing the script can't run this command", without naming it.
 */
const PROBE = `
local h, z, c = KEYS[1], KEYS[2], KEYS[#KEYS]
local args = {
  TIME = {}, DEL = KEYS, EXISTS = { h }, PEXPIREAT = { h, '1' }, PEXPIRE = { h, '1' }, EXPIRE = { h, '1' },
  PTTL = { h }, TTL = { h }, GET = { h }, SET = { h, '0' }, INCR = { h }, INCRBY = { h, '0' },
  HGET = { h, 'probe' }, HMGET = { h, 'probe' }, HSET = { h, 'probe', '0' }, HDEL = { h, 'probe' },
  HGETALL = { h }, HEXISTS = { h, 'probe' }, HINCRBY = { h, 'probe', '0' }, HINCRBYFLOAT = { h, 'probe', '0' },
  ZADD = { z, '0', 'probe' }, ZSCORE = { z, 'probe' }, ZMSCORE = { z, 'probe' }, ZCOUNT = { z, '0', '0' }, ZCARD = { z },
  ZRANGE = { z, '0', '0' }, ZRANK = { z, 'probe' }, PUBLISH = { c, 'probe' }, ZRANGEBYSCORE = { z, '0', '0' }, ZREM = { z, 'probe' },
  ZREMRANGEBYSCORE = { z, '0', '0' }, ZREMRANGEBYRANK = { z, '0', '-1' },
}
local refused = {}
for _, name in ipairs(ARGV) do
  local a = args[name]
  if a == nil then
    refused[#refused + 1] = name .. '\\tthe self-check has no probe for this command'
  else
    local r = redis.pcall(name, unpack(a))
    -- Only refusals count: a WRONGTYPE on a scratch key says nothing about permissions.
    if type(r) == 'table' and r.err then
      if string.find(r.err, 'READONLY', 1, true) then
        return { '!READONLY\\t' .. r.err }
      end
      if string.find(r.err, "can't", 1, true) or string.find(r.err, 'Unknown', 1, true) or string.find(r.err, 'NOPERM', 1, true) then
        refused[#refused + 1] = name .. '\\t' .. r.err
      end
    end
  end
end
redis.pcall('DEL', unpack(KEYS))
return refused
`;

/** How long the check waits for the subscriber connection to answer SUBSCRIBE. */
const SUBSCRIBE_TIMEOUT_MS = 5000;

/** A probe line that says the command ran but its channel is outside the user's channel permissions. */
const CHANNEL_REFUSAL = /channel/i;

/**
 * Subscribes once, as the store does while a limiter waits, to the scratch model's channel on a
 * connection of its own: SUBSCRIBE is not allowed in scripts, so the probe cannot try it.
 */
async function checkSubscribe(open: () => RedisClient, channel: string, username: string, keyPrefix: string): Promise<void> {
  const client = open();
  client.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new RedisUnavailableError(`verify: SUBSCRIBE on a connection of its own got no answer within ${SUBSCRIBE_TIMEOUT_MS} ms`)),
      SUBSCRIBE_TIMEOUT_MS,
    );
    timer.unref();
  });
  try {
    const subscribed = (async () => {
      if (client.status === 'wait') await client.connect();
      await client.subscribe(channel);
      await client.unsubscribe(channel);
    })();
    subscribed.catch(() => undefined);
    await Promise.race([subscribed, timeout]);
  } catch (error) {
    const message = messageOf(causeOf(error));
    if (/NOPERM/i.test(message)) {
      throw new RedisConfigurationError(
        CHANNEL_REFUSAL.test(message)
          ? `verify: the Redis user "${username}" may not subscribe to the limiter's channels, which all start with {${keyPrefix}: (${message}); waiting limiters hear admissions on them. Allow them, e.g. ACL SETUSER ${username} &{${keyPrefix}:*`
          : `verify: the Redis user "${username}" may not run SUBSCRIBE, which waiting limiters hear admissions with (${message}). Allow it, e.g. ACL SETUSER ${username} +subscribe +unsubscribe`,
        { cause: causeOf(error) },
      );
    }
    throw error;
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

function readOnly(detail: string): RedisConfigurationError {
  return new RedisConfigurationError(
    `verify: the limiter is connected to a read-only replica (${detail}): connect to the master, or use the sentinel or cluster option so the client finds it`,
  );
}

function checkKeyPrefix(keyPrefix: unknown): string {
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0 || /[{}]/.test(keyPrefix)) {
    throw new RedisConfigurationError(`verify: keyPrefix must be a non-empty string without braces, got ${JSON.stringify(keyPrefix)}`);
  }
  return keyPrefix;
}

/** The error a call failed with, before the executor wrapped it. */
function causeOf(error: unknown): unknown {
  return error instanceof Error && error.cause !== undefined ? error.cause : error;
}

function isRefusal(error: unknown): boolean {
  return /^(ERR )?(NOPERM|unknown command)|no permissions/i.test(messageOf(causeOf(error)));
}

/**
 * A TLS handshake with host:port: `'ok'`, the handshake's error, or `'none'` when nothing
 * answered in time. Without options it accepts any certificate (is TLS spoken at all?).
 */
function handshake(host: string, port: number, options: TlsOptions | undefined, timeoutMs: number): Promise<'ok' | 'none' | Error> {
  return new Promise((resolve) => {
    const servername = /^[\d.:]+$/.test(host) ? undefined : host;
    const socket = tlsConnect({ host, port, servername, ...(options ?? { rejectUnauthorized: false }) });
    let answered = false;
    const finish = (answer: 'ok' | 'none' | Error) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish('none'), timeoutMs);
    socket.once('secureConnect', () => finish('ok'));
    // `on`, not `once`: a refused certificate can be followed by the server's alert as a second
    // error, which would otherwise be thrown as unhandled.
    socket.on('error', (error) => finish(error));
  });
}

/** Whether a plain-text Redis answers on host:port (so a TLS connection was the mistake). */
function speaksPlainRedis(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    const finish = (answer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once('connect', () => socket.write('PING\r\n'));
    // Any RESP reply, +PONG or an -ERR/-NOAUTH, means a plain-text Redis.
    socket.once('data', (data) => finish(data[0] === 0x2b || data[0] === 0x2d));
    socket.on('error', () => finish(false));
  });
}

/** Pairs of a CONFIG GET reply, in RESP2 (flat array) or RESP3 (map) shape. */
function configPairs(reply: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (Array.isArray(reply)) {
    if (reply.every((x) => Array.isArray(x))) {
      for (const [k, v] of reply as unknown[][]) out.set(String(k), String(v));
    } else {
      for (let i = 0; i + 1 < reply.length; i += 2) out.set(String(reply[i]), String(reply[i + 1]));
    }
  } else if (reply instanceof Map) {
    for (const [k, v] of reply) out.set(String(k), String(v));
  } else if (reply !== null && typeof reply === 'object') {
    for (const [k, v] of Object.entries(reply)) out.set(k, String(v));
  }
  return out;
}

function nodeName(client: { options: { host?: string; port?: number } }): string {
  return `${client.options.host ?? 'localhost'}:${client.options.port ?? 6379}`;
}

/** The nodes that take the limiter's writes: every master of a Cluster, else the one client. */
function writableNodes(client: RedisClient) {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

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
    const endpoint = context.endpoint;
    if (error instanceof RedisUnavailableError && endpoint) {
      const { host, port } = endpoint;
      if (!endpoint.tls && (await handshake(host, port, undefined, 1000)) === 'ok') {
        throw new RedisConfigurationError(
          `verify: ${host}:${port} expects TLS but the limiter connects in plain text: use a rediss:// URL or the tls option`,
          { cause: error },
        );
      }
      // A Cluster hides its nodes' TLS errors (they happen on its internal connections): ask.
      const attempt = endpoint.tls ? await handshake(host, port, endpoint.tls, 1000) : 'ok';
      // Compared by value, not `instanceof Error`: socket errors may come from another realm.
      if (attempt !== 'ok' && attempt !== 'none' && isTlsError(attempt)) {
        throw new RedisConfigurationError(
          `verify: the TLS handshake with ${host}:${port} failed: ${messageOf(attempt)}. ${hintFor(attempt)}`,
          { cause: attempt },
        );
      }
      if (endpoint.tls && (await speaksPlainRedis(host, port, 1000))) {
        throw new RedisConfigurationError(
          `verify: ${host}:${port} speaks plain text but the limiter connects with TLS (the TLS handshake failed: no answer): use a redis:// URL and no tls option, or the server's TLS port`,
          { cause: error },
        );
      }
    }
    throw error;
  }
  const roundTripMs = performance.now() - started;

  // 2. Every command inside the scripts is allowed on the limiter's keys.
  // Every key of the scratch model, a hash first and the queue (a sorted set) second, and its
  // admissions channel last (PUBLISH checks the user's channel permissions).
  const { window, queue, channel, ...others } = modelKeys(keyPrefix, SELF_CHECK_MODEL);
  const keys = [window, queue, ...Object.values(others), channel];
  let refused: string[];
  try {
    refused = (await executor.run("verify: probe of the scripts' commands", (client) =>
      client.eval(PROBE, keys.length, ...keys, ...scriptCommands()),
    )) as string[];
  } catch (error) {
    if (error instanceof RedisUnavailableError && /READONLY/.test(error.message)) {
      throw readOnly(messageOf(causeOf(error)));
    }
    if (error instanceof RedisConfigurationError && /access (one|at least one) of the keys/i.test(messageOf(causeOf(error)))) {
      throw new RedisConfigurationError(
        `verify: the Redis user "${username}" may not use the limiter's keys, which all start with {${keyPrefix}: (${messageOf(causeOf(error))}). Allow them, e.g. ACL SETUSER ${username} ~{${keyPrefix}:*`,
        { cause: causeOf(error) },
      );
    }
    throw error;
  }
  if (refused.length === 1 && String(refused[0]).startsWith('!READONLY')) {
    throw readOnly(String(refused[0]).split('\t')[1]);
  }
  // A PUBLISH refused for its channel (Redis 7 gives a user no channels unless told) is a
  // channel permission, not a command, and is named as one.
  const lines = refused.map((line) => String(line).split('\t'));
  const commandLines = lines.filter(([name, why]) => !(name === 'PUBLISH' && CHANNEL_REFUSAL.test(why ?? '')));
  const channelLines = lines.filter((line) => !commandLines.includes(line));
  if (commandLines.length > 0) {
    const names = commandLines.map(([name]) => name);
    const also = channelLines.length > 0 ? `; it may not publish to the limiter's channels either (add &{${keyPrefix}:*)` : '';
    throw new RedisConfigurationError(
      `verify: the Redis user "${username}" may not run ${names.join(', ')}, which the limiter's scripts call (${commandLines
        .map(([name, why]) => `${name}: ${why}`)
        .join('; ')})${also}. Allow them, e.g. ACL SETUSER ${username} ${names.map((n) => `+${n.toLowerCase()}`).join(' ')}`,
    );
  }
  if (channelLines.length > 0) {
    throw new RedisConfigurationError(
      `verify: the Redis user "${username}" may not publish to the limiter's channels, which all start with {${keyPrefix}: (PUBLISH: ${channelLines[0][1]}); the scripts announce admissions on them. Allow them, e.g. ACL SETUSER ${username} &{${keyPrefix}:*`,
    );
  }
  if (context.subscriber) await checkSubscribe(context.subscriber, channel, username, keyPrefix);

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
  const eviction: RedisEvictionSetting[] = [];
  try {
    const settings = await executor.run('verify: CONFIG GET maxmemory*', (client) =>
      Promise.all(
        writableNodes(client).map(async (node) => {
          const pairs = configPairs(await node.config('GET', 'maxmemory*'));
          return {
            node: nodeName(node),
            policy: pairs.get('maxmemory-policy') ?? 'unknown',
            maxmemoryBytes: Number(pairs.get('maxmemory') ?? 0),
          };
        }),
      ),
    );
    eviction.push(...settings);
  } catch (error) {
    if (!(error instanceof RedisConfigurationError) || !isRefusal(error)) throw error;
    warn(
      `could not read maxmemory-policy: CONFIG GET is not allowed for the Redis user "${username}" (${messageOf(causeOf(error))}). ` +
        'Make sure the policy is noeviction, or that Redis never reaches maxmemory: an evicting policy drops limiter keys and with them the limits',
    );
  }
  for (const setting of eviction) {
    if (setting.policy !== 'noeviction' && setting.maxmemoryBytes > 0) {
      warn(
        `maxmemory-policy is ${setting.policy} on ${setting.node} (maxmemory ${setting.maxmemoryBytes} bytes): when memory runs out Redis may evict ` +
          'limiter keys (they all carry a TTL, so volatile-* policies take them too) and the limits silently reset. Use noeviction, or a Redis of its own for the limiter',
      );
    }
  }
  return { topology: context.topology, username, keyPrefix, serverVersion, roundTripMs, algorithms: ALGORITHMS, eviction, warnings };
}
