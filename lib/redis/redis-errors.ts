import { RedisConfigurationError, RedisUnavailableError } from '../core/errors.js';

/** Socket-level error codes that mean "try again later", never "you configured this wrong". */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
]);

/**
 * Reply prefixes and client messages of conditions that pass: a server loading its data, busy
 * with another script, failing over, out of memory for the moment, or a connection going away.
 * Matched as prefixes after an optional `ERR ` (Redis 7 added it to some codes).
 */
const TRANSIENT_MESSAGES = [
  'LOADING',
  'BUSY',
  'TRYAGAIN',
  'CLUSTERDOWN',
  'MASTERDOWN',
  'READONLY',
  'OOM',
  'Connection is closed',
  "Stream isn't writeable",
  'Too many Cluster redirections',
  'None of startup nodes is available',
  'All sentinels are unreachable',
  'Failed to refresh slots cache',
  'Reached the max retries per request limit',
];

/** A per-call deadline of the limiter's own ran out. */
export class CommandDeadlineError extends Error {
  constructor(operation: string, timeoutMs: number) {
    super(`${operation} got no reply from Redis within ${timeoutMs} ms`);
    this.name = 'CommandDeadlineError';
  }
}

/** The connection is down (reconnecting or closed): failing at once beats queueing. */
export class ConnectionDownError extends Error {
  constructor(status: string, cause?: unknown) {
    super(`the Redis connection is ${status}${cause ? ` (last error: ${messageOf(cause)})` : ''}`, {
      cause,
    });
    this.name = 'ConnectionDownError';
  }
}

interface ErrorLike {
  readonly name?: unknown;
  readonly message?: unknown;
  readonly code?: unknown;
}

// Errors are recognised by shape, not `instanceof`: socket errors may come from another realm
// (test runners, worker threads), where `instanceof Error` is false.
function messageOf(error: unknown): string {
  const message = error !== null && typeof error === 'object' ? (error as ErrorLike).message : undefined;
  return typeof message === 'string' ? message : String(error);
}

/** Whether retrying `error` later may succeed. Everything not known to pass is a configuration error. */
export function isTransient(error: unknown): boolean {
  if (error instanceof CommandDeadlineError || error instanceof ConnectionDownError) return true;
  if (error === null || typeof error !== 'object') return false;
  const { code, name } = error as ErrorLike;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  if (name === 'MaxRetriesPerRequestError' || name === 'CommandDeadlineError' || name === 'ConnectionDownError') return true;
  const raw = messageOf(error);
  const message = raw.startsWith('ERR ') ? raw.slice(4) : raw;
  return TRANSIENT_MESSAGES.some((prefix) => message.startsWith(prefix));
}

/** The typed error a failed Redis call surfaces as. */
export function classify(operation: string, error: unknown, attempts: number): RedisUnavailableError | RedisConfigurationError {
  const detail = messageOf(error);
  if (isTransient(error)) {
    return new RedisUnavailableError(`${operation}: Redis unavailable after ${attempts} attempt(s): ${detail}`, { cause: error });
  }
  return new RedisConfigurationError(
    `${operation}: Redis refused the call: ${detail}. Check the password, ACL permissions (the scripts call TIME, HMGET, HSET, HDEL, DEL, ZADD, ZSCORE, ZCOUNT, ZCARD, ZREMRANGEBYSCORE, ZREMRANGEBYRANK, PEXPIREAT) and that the server is Redis 6.2 or later`,
    { cause: error },
  );
}
