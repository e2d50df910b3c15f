import { estimateOpenAiRequest, openAiUsage, readOpenAiStreamEvent } from '../../lib/providers/openai.js';
import { newStreamState } from '../../lib/providers/llm-usage.js';
import { MESSAGE_OVERHEAD_TOKENS, REQUEST_OVERHEAD_TOKENS } from '../../lib/providers/estimate.js';

describe('OpenAI shapes', () => {
  it('estimates a chat completion request from its messages and max_completion_tokens', () => {
    const request = {
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: 'x'.repeat(80) },
        { role: 'user', content: [{ type: 'text', text: 'y'.repeat(40) }] },
      ],
      max_completion_tokens: 256,
    };
    expect(estimateOpenAiRequest(request)).toEqual({
      inputTokens: REQUEST_OVERHEAD_TOKENS + 2 * MESSAGE_OVERHEAD_TOKENS + 30,
      outputTokens: 256,
    });
  });

  it('estimates a Responses API request from instructions and input', () => {
    const request = { model: 'gpt-4.1', instructions: 'x'.repeat(40), input: 'y'.repeat(40), max_output_tokens: 64 };
    expect(estimateOpenAiRequest(request)).toEqual({
      inputTokens: REQUEST_OVERHEAD_TOKENS + 2 * MESSAGE_OVERHEAD_TOKENS + 20,
      outputTokens: 64,
    });
  });

  it('counts tool definitions as the text of their JSON', () => {
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }];
    const withTools = estimateOpenAiRequest({ messages: [], tools });
    expect(withTools.inputTokens).toBe(REQUEST_OVERHEAD_TOKENS + Math.ceil(JSON.stringify(tools).length / 4));
  });

  it('reads prompt_tokens and completion_tokens of a chat completion', () => {
    const completion = {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 120, completion_tokens: 30, total_tokens: 150, prompt_tokens_details: { cached_tokens: 64 } },
    };
    expect(openAiUsage(completion)).toEqual({ input: 120, output: 30 });
  });

  it('reads input_tokens and output_tokens of a response, cached tokens staying in the input', () => {
    const response = {
      id: 'resp_1',
      object: 'response',
      output: [],
      usage: {
        input_tokens: 300,
        input_tokens_details: { cached_tokens: 200 },
        output_tokens: 50,
        output_tokens_details: { reasoning_tokens: 20 },
        total_tokens: 350,
      },
    };
    expect(openAiUsage(response)).toEqual({ input: 300, output: 50 });
  });

  it('finds no usage in a result without it', () => {
    expect(openAiUsage({ choices: [] })).toBeUndefined();
    expect(openAiUsage('text')).toBeUndefined();
    expect(openAiUsage({ usage: null })).toBeUndefined();
  });

  it('follows a chat completion stream to its include_usage chunk', () => {
    const state = newStreamState();
    const chunks = [
      { object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant', content: '' } }], usage: null },
      { object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'Hello there' } }], usage: null },
      { object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null },
      { object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 42, completion_tokens: 3, total_tokens: 45 } },
    ];
    for (const chunk of chunks) expect(readOpenAiStreamEvent(chunk, state)).toBe(true);
    expect(state.usage).toEqual({ input: 42, output: 3 });
    expect(state.textChars).toBe('Hello there'.length);
  });

  it('follows a Responses API stream to response.completed', () => {
    const state = newStreamState();
    readOpenAiStreamEvent({ type: 'response.created', response: { usage: null } }, state);
    readOpenAiStreamEvent({ type: 'response.output_text.delta', delta: 'abcdefgh' }, state);
    readOpenAiStreamEvent({ type: 'response.completed', response: { usage: { input_tokens: 9, output_tokens: 2 } } }, state);
    expect(state.usage).toEqual({ input: 9, output: 2 });
    expect(state.textChars).toBe(8);
  });
});
