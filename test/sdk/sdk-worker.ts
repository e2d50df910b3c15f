// Another replica of the app for test/sdk/two-processes.spec.ts, started with
// `node --import ./test/support/ts-register.mjs sdk-worker.ts <setup as JSON>`: on the parent's
// start it makes one chat completion through the limited fetch (the SDK's default retries on),
// telling the parent of each back-off as it happens, and sends its outcome.
import OpenAI from 'openai';
import { createLimitedFetch, RateLimiter, type RateLimiterEvent, RedisConnectionManager } from '../../lib/index.js';
import { tellParent } from '../support/child-workers.js';
import { CHAT, MODELS } from './fixtures.js';

export interface SdkWorkerSetup {
  readonly worker: number;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly fakeUrl: string;
}

export interface SdkWorkerDone {
  readonly type: 'done';
  readonly outcome: 'ok' | 'failed';
  readonly events: string[];
}

const setup = JSON.parse(process.argv[2]) as SdkWorkerSetup;
const events: RateLimiterEvent[] = [];
const manager = new RedisConnectionManager({ url: setup.redisUrl });
const quiet = { warn: () => undefined, error: (m: string) => console.error(m) };
const limiter = new RateLimiter(manager, 'gpt-4o-counted', MODELS['gpt-4o-counted'], {
  keyPrefix: setup.keyPrefix,
  logger: quiet,
  onEvent: (event) => {
    events.push(event);
    if (event.type === 'backoff') void tellParent({ type: 'backoff', pausedUntil: event.pausedUntil });
  },
});
const openai = new OpenAI({ apiKey: 'test', baseURL: `${setup.fakeUrl}/v1`, fetch: createLimitedFetch({ limiter, logger: quiet }) });

process.on('message', (message: { type: string }) => {
  if (message.type !== 'start') return;
  void (async () => {
    const outcome = await openai.chat.completions.create(CHAT).then(
      () => 'ok' as const,
      () => 'failed' as const,
    );
    await tellParent({ type: 'done', outcome, events: events.map((e) => e.type) } satisfies SdkWorkerDone);
    await manager.close();
    process.disconnect();
  })();
});

await tellParent({ type: 'ready' });
