import type { HeaderSource } from './headers.js';
import { isRecord } from './llm-usage.js';

/*
 * What a provider SDK's call gives back, in the shapes of the OpenAI, Anthropic and Google Gen AI
 * SDKs: its result (a promise, a stream, a page), the final response's headers, and its error's
 * HTTP status and headers.
 */

/** The HTTP status of a provider SDK's error (OpenAI, Anthropic, Google Gen AI, fetch-style). */
export function statusOf(error: unknown): number | undefined {
  if (!isRecord(error) && !(error instanceof Error)) return undefined;
  const e = error as Record<string, unknown>;
  const response = isRecord(e.response) ? e.response : {};
  const status = [e.status, e.statusCode, response.status].find((s) => typeof s === 'number' && s >= 100 && s < 600);
  return status as number | undefined;
}

/** The headers a provider SDK's error carries, its own or its response's; none found gives `{}`. */
export function headersOf(error: unknown): HeaderSource {
  const e = error as Record<string, unknown>;
  const response = isRecord(e.response) ? e.response : {};
  const headers = e.headers ?? response.headers;
  return headers !== null && typeof headers === 'object' ? (headers as HeaderSource) : {};
}

/** A stream to settle when it ends; a page of a list (OpenAI's and Anthropic's `Page`) iterates its items instead. */
export function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' &&
    typeof (value as { hasNextPage?: unknown }).hasNextPage !== 'function'
  );
}

/** A promise or anything awaitable like one (an SDK's `APIPromise`). */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

/**
 * The awaited result and the final response's headers, where the SDK keeps them: OpenAI's and
 * Anthropic's `APIPromise.withResponse()`, the Google Gen AI SDK's `sdkHttpResponse`.
 */
export async function awaitWithHeaders(value: PromiseLike<unknown>): Promise<{ data: unknown; headers?: HeaderSource }> {
  const withResponse = (value as { withResponse?: unknown }).withResponse;
  if (typeof withResponse === 'function') {
    const { data, response } = (await withResponse.call(value)) as { data: unknown; response?: { headers?: HeaderSource } };
    return { data, headers: response?.headers };
  }
  const data = await value;
  const kept = isRecord(data) && isRecord(data.sdkHttpResponse) ? data.sdkHttpResponse.headers : undefined;
  return { data, headers: isRecord(kept) ? kept : undefined };
}
