// Results shaped as the OpenAI, Anthropic and Google Gen AI SDKs return them, for tests of the
// decorator's usage reading. Only the fields the shapes are known by are filled in.

export function openAiCompletion(input: number, output: number, text = 'ok') {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
    usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
  };
}

export function anthropicMessage(usage: { input: number; output: number; cacheRead?: number; cacheWrite?: number }) {
  return {
    id: 'msg_test',
    type: 'message',
    role: 'assistant',
    content: [{ type: 'text', text: 'ok' }],
    usage: {
      input_tokens: usage.input,
      output_tokens: usage.output,
      cache_read_input_tokens: usage.cacheRead ?? 0,
      cache_creation_input_tokens: usage.cacheWrite ?? 0,
    },
  };
}

export function geminiResponse(input: number, output: number) {
  return {
    candidates: [{ content: { role: 'model', parts: [{ text: 'ok' }] }, finishReason: 'STOP' }],
    usageMetadata: { promptTokenCount: input, candidatesTokenCount: output, totalTokenCount: input + output },
  };
}

/** Chunks of a chat completion stream; the last carries usage, as with include_usage. */
export function openAiStreamChunks(pieces: string[], usage?: { input: number; output: number }) {
  const chunks: object[] = pieces.map((content) => ({
    object: 'chat.completion.chunk',
    choices: [{ index: 0, delta: { content } }],
    usage: null,
  }));
  if (usage) {
    chunks.push({
      object: 'chat.completion.chunk',
      choices: [],
      usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output },
    });
  }
  return chunks;
}

export function anthropicStreamEvents(input: number, pieces: string[], output: number) {
  return [
    {
      type: 'message_start',
      message: {
        type: 'message',
        usage: { input_tokens: input, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
      },
    },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    ...pieces.map((text) => ({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } })),
    { type: 'content_block_stop', index: 0 },
    { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: output } },
    { type: 'message_stop' },
  ];
}

export function geminiStreamChunks(input: number, pieces: string[], outputs: number[]) {
  return pieces.map((text, i) => ({
    candidates: [{ content: { role: 'model', parts: [{ text }] } }],
    usageMetadata: { promptTokenCount: input, candidatesTokenCount: outputs[i] },
  }));
}

/** An async generator over chunks, as Gemini's generateContentStream resolves to. */
export async function* generate<T>(chunks: readonly T[]): AsyncGenerator<T> {
  for (const chunk of chunks) yield chunk;
}

/**
 * A stream object like the OpenAI and Anthropic SDKs' `Stream`: async iterable once, with
 * methods of its own that must survive the decorator.
 */
export class SdkStream<T> implements AsyncIterable<T> {
  readonly controller = new AbortController();
  private consumed = false;

  constructor(private readonly chunks: readonly T[]) {}

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.consumed) throw new Error('Cannot iterate over a consumed stream');
    this.consumed = true;
    for (const chunk of this.chunks) {
      if (this.controller.signal.aborted) return;
      yield chunk;
    }
  }

  abort(): void {
    this.controller.abort();
  }
}

/** An error as the provider SDKs throw for an HTTP error answer. */
export class ProviderHttpError extends Error {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string> = {},
  ) {
    super(`${status} from the provider`);
  }
}
