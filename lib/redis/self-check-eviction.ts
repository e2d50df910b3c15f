import { Cluster } from 'ioredis';
import { RedisConfigurationError } from '../core/errors.js';
import type { RedisExecutor } from './executor.js';
import { messageOf } from './redis-errors.js';
import type { RedisClient } from './scripts.js';
import { causeOf, isRefusal } from './self-check-acl.js';

/** The eviction settings of one Redis node. */
export interface RedisEvictionSetting {
  /** `host:port` of the node, as the client knows it. */
  readonly node: string;
  readonly policy: string;
  /** 0 = no memory limit, so nothing is evicted. */
  readonly maxmemoryBytes: number;
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

/**
 * The eviction settings of every node that takes the limiter's writes, warning of a policy that
 * may evict limiter keys; when the user may not run CONFIG GET, none, with a warning that says
 * what to make sure of instead.
 */
export async function readEviction(
  executor: RedisExecutor,
  username: string,
  warn: (message: string) => void,
): Promise<RedisEvictionSetting[]> {
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
  return eviction;
}
