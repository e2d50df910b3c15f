/**
 * Passes a server-sent-events body through unchanged while handing each event's JSON `data` to
 * `onEvent`, and calls `onEnd` once: `done` when the body ended, `stopped` when the reader
 * cancelled it, `failed` when reading it failed. Whoever reads the body (the SDK's `Stream`, a
 * helper stream, `toReadableStream()`) drives it, so the call settles whatever reads it.
 */
export function observeEventStream(
  body: ReadableStream<Uint8Array>,
  onEvent: (data: unknown) => void,
  onEnd: (how: 'done' | 'stopped' | 'failed') => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  let ended = false;
  const end = (how: 'done' | 'stopped' | 'failed') => {
    if (ended) return;
    ended = true;
    onEnd(how);
  };
  const readEvents = (text: string) => {
    pending += text;
    // Events end with a blank line; lines may end in \n, \r\n or \r.
    const events = pending.split(/\r\n\r\n|\n\n|\r\r/);
    pending = events.pop() ?? '';
    for (const event of events) {
      const data = event
        .split(/\r\n|\n|\r/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data === '' || data === '[DONE]') continue;
      try {
        onEvent(JSON.parse(data) as unknown);
      } catch {
        // Not JSON: not an event that reports usage or text.
      }
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          readEvents(decoder.decode() + '\n\n');
          controller.close();
          end('done');
          return;
        }
        readEvents(decoder.decode(value, { stream: true }));
        controller.enqueue(value);
      } catch (error) {
        end('failed');
        controller.error(error);
      }
    },
    async cancel(reason) {
      end('stopped');
      await reader.cancel(reason);
    },
  });
}
