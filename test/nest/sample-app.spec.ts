import type { INestApplication } from '@nestjs/common';
import { AppModule } from '../../sample/app.module.js';
import { listen, recordingNestLogger } from '../support/nest.js';

describe('the sample application over HTTP', () => {
  let app: INestApplication;
  let url: string;
  beforeAll(async () => {
    ({ app, url } = await listen({ imports: [AppModule] }, recordingNestLogger()));
  });
  afterAll(() => app.close());

  const chat = (maxTokens: number) =>
    fetch(`${url}/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'Hello', maxTokens }),
    });

  it('answers a request larger than a whole window allows with 413, not 500', async () => {
    const response = await chat(999_999);
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ statusCode: 413, limit: { name: 'tpm', allowed: 6000 } });
  });

  it("serves the limiter's metrics for Prometheus at /metrics", async () => {
    expect((await chat(50)).status).toBe(200);
    const response = await fetch(`${url}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toMatch(/^llm_rate_limiter_used\{model="fake-gpt",figure="requests"[^}]*\} 1$/m);
    expect(text).toMatch(/^llm_rate_limiter_limit\{model="fake-gpt",figure="tokens"[^}]*\} 6000$/m);
    expect(text).toMatch(/^llm_rate_limiter_admissions_total\{model="fake-gpt",degraded="false"[^}]*\} 1$/m);
  });
});
