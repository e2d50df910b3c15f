import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/** URL of the Redis the global setup found or started. */
export function redisUrl(): string {
  const url = process.env.LLMRL_TEST_REDIS_URL;
  if (!url) throw new Error('LLMRL_TEST_REDIS_URL is not set: run the tests through `npm test` (jest.config.mjs globalSetup finds Redis)');
  return url;
}

/** A key prefix no other test uses, so tests can share one Redis and run in parallel. */
export function uniquePrefix(name = 't'): string {
  return `${name}-${randomBytes(6).toString('hex')}`;
}

/** A plain client for inspecting state; close it with `closeClient`. */
export function inspector(): Redis {
  return new Redis(redisUrl(), { lazyConnect: false, maxRetriesPerRequest: 1 });
}

export async function closeClient(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  await client.quit().catch(() => client.disconnect());
}

/** Polls `condition` until it holds; rejects after `timeoutMs` (a hang detector, not a timing claim). */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
