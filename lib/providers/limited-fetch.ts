import { RateLimitConfigError } from '../core/errors.js';
import type { LimiterLogger } from '../core/events.js';
import type { RateLimiter, TokenRequest } from '../core/rate-limiter.js';
import { estimateCall, readStreamEvent, streamedUsage, usageOfResult } from './call-usage.js';
import { type CallEstimate, isRecord, newStreamState } from './llm-usage.js';
import { currentCallScope } from './call-scope.js';
import { actualUsageOf } from './settle.js';
import { observeEventStream } from './sse-body.js';

type Fetch = typeof globalThis.fetch;

/** How `createLimitedFetch` finds limits and reports trouble. */
export interface LimitedFetchOptions {
  /**
   * The limiter of every request; or, by the request's model (the body's `model`, or Gemini's
   * `models/{model}:` path), a lookup such as the Nest module's `RateLimiterRegistry` or a
   * function, where a model without a limiter is not limited. Inside a `@RateLimitLlm()` call,
   * the decorated method's limiter is used.
   */
  readonly limiter: RateLimiter | LimiterLookup | ((model: string | undefined) => RateLimiter | undefined);
  /** The fetch that sends (default: the global `fetch`). */
  readonly fetch?: Fetch;
  /** Reject an attempt that waited longer than this for admission (see `acquire`). */
  readonly maxWaitMs?: number;
  /** Where settlement failures and usage-less responses are reported (default: console). */
  readonly logger?: LimiterLogger;
}

/** Limiters by model name: the Nest module's `RateLimiterRegistry` is one. */
export interface LimiterLookup {
  has(model: string): boolean;
  get(model: string): RateLimiter;
}

function isLookup(value: unknown): value is LimiterLookup {
  return (
    typeof (value as LimiterLookup).has === 'function' &&
    typeof (value as LimiterLookup).get === 'function' &&
    !('acquire' in (value as object))
  );
}

const GEMINI_MODEL = /\/models\/([^/:]+):/;
const EMBEDDINGS = /(\/embeddings|:embedContent|:batchEmbedContents)$/;

interface Attempt {
  readonly limiter: RateLimiter;
  readonly recordId: string;
  readonly estimate: CallEstimate;
  readonly path: string;
}

function urlOf(input: string | URL | Request): URL {
  return new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
}

