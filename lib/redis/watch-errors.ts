import type { RedisClient } from './scripts.js';

/**
 * Reports the errors a client emits, which are often the only place the real cause of a failure
 * shows (a TLS certificate, a wrong password while connecting), and `undefined` once the client
 * is ready again, so a cause from an earlier outage is not blamed for a later one. A Cluster
 * reports its nodes' errors apart, and wraps "every node failed" around the last node's error:
 * the node's error is the one that explains.
 */
export function watchErrors(client: RedisClient, report: (error: unknown) => void): void {
  const onError = (error: unknown) => {
    const inner = (error as { lastNodeError?: unknown } | null)?.lastNodeError;
    report(inner ?? error);
  };
  client.on('error', onError);
  client.on('ready', () => report(undefined));
  // Only a Cluster emits this; listening on a plain client costs nothing.
  client.on('node error', onError);
}
