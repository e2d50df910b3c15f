import { scriptCommands } from '../../lib/redis/script-commands.js';

/**
 * The ACL rules docs/cluster.md documents for the limiter's user (default key prefix), after
 * `~{llmrl:* -@all`: its channels, the scripts' commands, and with `cluster` what a Cluster
 * client needs besides.
 */
export function limiterAcl(options: { cluster?: boolean } = {}): string[] {
  const cluster = options.cluster ? ['+cluster|slots', '+cluster|info', '+asking'] : [];
  return [
    '&{llmrl:*',
    ...cluster,
    '+eval',
    '+evalsha',
    '+ping',
    '+info',
    '+subscribe',
    '+unsubscribe',
    ...scriptCommands().map((c) => `+${c.toLowerCase()}`),
  ];
}
