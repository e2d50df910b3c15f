import { AcquireTimeoutError, type RateLimiter } from '../../lib/index.js';
import { BACKENDS, type BackendUnderTest } from '../support/backends.js';

// Waits are planned by the store from its clock, so they are exact to a millisecond or two of
// call latency; the bounds below leave room for that, not for timing luck.
describe.each(BACKENDS)("algorithm 'token-bucket' on the %s store", (_name, make) => {
  let backend: BackendUnderTest;
  beforeAll(() => {
    backend = make();
  });
  afterAll(() => backend.close());

  const bucket = (config: object) => backend.limiter('claude', { algorithm: 'token-bucket', ...config });

  it('admits a bucketful at once, then paces at the refill rate, in arrival order', async () => {
    // 10 requests per second, bucket of 0.2 s = 2 requests, one more every 100 ms
    const limiter = bucket({ rpm: 10, windowSeconds: 1, bucketSeconds: 0.2 });
    const results = await Promise.all([0, 1, 2, 3].map(() => limiter.acquire({ tokens: 0 })));
    const waits = results.map((r) => r.waitTime);
    expect(waits.slice(0, 2)).toEqual([0, 0]);
    expect(waits[2]).toBeGreaterThanOrEqual(80);
    expect(waits[2]).toBeLessThanOrEqual(101);
    expect(waits[3]).toBeGreaterThanOrEqual(180);
    expect(waits[3]).toBeLessThanOrEqual(201);
    expect(results.map((r) => r.queuePosition)).toEqual([0, 0, 0, 1]);
  });

  it('holds a whole window of the limit by default and refills it continuously', async () => {
    const limiter = bucket({ tpm: 1000, windowSeconds: 1 });
    await expect(limiter.acquire({ tokens: 1000 })).resolves.toMatchObject({ waitTime: 0 });
    const next = await limiter.acquire({ tokens: 100 }, { maxWaitMs: 1000 });
    // 100 tokens refill in 100 ms, not after the whole window
    expect(next.waitTime).toBeGreaterThan(50);
    expect(next.waitTime).toBeLessThanOrEqual(101);
  });

  it('starts a request larger than the bucket once the bucket is full, instead of never', async () => {
    const limiter = bucket({ tpm: 1000, windowSeconds: 1, bucketSeconds: 0.1 });
    await expect(limiter.acquire({ tokens: 500 })).resolves.toMatchObject({ waitTime: 0 });
    const after = await limiter.acquire({ tokens: 50 }, { maxWaitMs: 2000 });
    // the 500-token debt (500 ms) minus the 100-token bucket, plus 50 tokens (50 ms)
    expect(after.waitTime).toBeGreaterThan(400);
    expect(after.waitTime).toBeLessThanOrEqual(451);
  });

  it('gives capacity back on a downward adjust and on release, once each', async () => {
    const limiter = bucket({ tpm: 1000, windowSeconds: 10 });
    const r = await limiter.acquire({ inputTokens: 0, outputTokens: 1000 });
    await expect(limiter.acquire({ tokens: 500 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
    await limiter.adjust(r.recordId, { actualOutput: 400 });
    await limiter.adjust(r.recordId, { actualOutput: 400 });
    const s = await limiter.acquire({ tokens: 500 }, { maxWaitMs: 0 });
    await limiter.release(s.recordId);
    await limiter.release(s.recordId);
    // 400 left owed, less what refilled meanwhile (0.1 token per ms)
    const owed = (await limiter.getStatus()).tokensUsed;
    expect(owed).toBeGreaterThanOrEqual(350);
    expect(owed).toBeLessThanOrEqual(400);
    await expect(limiter.acquire({ tokens: 600 }, { maxWaitMs: 0 })).resolves.toMatchObject({ waitTime: 0 });
  });

  it('reports what each bucket still has to refill, queued reservations included', async () => {
    const limiter: RateLimiter = bucket({ inputTpm: 600, outputTpm: 60, rpm: 6, windowSeconds: 60 });
    await limiter.acquire({ inputTokens: 300, outputTokens: 30 });
    const s = await limiter.getStatus();
    expect(s).toMatchObject({ inputTokensLimit: 600, outputTokensLimit: 60, requestsLimit: 6, queueDepth: 0 });
    expect([s.inputTokensUsed, s.outputTokensUsed, s.requestsUsed]).toEqual([300, 30, 1]);
  });

  it('keeps FIFO and reserves nothing past maxWaitMs', async () => {
    const limiter = bucket({ rpm: 2, windowSeconds: 1, bucketSeconds: 0.5 });
    await limiter.acquire({ tokens: 0 });
    await expect(limiter.acquire({ tokens: 0 }, { maxWaitMs: 100 })).rejects.toThrow(AcquireTimeoutError);
    expect((await limiter.getStatus()).requestsUsed).toBe(1);
  });
});
