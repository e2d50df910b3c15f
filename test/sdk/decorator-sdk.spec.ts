import { FakeProvider } from './fake-provider.js';
import { describeCallPaths, plainClients } from './call-paths.js';
import { CHAT, type SdkApp, startSdkApp } from './sdk-app.js';

// The SDKs' own fetch: the decorator alone settles each call from its result and reads the
// final response's headers through the SDK.
describeCallPaths('the SDK fetch', plainClients);

describe('a decorated SDK call whose result carries no usage', () => {
  let fake: FakeProvider;
  let app: SdkApp;

  beforeEach(async () => {
    fake = new FakeProvider();
    const url = await fake.start();
    app = await startSdkApp((registry) => plainClients(url, registry));
  });

  afterEach(async () => {
    await app.moduleRef.close();
    await fake.stop();
  });

  it("does not see the SDK's retries: the README's reason to set maxRetries: 0", async () => {
    const order: string[] = [];
    fake.onHit = (hit) => order.push(`hit:${hit.reply}`);
    const push = app.events.push.bind(app.events);
    app.events.push = (...events) => {
      for (const e of events) if (e.type === 'acquired' || e.type === 'backoff') order.push(e.type);
      return push(...events);
    };
    fake.persistent429 = true;
    await expect(app.service.counted(CHAT)).rejects.toMatchObject({ status: 429 });
    expect(order).toEqual(['acquired', 'hit:rate-limited', 'hit:rate-limited', 'hit:rate-limited', 'backoff']);
  });

  it('warns once, naming the method', async () => {
    const first = await app.service.listModels();
    await app.service.listModels();
    expect(first.data.map((m) => m.id)).toEqual(['gpt-4o']);
    const warnings = app.logger.lines.filter((l) => l.level === 'warn' && l.message.includes('carries no usage'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0].message).toMatch(/^LlmService\.listModels: /);
  });
});
