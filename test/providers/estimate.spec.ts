import {
  CHARS_PER_TOKEN,
  DEFAULT_OUTPUT_TOKENS,
  estimateContentTokens,
  estimateFromArguments,
  estimateMessagesTokens,
  estimateTextTokens,
  MEDIA_PART_TOKENS,
  MESSAGE_OVERHEAD_TOKENS,
  outputCapOf,
  REQUEST_OVERHEAD_TOKENS,
} from '../../lib/providers/estimate.js';

describe('token estimate heuristic', () => {
  it('counts one token per four characters, rounded up', () => {
    expect(CHARS_PER_TOKEN).toBe(4);
    expect(estimateTextTokens('')).toBe(0);
    expect(estimateTextTokens('abcd')).toBe(1);
    expect(estimateTextTokens('abcde')).toBe(2);
    expect(estimateTextTokens('x'.repeat(4000))).toBe(1000);
  });

  it('reads text out of strings, part arrays and nested objects, skipping labels and ids', () => {
    expect(estimateContentTokens('x'.repeat(40))).toBe(10);
    expect(
      estimateContentTokens([
        { type: 'text', text: 'x'.repeat(20) },
        { type: 'text', text: 'y'.repeat(20) },
      ]),
    ).toBe(10);
    expect(estimateContentTokens({ role: 'assistant', id: 'msg_0123456789', content: 'x'.repeat(8) })).toBe(2);
  });

  it('counts each image, audio, file or document part as a fixed amount, whatever its size', () => {
    const base64 = 'A'.repeat(100_000);
    const parts = [
      { type: 'image_url', image_url: { url: `data:image/png;base64,${base64}` } },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: base64 } },
      { inlineData: { mimeType: 'image/png', data: base64 } },
      { type: 'input_audio', input_audio: { data: base64, format: 'wav' } },
    ];
    expect(estimateContentTokens(parts)).toBe(4 * MEDIA_PART_TOKENS);
  });

  it('adds a per-message overhead to a chat history', () => {
    const messages = [
      { role: 'system', content: 'x'.repeat(40) },
      { role: 'user', content: 'y'.repeat(40) },
    ];
    expect(estimateMessagesTokens(messages)).toBe(2 * MESSAGE_OVERHEAD_TOKENS + 20);
  });

  it('survives cyclic content', () => {
    const part: Record<string, unknown> = { text: 'abcd' };
    part.self = part;
    expect(estimateContentTokens([part])).toBe(1);
  });

  it('reads the output cap in every SDK spelling and multiplies it by the number of choices', () => {
    expect(outputCapOf({ max_tokens: 300 })).toBe(300);
    expect(outputCapOf({ max_completion_tokens: 400, max_tokens: 300 })).toBe(400);
    expect(outputCapOf({ max_output_tokens: 500 })).toBe(500);
    expect(outputCapOf({ maxOutputTokens: 600 })).toBe(600);
    expect(outputCapOf({ config: { maxOutputTokens: 700 } })).toBe(700);
    expect(outputCapOf({ generationConfig: { maxOutputTokens: 800 } })).toBe(800);
    expect(outputCapOf({ max_tokens: 100, n: 3 })).toBe(300);
    expect(outputCapOf({ config: { maxOutputTokens: 100, candidateCount: 2 } })).toBe(200);
  });

  it(`reserves ${DEFAULT_OUTPUT_TOKENS} output tokens when the request sets no cap`, () => {
    expect(outputCapOf({ messages: [] })).toBe(DEFAULT_OUTPUT_TOKENS);
  });

  it('reads plain arguments as prompt text when they are no provider request', () => {
    expect(estimateFromArguments(['x'.repeat(400), 7])).toEqual({
      inputTokens: REQUEST_OVERHEAD_TOKENS + Math.ceil(401 / 4),
      outputTokens: DEFAULT_OUTPUT_TOKENS,
    });
  });
});
