import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

/** Clients the limiter talks to. */
export type RedisClient = Redis | Cluster;

type Reply = Promise<string[]>;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    llmrlAcquire(window: string, ring: string, ...args: (string | number)[]): Reply;
    llmrlAdjust(window: string, ring: string, ...args: (string | number)[]): Reply;
    llmrlRelease(window: string, ring: string, ...args: (string | number)[]): Reply;
    llmrlStatus(window: string, ring: string, ...args: (string | number)[]): Reply;
    llmrlTbAcquire(bucket: string, ring: string, ...args: (string | number)[]): Reply;
    llmrlTbSettle(bucket: string, ring: string, ...args: (string | number)[]): Reply;
    llmrlTbStatus(bucket: string, ring: string, ...args: (string | number)[]): Reply;
    llmrlBackoff(state: string, ...args: (string | number)[]): Reply;
    llmrlReconcile(state: string, ...args: (string | number)[]): Reply;
    llmrlHeartbeat(instances: string, ...args: (string | number)[]): Promise<number>;
  }
}

const LUA_DIR = new URL('../../lua/', import.meta.url);
const INCLUDE = /^--- @include "([a-z-]+)"$/gm;

/** A script's source with its `--- @include "name"` lines replaced by lua/includes/name.lua. */
export function loadScript(name: string): string {
  const source = readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8');
  return source.replace(INCLUDE, (_, include: string) => readFileSync(new URL(`includes/${include}.lua`, LUA_DIR), 'utf8'));
}

const COMMANDS = {
  llmrlAcquire: 'acquire',
  llmrlAdjust: 'adjust',
  llmrlRelease: 'release',
  llmrlStatus: 'status',
  llmrlTbAcquire: 'tb-acquire',
  llmrlTbSettle: 'tb-settle',
  llmrlTbStatus: 'tb-status',
  llmrlBackoff: 'backoff',
  llmrlReconcile: 'reconcile',
  llmrlHeartbeat: 'heartbeat',
} as const;

/** Scripts that touch one key; the others take two (state, ops ring). */
const ONE_KEY = new Set<string>(['llmrlBackoff', 'llmrlReconcile', 'llmrlHeartbeat']);

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
    client.defineCommand(command, { numberOfKeys: ONE_KEY.has(command) ? 1 : 2, lua });
  }
  defined.add(client);
}
