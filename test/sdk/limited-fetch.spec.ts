import OpenAI from 'openai';
import { createLimitedFetch, type RateLimiterRegistry } from '../../lib/index.js';
import { waitFor } from '../support/redis.js';
import { describeCallPaths } from './call-paths.js';
import { FakeProvider } from './fake-provider.js';
import { CHAT, type SdkApp, sdkClients, startSdkApp } from './sdk-app.js';

const limitedClients = (url: string, registry: RateLimiterRegistry) => sdkClients(url, createLimitedFetch({ limiter: registry }));

// Every HTTP attempt through the limited fetch: the same call paths settle, once each.
describeCallPaths('the limited fetch', limitedClients);

describe('HTTP attempts through the limited fetch, with the SDK retrying', () => {
  let fake: FakeProvider;
  let app: SdkApp;
  /** Provider hits and limiter events of the counted model, in the order they happened. */
  let order: string[];

  beforeEach(async () => {
    fake = new FakeProvider();
    const url = await fake.start();
    app = await startSdkApp((registry) => limitedClients(url, registry));
    order = [];
    fake.onHit = (hit) => order.push(`hit:${hit.reply}`);
    const onEvent = app.events.push.bind(app.events);
    app.events.push = (...events) => {
      for (const e of events) if (e.model === 'gpt-4o-counted' && e.type !== 'adjusted' && e.type !== 'released') order.push(e.type);
      return onEvent(...events);
    };
  });

  afterEach(async () => {
    await app.moduleRef.close();
    await fake.stop();
  });

  const status = () => app.registry.get('gpt-4o-counted').getStatus();
  const count = (type: string) => app.events.filter((e) => e.type === type && e.model === 'gpt-4o-counted').length;

  it('makes one reservation for a decorated call: its first attempt takes it, settled once', async () => {
    await app.service.counted(CHAT);
    expect(fake.hits).toHaveLength(1);
    const acquired = app.events.filter((e) => e.type === 'acquired' && e.model === 'gpt-4o-counted');
    const adjusted = app.events.filter((e) => e.type === 'adjusted' && e.model === 'gpt-4o-counted');
    expect(acquired).toHaveLength(1);
    expect(adjusted.map((e) => e.type === 'adjusted' && e.recordId)).toEqual([acquired[0].type === 'acquired' && acquired[0].recordId]);
  });

  it('admits the retry after a 429 as a new request, with the back-off started at the first 429', async () => {
    fake.script.push('rate-limited');
    const completion = await app.service.counted(CHAT);
    expect(completion.choices[0].message.content).toBeTruthy();
    expect(fake.hits).toHaveLength(2);
    expect(order).toEqual(['acquired', 'hit:rate-limited', 'backoff', 'acquired', 'hit:ok']);
    // As OpenAI counts: the refused attempt and the retry.
    expect((await status()).requestsUsed).toBe(2);
  });

  it('admits and backs off at every attempt of a persistent 429, then rethrows it', async () => {
    fake.persistent429 = true;
    await expect(app.service.counted(CHAT)).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    expect(fake.hits).toHaveLength(3);
    expect(count('acquired')).toBe(3);
    expect(order.slice(0, 3)).toEqual(['acquired', 'hit:rate-limited', 'backoff']);
    expect(order.filter((o) => o.startsWith('hit')).length).toBe(count('acquired'));
    expect((await status()).requestsUsed).toBe(3);
  });

  it('reports each billing 429 attempt without a pause or a cut, and rethrows the error', async () => {
    fake.script.push('billing', 'billing', 'billing');
    await expect(app.service.counted(CHAT)).rejects.toMatchObject({ status: 429, code: 'insufficient_quota' });
    expect(fake.hits).toHaveLength(3);
    expect(count('billing')).toBe(3);
    expect(count('acquired')).toBe(3);
    expect(count('backoff')).toBe(0);
    const s = await status();
    expect([s.pausedUntil, s.limitFactor]).toEqual([0, 1]);
  });

  it('limits calls made outside any decorated method, each attempt once', async () => {
    const client = sdkClients(fake.url, createLimitedFetch({ limiter: app.registry.get('gpt-4o-counted') })).openai;
    fake.script.push('rate-limited');
    await client.chat.completions.create({ ...CHAT, model: 'gpt-4o' });
    expect(count('acquired')).toBe(2);
    expect(count('backoff')).toBe(1);
    await waitFor(() => count('adjusted') >= 1, 10_000, 'the settle');
  });

  it('settles a stream whose reader stopped early, from what was read', async () => {
    const stream = await app.service.streamed({ ...CHAT, stream: true });
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) break;
    }
    await waitFor(() => app.events.some((e) => e.type === 'adjusted' && e.model === 'gpt-4o'), 10_000, 'the settle');
    const s = await app.registry.get('gpt-4o').getStatus();
    // The prompt and a token of text, not the 500 of output reserved.
    expect(s.tokensUsed).toBeLessThan(50);
  });

  it('releases an attempt answered 500 as having reached the provider', async () => {
    fake.script.push('server-error');
    await expect(app.service.counted(CHAT)).rejects.toMatchObject({ status: 500 });
    expect(fake.hits).toHaveLength(1);
    expect(count('acquired')).toBe(1);
    // OpenAI counts it: the charge is kept, not given back.
    expect((await status()).requestsUsed).toBe(1);
    expect(count('backoff')).toBe(0);
  });

  it('finds the model of a request outside any decorated call in its body or Gemini path', async () => {
    const models: (string | undefined)[] = [];
    const limiter = app.registry.get('gemini');
    const clients = sdkClients(fake.url, createLimitedFetch({ limiter: (model) => (models.push(model), limiter) }));
    await clients.gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello' });
    await clients.openai.chat.completions.create({ ...CHAT, model: 'gpt-4o-mini' });
    expect(models).toEqual(['gemini-2.5-flash', 'gpt-4o-mini']);
    expect(app.events.filter((e) => e.type === 'acquired' && e.model === 'gemini')).toHaveLength(2);
  });

  it('sends a request without a JSON body outside any call unlimited', async () => {
    const limited = createLimitedFetch({ limiter: app.registry });
    const response = await limited(`${fake.url}/v1/models`);
    expect(response.status).toBe(200);
    expect(app.events.filter((e) => e.type === 'acquired')).toEqual([]);
  });

  it('releases an attempt that got no answer', async () => {
    const limited = createLimitedFetch({ limiter: app.registry, fetch: () => Promise.reject(new TypeError('fetch failed')) });
    await expect(
      limited(`${fake.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ ...CHAT, model: 'gpt-4o-counted' }) }),
    ).rejects.toThrow('fetch failed');
    expect(count('acquired')).toBe(1);
    expect(count('released')).toBe(1);
    expect((await status()).requestsUsed).toBe(0);
  });
});