async function bodyOf(input: string | URL | Request, init: RequestInit | undefined): Promise<Record<string, unknown> | undefined> {
  const raw = init?.body ?? (input instanceof Request && input.body ? await input.clone().text() : undefined);
  if (typeof raw !== 'string') return undefined;
  try {
    const body = JSON.parse(raw) as unknown;
    return isRecord(body) ? body : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A `fetch` for a provider SDK's client that puts every HTTP attempt under the limits, as the
 * provider counts attempts: a retry by the SDK waits for admission like a new request; a 429
 * pauses every process at once (before the SDK's retry); each response's rate-limit headers are
 * reconciled; each attempt is settled to the usage its response reports, a streamed one as
 * its body is read, whoever reads it. Inside a `@RateLimitLlm()` call, the first attempt uses
 * the call's reservation. A request with no JSON body outside such a call is not limited.
 *
 * @example
 * new OpenAI({ fetch: createLimitedFetch({ limiter: registry }) });
 * new GoogleGenAI({ apiKey, httpOptions: { fetch: createLimitedFetch({ limiter: registry }) } });
 */
export function createLimitedFetch(options: LimitedFetchOptions): Fetch {
  const given: unknown = options?.limiter;
  if (given === null || (typeof given !== 'object' && typeof given !== 'function')) {
    throw new RateLimitConfigError(
      `createLimitedFetch needs { limiter }: a RateLimiter, the RateLimiterRegistry, or a function of the model name; got ${String(given)}`,
    );
  }
  const send: Fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const logger = options.logger ?? console;
  const warned = new Set<string>();
  const { limiter } = options;
  const resolve = (model: string | undefined): RateLimiter | undefined => {
    if (typeof limiter === 'function') return limiter(model);
    if (isLookup(limiter)) return model !== undefined && limiter.has(model) ? limiter.get(model) : undefined;
    return limiter;
  };

  const start = async (input: string | URL | Request, init: RequestInit | undefined): Promise<Attempt | undefined> => {
    const url = urlOf(input);
    const body = await bodyOf(input, init);
    const scope = currentCallScope();
    if (!scope && !body) return undefined;
    const model = typeof body?.model === 'string' ? body.model : GEMINI_MODEL.exec(url.pathname)?.[1];
    const limiter = scope?.limiter ?? resolve(model);
    if (!limiter) return undefined;
    const estimated = estimateCall(body ? [body] : []);
    const estimate = EMBEDDINGS.test(url.pathname) ? { ...estimated, outputTokens: 0 } : estimated;
    let recordId = scope?.takeReservation();
    if (recordId === undefined) {
      const request: TokenRequest = estimate;
      const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
      ({ recordId } = await limiter.acquire(request, { signal: signal ?? undefined, maxWaitMs: options.maxWaitMs }));
    }
    return { limiter, recordId, estimate, path: url.pathname };
  };

  const settle = async (attempt: Attempt, usage: ReturnType<typeof usageOfResult>): Promise<void> => {
    const { limiter, recordId, estimate, path } = attempt;
    try {
      if (usage) await limiter.adjust(recordId, actualUsageOf(usage, estimate));
      else if (!warned.has(path)) {
        warned.add(path);
        logger.warn(`${path}: the response carries no usage this library recognises, so the estimate stays charged`);
      }
    } catch (error) {
      logger.error(`could not adjust ${recordId} to the real usage of ${path}, so the estimate stays charged: ${String(error)}`);
    }
  };

  const refused = async (attempt: Attempt, response: Response): Promise<void> => {
    const { limiter, recordId } = attempt;
    const text = await response
      .clone()
      .text()
      .catch(() => '');
    try {
      // The pause first: the SDK's retry must find admissions paused everywhere.
      await limiter.observe(response.headers, { status: response.status, body: text });
      await limiter.release(recordId, { reachedProvider: true });
    } catch (error) {
      logger.error(`could not report the ${response.status} answer to ${recordId}: ${String(error)}`);
    }
  };

  const answered = async (attempt: Attempt, response: Response): Promise<Response> => {
    try {
      await attempt.limiter.observe(response.headers);
    } catch (error) {
      logger.error(`could not read the rate-limit headers of ${attempt.path}: ${String(error)}`);
    }
    if (!response.body) {
      await settle(attempt, undefined);
      return response;
    }
    const init = { status: response.status, statusText: response.statusText, headers: response.headers };
    let replaced: Response;
    if ((response.headers.get('content-type') ?? '').includes('text/event-stream')) {
      const state = newStreamState();
      const body = observeEventStream(
        response.body,
        (event) => readStreamEvent(event, state),
        (how) => {
          const usage = streamedUsage(state, how === 'done');
          // Stopped early with nothing readable: what the provider produced is unknown, so the
          // estimate stays charged rather than a guess freeing capacity.
          if (usage || how === 'done') void settle(attempt, usage);
        },
      );
      replaced = new Response(body, init);
    } else {
      const text = await response.text();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      await settle(attempt, usageOfResult(parsed));
      replaced = new Response(text, init);
    }
    Object.defineProperty(replaced, 'url', { value: response.url });
    return replaced;
  };

  return async function limitedFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    if (typeof input !== 'string' && !(input instanceof URL) && !(input instanceof Request)) {
      throw new RateLimitConfigError(`the limited fetch takes a URL, a string or a Request, got ${typeof input}`);
    }
    const attempt = await start(input, init);
    if (!attempt) return send(input, init);
    let response: Response;
    try {
      response = await send(input, init);
    } catch (error) {
      // No answer: whether it reached the provider is unknown; a retry reserves anew.
      await attempt.limiter
        .release(attempt.recordId)
        .catch((cause: unknown) => logger.error(`could not release ${attempt.recordId}: ${String(cause)}`));
      throw error;
    }
    if (response.status >= 400) {
      await refused(attempt, response);
      return response;
    }
    return answered(attempt, response);
  };
}
