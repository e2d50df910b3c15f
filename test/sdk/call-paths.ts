import OpenAI from 'openai';
import type { RateLimiterRegistry } from '../../lib/index.js';
import { waitFor } from '../support/redis.js';
import { FakeProvider } from './fake-provider.js';
import { CHAT, CLAUDE, type Clients, type SdkApp, sdkClients, startSdkApp } from './sdk-app.js';

/** How the SDK clients are built: without a fetch of ours, or with the limited fetch. */
export type ClientsOf = (url: string, registry: RateLimiterRegistry) => Clients;

export const plainClients: ClientsOf = (url) => sdkClients(url);

/**
 * Every SDK call path through a decorated method, against the fake provider on Redis, with the
 * SDKs' default retries: each call is settled to the usage the provider reported (far below
 * the 500 tokens of output reserved), whatever reads the result.
 */
export function describeCallPaths(mode: string, clientsOf: ClientsOf): void {
  describe(`SDK call paths through @RateLimitLlm (${mode})`, () => {
    let fake: FakeProvider;
    let app: SdkApp;

    beforeEach(async () => {
      fake = new FakeProvider();
      const url = await fake.start();
      app = await startSdkApp((registry) => clientsOf(url, registry));
    });

    afterEach(async () => {
      await app.moduleRef.close();
      await fake.stop();
    });

    const status = (model: string) => app.registry.get(model).getStatus();
    const settled = (model: string, count = 1) =>
      waitFor(
        () => app.events.filter((e) => e.type === 'adjusted' && e.model === model).length >= count,
        10_000,
        `${count} adjust of ${model}`,
      );

    it('settles chat.completions.create to the reported usage', async () => {
      const completion = await app.service.complete(CHAT);
      await settled('gpt-4o');
      expect((await status('gpt-4o')).tokensUsed).toBe(completion.usage!.total_tokens);
    });

    it('keeps withResponse() of the APIPromise and settles the call', async () => {
      const { data, response } = await app.service.complete(CHAT).withResponse();
      expect(response.status).toBe(200);
      await settled('gpt-4o');
      expect((await status('gpt-4o')).tokensUsed).toBe(data.usage!.total_tokens);
    });

    it('settles a streamed create read with for await', async () => {
      const stream = await app.service.streamed({ ...CHAT, stream: true, stream_options: { include_usage: true } });
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) usage = chunk.usage ?? usage;
      await settled('gpt-4o');
      expect((await status('gpt-4o')).tokensUsed).toBe(usage!.total_tokens);
    });

    it('settles chat.completions.stream() read by finalChatCompletion() and its events', async () => {
      const texts: string[] = [];
      const stream = app.service.helper({ ...CHAT, stream_options: { include_usage: true } });
      stream.on('content', (delta) => texts.push(delta));
      const completion = await stream.finalChatCompletion();
      expect(texts.join('')).toBe(completion.choices[0].message.content);
      await settled('gpt-4o');
      expect((await status('gpt-4o')).tokensUsed).toBe(completion.usage!.total_tokens);
    });

    it("settles Anthropic's messages.stream() read by on('text') and finalMessage()", async () => {
      const texts: string[] = [];
      const stream = app.service.messageStream(CLAUDE).on('text', (text) => texts.push(text));
      const message = await stream.finalMessage();
      expect(texts.join('')).toBe(message.content[0].type === 'text' ? message.content[0].text : '');
      await settled('claude');
      const s = await status('claude');
      expect(s.outputTokensUsed).toBe(message.usage.output_tokens);
      expect(s.inputTokensUsed).toBe(message.usage.input_tokens);
    });

    it('settles messages.create and Gemini generateContent and its stream', async () => {
      const message = await app.service.message(CLAUDE);
      const generated = await app.service.generate('say something short about limits');
      let last: { usageMetadata?: { totalTokenCount?: number } } | undefined;
      for await (const chunk of await app.service.generateStream('say something short about limits')) last = chunk;
      await settled('claude');
      await settled('gemini', 2);
      expect((await status('claude')).outputTokensUsed).toBe(message.usage.output_tokens);
      expect((await status('gemini')).tokensUsed).toBe(generated.usageMetadata!.totalTokenCount! + last!.usageMetadata!.totalTokenCount!);
    });

    it('reserves nothing for the output of embeddings', async () => {
      const embedding = await app.service.embed({ model: 'text-embedding-3-small', input: 'limits for everyone' });
      await app.service.embedGemini('limits for everyone');
      await settled('text-embedding-3-small');
      await settled('gemini-embedding');
      expect((await status('text-embedding-3-small')).tokensUsed).toBe(embedding.usage.prompt_tokens);
      // embedContent reports no usage: the input as estimated, no output.
      expect((await status('gemini-embedding')).tokensUsed).toBeLessThan(20);
    });

    it('charges the quota another consumer spent, from the success headers', async () => {
      fake.foreignTokens = 20_000;
      await app.service.complete(CHAT);
      await waitFor(() => app.events.some((e) => e.type === 'reconciled'), 10_000, 'a reconcile');
      const reconciled = app.events.find((e) => e.type === 'reconciled');
      expect(reconciled).toMatchObject({ model: 'gpt-4o' });
      const foreign = reconciled?.type === 'reconciled' ? reconciled.foreign.tokens : 0;
      expect(foreign).toBeGreaterThan(0);
      expect(foreign).toBeLessThanOrEqual(20_000);
    });

    it('reports a billing 429, rethrows it, and neither pauses nor cuts the limits', async () => {
      fake.script.push('billing', 'billing', 'billing');
      const error = await app.service.counted(CHAT).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect((error as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('insufficient_quota');
      expect(app.events.some((e) => e.type === 'billing' && e.code === 'insufficient_quota')).toBe(true);
      expect(app.events.filter((e) => e.type === 'backoff')).toEqual([]);
      const s = await status('gpt-4o-counted');
      expect(s.pausedUntil).toBe(0);
      expect(s.limitFactor).toBe(1);
    });
  });
}
