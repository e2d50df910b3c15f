import type { Cluster, Redis } from 'ioredis';
import { LUA_FILES } from './lua-sources.generated.js';

/** Clients the limiter talks to. */
export type RedisClient = Redis | Cluster;

/**
 * An ioredis client, of this copy of ioredis or another one (recognised by shape then), as
 * opposed to connection settings.
 */
export function isRedisClient(value: unknown): value is RedisClient {
  const v = value as Partial<Redis> | null;
  return (
    v !== null &&
    typeof v === 'object' &&
    typeof v.evalsha === 'function' &&
    typeof v.defineCommand === 'function' &&
    typeof v.status === 'string'
  );
}

/** A new client with the same options (ioredis types the two kinds' `duplicate` apart). */
export function duplicateOf(client: RedisClient): RedisClient {
  return 'nodes' in client && typeof client.nodes === 'function' ? client.duplicate() : (client as Redis).duplicate();
}

type Reply = Promise<string[]>;

declare module 'ioredis' {
  // The type parameter must be named as ioredis names it for the declarations to merge.
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  interface RedisCommander<Context> {
    llmrlQueue(
      state: string,
      queue: string,
      records: string,
      expiry: string,
      owners: string,
      ...args: (string | number)[]
    ): Promise<string>;
    llmrlStatus(window: string, queue: string, ...args: (string | number)[]): Reply;
    llmrlTbStatus(bucket: string, queue: string, ...args: (string | number)[]): Reply;
    llmrlBackoff(state: string, ...args: (string | number)[]): Reply;
    llmrlReconcile(state: string, ...args: (string | number)[]): Reply;
    llmrlHandback(state: string, ...args: (string | number)[]): Reply;
    llmrlHeartbeat(instances: string, state: string, ...args: (string | number)[]): Promise<number>;
  }
}

const INCLUDE = /^--- @include "([a-z-]+)"$/gm;

function luaFile(path: string): string {
  const source = LUA_FILES[path];
  if (source === undefined) throw new Error(`lua/${path} is not in the generated script module: run npm run generate:lua`);
  return source;
}

/**
 * A script's source with its `--- @include "name"` lines replaced by lua/includes/name.lua. The
 * sources are compiled in (lua-sources.generated.ts), so both builds work without reading files.
 */
export function loadScript(name: string): string {
  return luaFile(`${name}.lua`).replace(INCLUDE, (_, include: string) => luaFile(`includes/${include}.lua`));
}

const COMMANDS = {
  llmrlQueue: 'queue',
  llmrlStatus: 'status',
  llmrlTbStatus: 'tb-status',
  llmrlBackoff: 'backoff',
  llmrlReconcile: 'reconcile',
  llmrlHeartbeat: 'heartbeat',
  llmrlHandback: 'handback',
} as const;

/** How many keys each script takes (the status scripts take two: state and queue; the heartbeat, instances and state). */
const KEY_COUNT: Record<string, number> = { llmrlQueue: 5, llmrlBackoff: 1, llmrlReconcile: 1, llmrlHandback: 1 };

let sources: Record<string, string> | undefined;
const defined = new WeakSet<object>();

/**
 * Registers the limiter's scripts on a client (once per client). ioredis then sends EVALSHA and,
 * when the server has lost its script cache (restart, failover, SCRIPT FLUSH), EVAL by itself.
 */
export function defineScripts(client: RedisClient): void {
  if (defined.has(client)) return;
  sources ??= Object.fromEntries(Object.entries(COMMANDS).map(([command, file]) => [command, loadScript(file)]));
  for (const [command, lua] of Object.entries(sources)) {
    client.defineCommand(command, { numberOfKeys: KEY_COUNT[command] ?? 2, lua });
  }
  defined.add(client);
}
