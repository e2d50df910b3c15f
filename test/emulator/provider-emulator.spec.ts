import { ManualClock } from '../../emulator/clock.js';
import { parseOpenAiDuration } from '../../emulator/headers.js';
import { ProviderEmulator } from '../../emulator/provider-emulator.js';
import { countTokens, estimateTokens } from '../../emulator/tokens.js';

const words = (tokens: number, seed = 'p') => `${seed} `.padEnd(tokens * 4, 'abcd ').slice(0, tokens * 4);

async function post(emulator: ProviderEmulator, path: string, body: unknown) {
  const res = await fetch(`${emulator.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
}

describe('ProviderEmulator over HTTP', () => {
  const started: ProviderEmulator[] = [];
  const start = async (options: ConstructorParameters<typeof ProviderEmulator>[0]) => {
    const emulator = await ProviderEmulator.start(options);
    started.push(emulator);
    return emulator;
  };
  afterEach(async () => {
    await Promise.all(started.splice(0).map((e) => e.close()));
  });

  it('answers OpenAI chat completions with usage and x-ratelimit headers, then 429 with retry-after once TPM is spent', async () => {
    const clock = new ManualClock(1_000_000);
    const emulator = await start({
      policy: { kind: 'openai', windowMs: 6000, tpm: 3000, rpm: 100 },
      clock,
      outputFraction: { min: 0.5, max: 0.5 },
    });
    const request = { model: 'gpt-x', max_tokens: 1000, messages: [{ role: 'user', content: words(1000) }] };
    const ok = await post(emulator, '/v1/chat/completions', request);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({
      object: 'chat.completion',
      choices: [{ finish_reason: 'stop' }],
      usage: { prompt_tokens: 1000, completion_tokens: 500, total_tokens: 1500, prompt_tokens_details: { cached_tokens: 0 } },
    });
    expect(ok.headers.get('x-ratelimit-limit-tokens')).toBe('3000');
    expect(ok.headers.get('x-ratelimit-remaining-tokens')).toBe('1000');
    expect(parseOpenAiDuration(ok.headers.get('x-ratelimit-reset-tokens')!)).toBe(6000);

    clock.advance(1500);
    const refused = await post(emulator, '/v1/chat/completions', request);
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'tokens' });
    expect(refused.headers.get('retry-after-ms')).toBe('4500');
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(emulator.recorder.calls.map((c) => c.status)).toEqual([200, 429]);
    expect(emulator.recorder.calls[1]).toMatchObject({ dimension: 'tokens', retryAfterMs: 4500 });
  });

  it('answers Anthropic messages with cache writes, then cache reads, and anthropic-ratelimit headers', async () => {
    const clock = new ManualClock(Date.parse('2026-11-29T10:00:00Z'));
    const emulator = await start({
      policy: { kind: 'anthropic', windowMs: 6000, rpm: 60, inputTpm: 60_000, outputTpm: 12_000 },
      clock,
      outputFraction: { min: 0.25, max: 0.25 },
    });
    const request = {
      model: 'claude-x',
      max_tokens: 400,
      system: [{ type: 'text', text: words(3000, 'sys'), cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: [{ type: 'text', text: words(200) }] }],
    };
    const first = await post(emulator, '/v1/messages', request);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      type: 'message',
      stop_reason: 'end_turn',
      usage: { input_tokens: 200, output_tokens: 100, cache_creation_input_tokens: 3000, cache_read_input_tokens: 0 },
    });
    const second = await post(emulator, '/v1/messages', request);
    expect(second.body.usage).toMatchObject({ input_tokens: 200, cache_creation_input_tokens: 0, cache_read_input_tokens: 3000 });
    // ITPM counted 3200 + 200 (the cache read is free): 56,600 left, rounded to thousands.
    expect(second.headers.get('anthropic-ratelimit-input-tokens-remaining')).toBe('57000');
    expect(second.headers.get('anthropic-ratelimit-requests-remaining')).toBe('58');
    expect(second.headers.get('anthropic-ratelimit-output-tokens-reset')).toBe('2026-11-29T10:00:00.100Z');
  });

  it('answers Bedrock Converse and InvokeModel, and throttles with a ThrottlingException', async () => {
    const clock = new ManualClock();
    const emulator = await start({ policy: { kind: 'bedrock', windowMs: 6000, tpm: 5000 }, clock, outputFraction: { min: 1, max: 1 } });
    const converse = await post(emulator, '/model/anthropic.claude-x/converse', {
      system: [{ text: words(500, 'sys') }, { cachePoint: { type: 'default' } }],
      messages: [{ role: 'user', content: [{ text: words(100) }] }],
      inferenceConfig: { maxTokens: 200 },
    });
    expect(converse.status).toBe(200);
    expect(converse.body).toMatchObject({
      stopReason: 'max_tokens',
      usage: { inputTokens: 100, outputTokens: 200, totalTokens: 800, cacheWriteInputTokens: 500, cacheReadInputTokens: 0 },
    });
    // settled at 100 + 500 + 5 x 200 = 1600, so 3400 are left: a 3500 reservation is refused
    const invoke = await fetch(`${emulator.url}/model/anthropic.claude-x/invoke`, {
      method: 'POST',
      body: JSON.stringify({
        anthropic_version: 'bedrock-2023-05-31',
        max_tokens: 400,
        messages: [{ role: 'user', content: words(3100) }],
      }),
    });
    expect(invoke.status).toBe(429);
    expect(invoke.headers.get('x-amzn-errortype')).toBe('ThrottlingException');
    const small = await fetch(`${emulator.url}/model/anthropic.claude-x/invoke`, {
      method: 'POST',
      body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 40, messages: [{ role: 'user', content: words(100) }] }),
    });
    expect(small.status).toBe(200);
    expect(small.headers.get('x-amzn-bedrock-output-token-count')).toBe('40');
    expect(await small.json()).toMatchObject({ type: 'message', usage: { input_tokens: 100, output_tokens: 40 } });
  });

  it('answers Vertex generateContent with usageMetadata', async () => {
    const emulator = await start({
      policy: { kind: 'sliding-window', windowMs: 6000, inputTpm: 10_000, outputTpm: 2000 },
      outputFraction: { min: 0.5, max: 0.5 },
    });
    const res = await post(emulator, '/v1/projects/p/locations/us-central1/publishers/google/models/gemini-x:generateContent', {
      contents: [{ role: 'user', parts: [{ text: words(300) }] }],
      generationConfig: { maxOutputTokens: 100 },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      candidates: [{ finishReason: 'STOP' }],
      usageMetadata: { promptTokenCount: 300, candidatesTokenCount: 50, totalTokenCount: 350 },
      modelVersion: 'gemini-x',
    });
  });

  it('reports usage that differs from the estimates: output below max_tokens, input off by up to inputError', async () => {
    const emulator = await start({ policy: { kind: 'sliding-window', windowMs: 6000, tpm: 10_000_000 }, inputError: 0.1, seed: 7 });
    const outputs: number[] = [];
    const inputs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const text = words(1000, `q${i}`);
      const res = await post(emulator, '/v1/chat/completions', {
        model: 'm',
        max_tokens: 1000,
        messages: [{ role: 'user', content: text }],
      });
      outputs.push(res.body.usage.completion_tokens);
      inputs.push(res.body.usage.prompt_tokens);
      expect(res.body.usage.prompt_tokens).toBe(countTokens(text, 0.1));
    }
    expect(Math.max(...outputs)).toBeLessThanOrEqual(1000);
    expect(Math.min(...outputs)).toBeGreaterThanOrEqual(100);
    expect(new Set(outputs).size).toBeGreaterThan(10);
    expect(inputs.every((n) => n >= 900 && n <= 1100)).toBe(true);
    expect(inputs.some((n) => n !== estimateTokens(words(1000)))).toBe(true);
  });

  it('fails a share of admitted calls with a 500 after they reached it; OpenAI keeps their charge', async () => {
    const clock = new ManualClock();
    const emulator = await start({ policy: { kind: 'openai', windowMs: 6000, tpm: 100_000 }, clock, errorRate: 1 });
    const res = await post(emulator, '/v1/chat/completions', {
      model: 'm',
      max_tokens: 100,
      messages: [{ role: 'user', content: words(100) }],
    });
    expect(res.status).toBe(500);
    expect(res.body.error.type).toBe('server_error');
    expect(res.headers.get('x-ratelimit-remaining-tokens')).toBe('99800');
  });

  it('lets a foreign consumer spend its share of every limit', async () => {
    const clock = new ManualClock();
    const emulator = await start({
      policy: { kind: 'sliding-window', windowMs: 1000, tpm: 10_000, rpm: 100 },
      clock,
      foreign: { share: 0.3 },
    });
    for (let i = 0; i < 10; i++) {
      clock.advance(100);
      expect(emulator.spendForeign(100)).toBe(true);
    }
    const counted = emulator.recorder.counted(-Infinity, Infinity, 'foreign');
    expect(counted.tokens).toBeCloseTo(3000);
    expect(counted.requests).toBeCloseTo(30);
    expect(emulator.policy.state(clock.now()).find((s) => s.dimension === 'tokens')?.remaining).toBeCloseTo(7000);
  });

  it('refuses malformed requests with a 400 and unknown routes with a 404', async () => {
    const emulator = await start({ policy: { kind: 'sliding-window', windowMs: 1000, tpm: 1000 } });
    expect((await post(emulator, '/v1/chat/completions', { model: 'm', messages: [] })).status).toBe(400);
    expect((await post(emulator, '/v1/messages', { model: 'm', max_tokens: 0, messages: [{ role: 'user', content: 'x' }] })).status).toBe(
      400,
    );
    expect((await post(emulator, '/v2/nothing', {})).status).toBe(404);
    expect(emulator.recorder.calls).toHaveLength(0);
  });

  it('holds a response for its latency: fixed plus per output token', async () => {
    const emulator = await start({
      policy: { kind: 'sliding-window', windowMs: 1000, tpm: 100_000 },
      latency: { fixedMs: 30, perOutputTokenMs: 0.5 },
      outputFraction: { min: 1, max: 1 },
    });
    const began = performance.now();
    await post(emulator, '/v1/chat/completions', { model: 'm', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    expect(performance.now() - began).toBeGreaterThanOrEqual(79);
    const [record] = emulator.recorder.calls;
    expect(record.completedAt! - record.arrivedAt).toBeGreaterThanOrEqual(79);
  });
});

describe('EmulatorRecorder.windowUtilisation', () => {
  it('averages what each window ending in the span served, so a burst counts the same wherever it falls', async () => {
    const { EmulatorRecorder } = await import('../../emulator/recorder.js');
    const recorder = new EmulatorRecorder();
    // A burst of a whole limit at 100, another at 1100: every window ending in [1000, 2000] holds one.
    recorder.sink({ at: 100, dimension: 'tokens', amount: 500, source: 'call' });
    recorder.sink({ at: 1100, dimension: 'tokens', amount: 500, source: 'call' });
    recorder.sink({ at: 1100, dimension: 'tokens', amount: 999, source: 'foreign' });
    expect(recorder.windowUtilisation(1100, 2000, { tokens: 500 }, 1000).tokens).toBeCloseTo(1);
    expect(recorder.windowUtilisation(1000, 2000, { tokens: 500 }, 1000).tokens).toBeCloseTo(1);
    // Windows ending in [2100, 2200] hold nothing: a twelfth of the span.
    expect(recorder.windowUtilisation(1000, 2200, { tokens: 500 }, 1000).tokens).toBeCloseTo(1100 / 1200);
    expect(recorder.windowUtilisation(1100, 2000, { tokens: 500 }, 1000, 'foreign').tokens).toBeCloseTo(999 / 500);
  });
});
