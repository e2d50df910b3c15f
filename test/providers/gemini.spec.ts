import { estimateGeminiRequest, geminiUsage, readGeminiStreamEvent } from '../../lib/providers/gemini.js';
import { newStreamState } from '../../lib/providers/llm-usage.js';
import { DEFAULT_OUTPUT_TOKENS, MESSAGE_OVERHEAD_TOKENS, REQUEST_OVERHEAD_TOKENS } from '../../lib/providers/estimate.js';

describe('Gemini and Vertex shapes', () => {
  it('estimates a Google Gen AI request from contents, config.systemInstruction and config.maxOutputTokens', () => {
    const request = {
      model: 'gemini-2.5-flash',
      contents: [{ role: 'user', parts: [{ text: 'x'.repeat(40) }] }],
      config: { systemInstruction: 'y'.repeat(40), maxOutputTokens: 200 },
    };
    expect(estimateGeminiRequest(request)).toEqual({
      inputTokens: REQUEST_OVERHEAD_TOKENS + 2 * MESSAGE_OVERHEAD_TOKENS + 20,
      outputTokens: 200,
    });
  });

  it('estimates a Vertex AI SDK request with generationConfig, and a bare string of contents', () => {
    expect(estimateGeminiRequest({ contents: 'x'.repeat(40), generationConfig: { maxOutputTokens: 99 } })).toEqual({
      inputTokens: REQUEST_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS + 10,
      outputTokens: 99,
    });
    expect(estimateGeminiRequest({ contents: 'hi' }).outputTokens).toBe(DEFAULT_OUTPUT_TOKENS);
  });

  it('reads usageMetadata, counting thinking as output and tool-use prompts as input', () => {
    const response = {
      candidates: [{ content: { role: 'model', parts: [{ text: 'hi' }] } }],
      usageMetadata: {
        promptTokenCount: 100,
        candidatesTokenCount: 20,
        thoughtsTokenCount: 30,
        toolUsePromptTokenCount: 5,
        totalTokenCount: 155,
      },
    };
    expect(geminiUsage(response)).toEqual({ input: 105, output: 50 });
  });

  it('reads usageMetadata under response, as the Vertex AI SDK returns it', () => {
    expect(geminiUsage({ response: { usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 3 } } })).toEqual({ input: 7, output: 3 });
  });

  it('counts no output for a response without candidates', () => {
    expect(geminiUsage({ usageMetadata: { promptTokenCount: 7 } })).toEqual({ input: 7, output: 0 });
  });

  it("takes the last streamed chunk's usageMetadata as the whole call's", () => {
    const state = newStreamState();
    const chunks = [
      { candidates: [{ content: { parts: [{ text: 'Hel' }] } }], usageMetadata: { promptTokenCount: 11, candidatesTokenCount: 1 } },
      { candidates: [{ content: { parts: [{ text: 'lo' }] } }], usageMetadata: { promptTokenCount: 11, candidatesTokenCount: 2 } },
      { candidates: [{ content: { parts: [] }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 11, candidatesTokenCount: 4 } },
    ];
    for (const chunk of chunks) expect(readGeminiStreamEvent(chunk, state)).toBe(true);
    expect(state.usage).toEqual({ input: 11, output: 4 });
    expect(state.textChars).toBe(5);
  });
});
