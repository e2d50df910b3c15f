import { anthropicUsage, estimateAnthropicRequest, isAnthropicRequest, readAnthropicStreamEvent } from '../../lib/providers/anthropic.js';
import { newStreamState } from '../../lib/providers/llm-usage.js';
import { MESSAGE_OVERHEAD_TOKENS, REQUEST_OVERHEAD_TOKENS } from '../../lib/providers/estimate.js';

describe('Anthropic shapes', () => {
  const request = {
    model: 'claude-sonnet-4-5',
    max_tokens: 512,
    system: [{ type: 'text', text: 'x'.repeat(40), cache_control: { type: 'ephemeral' } }],
    messages: [{ role: 'user', content: 'y'.repeat(80) }],
  };

  it('recognises a request by its top-level system or other Anthropic-only fields', () => {
    expect(isAnthropicRequest(request)).toBe(true);
    expect(isAnthropicRequest({ messages: [], max_tokens: 10 })).toBe(false);
  });

  it('estimates input from system and messages, and output from max_tokens', () => {
    expect(estimateAnthropicRequest(request)).toEqual({
      inputTokens: REQUEST_OVERHEAD_TOKENS + 2 * MESSAGE_OVERHEAD_TOKENS + 30,
      outputTokens: 512,
    });
  });

  it('reads a message usage with cache reads and writes apart from the input', () => {
    const message = {
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      content: [{ type: 'text', text: 'hi' }],
      usage: { input_tokens: 25, output_tokens: 90, cache_read_input_tokens: 1000, cache_creation_input_tokens: 200 },
    };
    expect(anthropicUsage(message)).toEqual({ input: 25, output: 90, cacheRead: 1000, cacheWrite: 200 });
  });

  it('leaves an OpenAI response with the same field names to the OpenAI reader', () => {
    expect(anthropicUsage({ object: 'response', usage: { input_tokens: 1, output_tokens: 2 } })).toBeUndefined();
  });

  it('follows a stream from message_start to the last message_delta', () => {
    const state = newStreamState();
    const events = [
      {
        type: 'message_start',
        message: {
          type: 'message',
          usage: { input_tokens: 40, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
        },
      },
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'ping' },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 12 } },
      { type: 'message_stop' },
    ];
    for (const event of events) expect(readAnthropicStreamEvent(event, state)).toBe(true);
    expect(state.usage).toEqual({ input: 40, output: 12, cacheRead: 0, cacheWrite: 0 });
    expect(state.textChars).toBe(5);
  });
});
