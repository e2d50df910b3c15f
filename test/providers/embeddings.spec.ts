import { estimateCall, isEmbeddingRequest, usageOfResult } from '../../lib/providers/call-usage.js';
import { REQUEST_OVERHEAD_TOKENS } from '../../lib/providers/estimate.js';

describe('embeddings', () => {
  it('reserves no output for embeddings.create and Gemini embedContent requests', () => {
    expect(estimateCall([{ model: 'text-embedding-3-small', input: 'x'.repeat(40) }])).toEqual({
      inputTokens: REQUEST_OVERHEAD_TOKENS + 10,
      outputTokens: 0,
    });
    expect(estimateCall([{ model: 'gemini-embedding-001', contents: 'x'.repeat(40) }])).toEqual({
      inputTokens: REQUEST_OVERHEAD_TOKENS + 10,
      outputTokens: 0,
    });
    // Known by their own fields when the model's name says nothing.
    expect(isEmbeddingRequest({ model: 'my-deployment', input: 'x', dimensions: 256 })).toBe(true);
    expect(isEmbeddingRequest({ model: 'custom', contents: 'x', config: { taskType: 'RETRIEVAL_DOCUMENT' } })).toBe(true);
  });

  it('leaves Responses API requests, which also take input, with their output cap', () => {
    expect(isEmbeddingRequest({ model: 'gpt-4.1', input: 'hello' })).toBe(false);
    expect(estimateCall([{ model: 'gpt-4.1', input: 'hello', max_output_tokens: 64 }]).outputTokens).toBe(64);
  });

  it('reads the usage of an embeddings result as input only', () => {
    const result = {
      object: 'list',
      data: [{ object: 'embedding', index: 0, embedding: [0.1] }],
      usage: { prompt_tokens: 8, total_tokens: 8 },
    };
    expect(usageOfResult(result)).toEqual({ input: 8, output: 0 });
    // embedContent reports no usage: no output, the input as estimated.
    expect(usageOfResult({ embeddings: [{ values: [0.1] }] })).toEqual({ output: 0 });
    expect(usageOfResult({ embedding: { values: [0.1] } })).toEqual({ output: 0 });
  });

  it('still reads a chat completion without completion_tokens as unknown output', () => {
    expect(usageOfResult({ usage: { prompt_tokens: 8, total_tokens: 20 } })).toEqual({ input: 8, output: undefined });
  });
});
