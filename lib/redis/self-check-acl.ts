import { RedisConfigurationError, RedisUnavailableError } from '../core/errors.js';
import type { RedisExecutor } from './executor.js';
import { modelKeys } from './keys.js';
import { messageOf } from './redis-errors.js';
import { scriptCommands } from './script-commands.js';
import type { RedisClient } from './scripts.js';

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

/** The error a call failed with, before the executor wrapped it. */
export function causeOf(error: unknown): unknown {
  return error instanceof Error && error.cause !== undefined ? error.cause : error;
}

/** Whether Redis refused a call for the user's permissions (or does not know the command). */
export function isRefusal(error: unknown): boolean {
  return /^(ERR )?(NOPERM|unknown command)|no permissions/i.test(messageOf(causeOf(error)));
}

/** What the permission check runs with. */
export interface AclCheckContext {
  readonly executor: RedisExecutor;
  readonly username: string;
  readonly keyPrefix: string;
  /** The scratch model whose keys and channel are probed. */
  readonly model: string;
  /** Opens a connection to subscribe with once; absent when the store hears no admissions. */
  readonly subscriber?: () => RedisClient;
}

/**
 * Whether the Redis user may do what the limiter does: run every command inside its scripts on
 * its keys, publish on its channels and subscribe to them, on a master. Throws a
 * `RedisConfigurationError` naming what is refused and the ACL rule that allows it.
 */
export async function checkPermissions(context: AclCheckContext): Promise<void> {
  const { executor, username, keyPrefix } = context;
  // Every key of the scratch model, a hash first and the queue (a sorted set) second, and its
  // admissions channel last (PUBLISH checks the user's channel permissions).
  const { window, queue, channel, ...others } = modelKeys(keyPrefix, context.model);
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
}
