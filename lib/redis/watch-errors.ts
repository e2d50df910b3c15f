import { isTransient } from './redis-errors.js';
import type { RedisClient } from './scripts.js';

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
  client.on('ready', () => {
    kept = undefined;
    report(undefined);
  });
}
