import { Cluster, type Redis } from 'ioredis';
import { isTransient } from './redis-errors.js';
import type { RedisClient } from './scripts.js';

const guarded = new WeakSet<object>();
const ignore = () => undefined;

/**
 * ioredis listens for a socket's first 'error' only. A TLS socket can emit a second one (the
 * server's alert after the client refused its certificate), and Node throws an 'error' nobody
 * listens for: the application would crash over a misconfiguration the limiter reports anyway.
 * A listener that stays on every socket of the client keeps the second one quiet; the first has
 * already reached the client.
 */
function guardSockets(client: RedisClient): void {
  const nodes: readonly Redis[] = client instanceof Cluster ? client.nodes('all') : [client];
  for (const node of nodes) {
    const stream = node.stream as { on?: (event: string, listener: () => void) => void } | undefined;
    if (stream && typeof stream.on === 'function' && !guarded.has(stream)) {
      guarded.add(stream);
      stream.on('error', ignore);
    }
  }
}

/**
 * Reports the errors a client emits, which are often the only place the real cause of a failure
 * shows (a TLS certificate, a wrong password while connecting), and `undefined` once the client
 * is ready again, so a cause from an earlier outage is not blamed for a later one.
 *
 * A configuration error stays the explanation until then: the "connection closed" that follows
 * a failed TLS handshake must not hide it. A Cluster reports its nodes' errors apart, and wraps
 * "every node failed" around the last node's error: the node's error is the one that explains.
 */
export function watchErrors(client: RedisClient, report: (error: unknown) => void): void {
  let kept: unknown;
  const onError = (error: unknown) => {
    guardSockets(client);
    const cause = (error as { lastNodeError?: unknown } | null)?.lastNodeError ?? error;
    if (isTransient(cause)) {
      if (kept === undefined) report(cause);
      return;
    }
    kept = cause;
    report(cause);
  };
  client.on('error', onError);
  // Only a Cluster emits this; listening on a plain client costs nothing.
  client.on('node error', onError);
  client.on('connect', () => guardSockets(client));
  client.on('ready', () => {
    kept = undefined;
    report(undefined);
  });
}
