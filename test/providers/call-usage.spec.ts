import { estimateCall, readStreamEvent, streamedUsage, usageOfResult } from '../../lib/providers/call-usage.js';
import { newStreamState } from '../../lib/providers/llm-usage.js';
import { DEFAULT_OUTPUT_TOKENS } from '../../lib/providers/estimate.js';

describe('reading a decorated call', () => {
  it('estimates from the first argument that is a provider request, whichever SDK it is for', () => {
    expect(estimateCall([{ messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }, { timeout: 1000 }]).outputTokens).toBe(5);
    expect(estimateCall(['tenant-1', { system: 'be brief', messages: [], max_tokens: 6 }]).outputTokens).toBe(6);
    expect(estimateCall([{ contents: 'hi', config: { maxOutputTokens: 7 } }]).outputTokens).toBe(7);
  });

  it('falls back to the text of the arguments', () => {
    expect(estimateCall(['x'.repeat(400)])).toEqual({ inputTokens: 103, outputTokens: DEFAULT_OUTPUT_TOKENS });
  });

  it('reads the usage of an OpenAI, Anthropic or Gemini result', () => {
    expect(usageOfResult({ usage: { prompt_tokens: 1, completion_tokens: 2 } })).toEqual({ input: 1, output: 2 });
    expect(usageOfResult({ type: 'message', usage: { input_tokens: 3, output_tokens: 4 } })).toMatchObject({ input: 3, output: 4 });
    expect(usageOfResult({ usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 6 } })).toEqual({ input: 5, output: 6 });
    expect(usageOfResult('plain text')).toBeUndefined();
  });

  it('estimates the output of a stream that reported no usage from the text it carried', () => {
    const state = newStreamState();
    readStreamEvent({ object: 'chat.completion.chunk', choices: [{ delta: { content: 'x'.repeat(10) } }], usage: null }, state);
    expect(streamedUsage(state)).toEqual({ output: 3 });
  });

  it('counts the larger of reported and seen output for a stream that did not finish', () => {
    const state = newStreamState();
    readStreamEvent({ type: 'message_start', message: { usage: { input_tokens: 9, output_tokens: 1 } } }, state);
    readStreamEvent({ type: 'content_block_delta', delta: { type: 'text_delta', text: 'x'.repeat(40) } }, state);
    expect(streamedUsage(state, false)).toEqual({ input: 9, output: 10 });
    expect(streamedUsage(state, true)).toEqual({ input: 9, output: 1 });
  });

  it('reads a stream of plain strings as generated text', () => {
    const state = newStreamState();
    for (const chunk of ['abcd', 'efgh']) readStreamEvent(chunk, state);
    expect(streamedUsage(state)).toEqual({ output: 2 });
  });

  it('has no usage for a stream of unknown chunks', () => {
    const state = newStreamState();
    readStreamEvent({ something: 'else' }, state);
    readStreamEvent(42, state);
    expect(streamedUsage(state)).toBeUndefined();
  });
});
