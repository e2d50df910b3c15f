import { createLimitedFetch, type RateLimiterEvent } from '../../lib/index.js';
import { ChildWorkers } from '../support/child-workers.js';
import { redisUrl, uniquePrefix, waitFor } from '../support/redis.js';
import { FakeProvider } from './fake-provider.js';
import { CHAT, type SdkApp, sdkClients, startSdkApp } from './sdk-app.js';
import type { SdkWorkerDone, SdkWorkerSetup } from './sdk-worker.js';

describe('a 429 met by another process through the limited fetch', () => {
  const workers = new ChildWorkers<SdkWorkerSetup, SdkWorkerDone>(new URL('./sdk-worker.ts', import.meta.url));
  let fake: FakeProvider;
  let app: SdkApp | undefined;

  afterEach(async () => {
    workers.stop();
    await app?.moduleRef.close();
    await fake.stop();
  });

  it("holds this process's next request until the pause that the other process's first 429 started has ended", async () => {
    fake = new FakeProvider();
    fake.retryAfterMs = 1500;
    fake.script.push('rate-limited');
    const url = await fake.start();
    const keyPrefix = uniquePrefix('sdk2');
    app = await startSdkApp((registry) => sdkClients(url, createLimitedFetch({ limiter: registry })), keyPrefix);
    let pausedUntil = 0;
    workers.onMessage = (_, message) => {
      const m = message as { type: string; pausedUntil: number };
      if (m.type === 'backoff' && pausedUntil === 0) pausedUntil = m.pausedUntil;
    };
    await workers.startAll(1, (worker) => ({ worker, redisUrl: redisUrl(), keyPrefix, fakeUrl: url }));
    workers.begin(Date.now() + 60_000);
    await waitFor(() => pausedUntil > 0, 20_000, "the other process's back-off");

    await app.service.counted(CHAT);
    const firstAttempts = fake.hits.filter((h) => h.retry === 0);
    expect(firstAttempts.map((h) => h.reply)).toEqual(['rate-limited', 'ok']);
    // Redis's clock and this one are the same host's; both in whole ms.
    expect(firstAttempts[1].at).toBeGreaterThanOrEqual(pausedUntil - 1);
    const acquired = app.events.find(
      (e): e is Extract<RateLimiterEvent, { type: 'acquired' }> => e.type === 'acquired' && e.model === 'gpt-4o-counted',
    );
    expect(acquired?.waitMs).toBeGreaterThan(0);

    const done = await workers.finished(0);
    expect(done.outcome).toBe('ok');
    expect(done.events.filter((e) => e === 'acquired')).toHaveLength(2);
  });
});
