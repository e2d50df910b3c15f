/**
 * The SDKs' helper streams: OpenAI's `chat.completions.stream()` and
 * Anthropic's `messages.stream()` return event emitters that read the SDK's `Stream` themselves
 * and end in `done()`. Their raw events arrive as `chunk` (OpenAI chat) and `streamEvent`
 * (Anthropic).
 */
export interface HelperStream {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  done(): Promise<void>;
}

const RAW_EVENTS = ['chunk', 'streamEvent'];

export function isHelperStream(value: unknown): value is HelperStream {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as HelperStream).on === 'function' &&
    typeof (value as HelperStream).done === 'function'
  );
}

/** Calls `onEvent` with each raw event and `onEnd` once the stream has ended or failed. */
export function watchHelperStream(stream: HelperStream, onEvent: (event: unknown) => void, onEnd: (error?: unknown) => void): void {
  for (const name of RAW_EVENTS) stream.on(name, (event: unknown) => onEvent(event));
  stream.done().then(
    () => onEnd(),
    (error: unknown) => onEnd(error ?? new Error('the helper stream failed')),
  );
}
