import { RedisConfigurationError, RedisUnavailableError } from '../core/errors.js';
import { scriptCommands } from './script-commands.js';

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
  "Cluster isn't ready",
  'Cluster is disconnected',
  'Cluster is disconnecting',
  'Cluster is ended',
  'Connection is discarded',
  'Connection is aborted',
  'UNBLOCKED',
];

/** A per-call deadline of the limiter's own ran out. */
export class CommandDeadlineError extends Error {
  constructor(operation: string, timeoutMs: number) {
    super(`${operation} got no reply from Redis within ${timeoutMs} ms`);
    this.name = 'CommandDeadlineError';
  }
}

/**
 * A reply that cannot answer the command it was matched with: the connection's stream lost bytes
 * (a proxy or middlebox dropping part of a reply without a reset), so every later reply on it
 * would be matched with the wrong command.
 */
export class ReplyOutOfStepError extends Error {
  constructor(operation: string, detail: string) {
    super(`${operation}: the reply from Redis is out of step with the command (${detail}); the connection is replaced`);
    this.name = 'ReplyOutOfStepError';
  }
}

/** The manager was closed: later calls fail at once, without retries. */
export class ManagerClosedError extends Error {
  constructor() {
    super('the RedisConnectionManager was closed');
    this.name = 'ManagerClosedError';
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
export function messageOf(error: unknown): string {
  const message = error !== null && typeof error === 'object' ? (error as ErrorLike).message : undefined;
  return typeof message === 'string' ? message : String(error);
}

/** Whether retrying `error` later may succeed. Everything not known to pass is a configuration error. */
export function isTransient(error: unknown): boolean {
  if (
    error instanceof CommandDeadlineError ||
    error instanceof ConnectionDownError ||
    error instanceof ManagerClosedError ||
    error instanceof ReplyOutOfStepError
  )
    return true;
  if (error === null || typeof error !== 'object') return false;
  const { code, name } = error as ErrorLike;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  if (
    name === 'MaxRetriesPerRequestError' ||
    name === 'CommandDeadlineError' ||
    name === 'ConnectionDownError' ||
    name === 'ManagerClosedError' ||
    name === 'ReplyOutOfStepError'
  )
    return true;
  const raw = messageOf(error);
  const message = raw.startsWith('ERR ') ? raw.slice(4) : raw;
  return TRANSIENT_MESSAGES.some((prefix) => message.startsWith(prefix));
}

/** Whether `error` comes from a TLS handshake: certificate, host name or protocol mismatch. */
export function isTlsError(error: unknown): boolean {
  if (error === null || typeof error !== 'object') return false;
  const { code } = error as ErrorLike;
  if (typeof code === 'string' && /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_|HOSTNAME_MISMATCH)/.test(code))
    return true;
  return /certificate|SSL routines|TLS|Hostname\/IP does not match/i.test(messageOf(error));
}

/** What to try for a configuration error, by its cause. */
export function hintFor(error: unknown): string {
  const message = messageOf(error);
  const reply = message.startsWith('ERR ') ? message.slice(4) : message;
  if (isTlsError(error)) {
    return "The TLS handshake failed: give the server's CA in tls.ca, check that the host name (or tls.servername) is in the certificate, and use rediss:// only for a TLS port";
  }
  if (/^(WRONGPASS|NOAUTH)/.test(reply) || /invalid (username-)?password|Client sent AUTH/i.test(reply)) {
    return 'Check username and password (or the user:password in the URL); the ACL user must be "on"';
  }
  if (/^NOPERM/.test(reply) || /user executing the script can't run/i.test(reply)) {
    return `An ACL permission is missing: the limiter's user needs +eval +evalsha +ping, the commands the scripts call (${scriptCommands()
      .map((c) => `+${c.toLowerCase()}`)
      .join(' ')}) and the key pattern ~{<keyPrefix>:*; RedisConnectionManager.verify() names what is missing`;
  }
  if (/^CROSSSLOT|non local key/i.test(reply)) {
    return 'All keys of one model share a hash tag; a proxy or client that rewrites keys breaks that';
  }
  if (/^unknown command/i.test(reply) || /Unknown Redis command/i.test(reply)) {
    return 'The server lacks a command the limiter needs (renamed or disabled, or the server is older than Redis 6.2)';
  }
  return 'Check the password, ACL permissions and that the server is Redis 6.2 or later; RedisConnectionManager.verify() tells more';
}

/** The typed error a failed Redis call surfaces as. */
export function classify(operation: string, error: unknown, attempts: number): RedisUnavailableError | RedisConfigurationError {
  const detail = messageOf(error);
  if (isTransient(error)) {
    return new RedisUnavailableError(`${operation}: Redis unavailable after ${attempts} attempt(s): ${detail}`, { cause: error });
  }
  return new RedisConfigurationError(`${operation}: Redis refused the call: ${detail}. ${hintFor(error)}`, { cause: error });
}
