import { RateLimitConfigError } from '../../lib/index.js';
import { BACKENDS, type BackendUnderTest, usedOf } from '../support/backends.js';

describe.each(BACKENDS)('provider profiles on the %s store', (_name, make) => {
  let backend: BackendUnderTest;
  beforeAll(() => {
    backend = make();
  });
  afterAll(() => backend.close());

  const used = usedOf;

  describe("'openai'", () => {
    it('keeps what was reserved when the call used less, and charges more when it used more', async () => {
      const limiter = backend.limiter('gpt-4o', { provider: 'openai', tpm: 100_000 });
      const r = await limiter.acquire({ inputTokens: 1000, outputTokens: 4096 });
      await expect(limiter.adjust(r.recordId, { actualOutput: 100, actualInput: 900 })).resolves.toMatchObject({ status: 'unchanged' });
      expect(await used(limiter)).toEqual({ tokens: 5096, input: 1000, output: 4096, requests: 1 });
      // settled once: a second adjust changes nothing, whatever it says
      await expect(limiter.adjust(r.recordId, { actualOutput: 100, actualInput: 1500 })).resolves.toMatchObject({
        status: 'settled',
        tokensDelta: 0,
        inputTokensDelta: 0,
      });
      expect(await used(limiter)).toEqual({ tokens: 5096, input: 1000, output: 4096, requests: 1 });
      const more = await limiter.acquire({ inputTokens: 1000, outputTokens: 4096 });
      await expect(limiter.adjust(more.recordId, { actualOutput: 100, actualInput: 1500 })).resolves.toMatchObject({
        status: 'applied',
        tokensDelta: 0,
        inputTokensDelta: 500,
      });
      expect(await used(limiter)).toEqual({ tokens: 10_192, input: 2500, output: 8192, requests: 2 });
    });

    it('keeps the charge of a call that failed at the provider, and frees one that never got there', async () => {
      const limiter = backend.limiter('gpt-4o', { provider: 'openai', tpm: 100_000, rpm: 10 });
      const failed = await limiter.acquire({ inputTokens: 100, outputTokens: 100 });
      const unsent = await limiter.acquire({ inputTokens: 100, outputTokens: 100 });
      await limiter.release(failed.recordId, { reachedProvider: true });
      await limiter.release(unsent.recordId);
      expect(await used(limiter)).toEqual({ tokens: 200, input: 100, output: 100, requests: 1 });
    });
  });

  describe("'anthropic'", () => {
    it('counts cache writes but not cache reads against input, and settles output as produced', async () => {
      // the sliding window shows the accounting without the bucket's refill moving the figures
      const limiter = backend.limiter('claude', {
        provider: 'anthropic',
        algorithm: 'sliding-window',
        inputTpm: 100_000,
        outputTpm: 20_000,
      });
      const r = await limiter.acquire({ inputTokens: 500, outputTokens: 1000, cacheReadTokens: 8000, cacheWriteTokens: 300 });
      expect(await used(limiter)).toMatchObject({ input: 800, output: 1000 });
      await limiter.adjust(r.recordId, { actualOutput: 250, actualCacheRead: 9000 });
      expect(await used(limiter)).toMatchObject({ input: 800, output: 250 });
    });
  });

  describe("'bedrock'", () => {
    it('reserves input, cache and max_tokens at weight 1, then settles output at the burndown rate (5 by default)', async () => {
      const limiter = backend.limiter('claude-bedrock', { provider: 'bedrock', tpm: 100_000 });
      const r = await limiter.acquire({ inputTokens: 1000, outputTokens: 1000, cacheReadTokens: 400, cacheWriteTokens: 100 });
      expect(await used(limiter)).toMatchObject({ tokens: 2500, input: 1500, output: 1000 });
      // settlement: input 1000 + cache write 100 + 5 x 200; cache reads are released
      await expect(limiter.adjust(r.recordId, { actualOutput: 200 })).resolves.toMatchObject({ tokensDelta: -400 });
      expect(await used(limiter)).toMatchObject({ tokens: 2100, input: 1100, output: 200 });
    });

    it('charges more at settlement when the output was long', async () => {
      const limiter = backend.limiter('claude-bedrock', { provider: 'bedrock', tpm: 100_000 });
      const r = await limiter.acquire({ inputTokens: 1000, outputTokens: 1000 });
      await limiter.adjust(r.recordId, { actualOutput: 1000 });
      expect((await used(limiter)).tokens).toBe(6000);
    });
  });

  describe("'vertex' and 'custom'", () => {
    it('settle on real usage both ways', async () => {
      for (const provider of ['vertex', 'custom'] as const) {
        const limiter = backend.limiter('gemini', { provider, inputTpm: 100_000, outputTpm: 10_000 });
        const r = await limiter.acquire({ inputTokens: 1000, outputTokens: 2000 });
        await limiter.adjust(r.recordId, { actualOutput: 50, actualInput: 1200 });
        expect(await used(limiter)).toMatchObject({ input: 1200, output: 50 });
      }
    });
  });

  it('rejects unknown providers and algorithms, and bucketSeconds without a token bucket', () => {
    expect(() => backend.limiter('m', { tpm: 10, provider: 'azure' as never })).toThrow(RateLimitConfigError);
    expect(() => backend.limiter('m', { tpm: 10, provider: 'azure' as never })).toThrow(/provider must be one of 'openai'/);
    expect(() => backend.limiter('m', { tpm: 10, algorithm: 'leaky' as never })).toThrow(/algorithm/);
    expect(() => backend.limiter('m', { tpm: 10, bucketSeconds: 1 })).toThrow(/bucketSeconds applies to algorithm 'token-bucket'/);
    expect(() => backend.limiter('m', { tpm: 10, algorithm: 'token-bucket', bucketSeconds: 61 })).toThrow(/bucketSeconds must be/);
  });

  it('rejects bad cache figures like any token count', async () => {
    const limiter = backend.limiter('m', { tpm: 1000 });
    await expect(limiter.acquire({ inputTokens: 1, outputTokens: 1, cacheReadTokens: -1 })).rejects.toThrow(/cacheReadTokens/);
    await expect(limiter.acquire({ tokens: 1, cacheWriteTokens: 1 } as never)).rejects.toThrow(/not both/);
    const r = await limiter.acquire({ inputTokens: 1, outputTokens: 1 });
    await expect(limiter.adjust(r.recordId, { actualOutput: 1, actualCacheWrite: 0.5 })).rejects.toThrow(/actualCacheWrite/);
    await expect(limiter.release(r.recordId, null as never)).rejects.toThrow(/release options/);
  });
});
