import { InvalidTokenCountError } from '../core/errors.js';
import type { LimiterLogger } from '../core/events.js';
import type { HeaderSource } from '../core/provider-headers.js';
import type { ActualUsage, RateLimiter, TokenRequest } from '../core/rate-limiter.js';
import type { RateLimitLlmOptions } from './rate-limit-llm.decorator.js';
import { estimateCall, readStreamEvent, streamedUsage, usageOfResult } from './usage/call-usage.js';
import { type CallEstimate, isRecord, type LlmUsage, mergeUsage, newStreamState, type StreamState } from './usage/llm-usage.js';

type Method = (...args: unknown[]) => unknown;

/** The HTTP status of a provider SDK's error (OpenAI, Anthropic, Google Gen AI, fetch-style). */
function statusOf(error: unknown): number | undefined {
  if (!isRecord(error) && !(error instanceof Error)) return undefined;
  const e = error as Record<string, unknown>;
  const response = isRecord(e.response) ? e.response : {};
  const status = [e.status, e.statusCode, response.status].find((s) => typeof s === 'number' && s >= 100 && s < 600);
  return status as number | undefined;
}

function headersOf(error: unknown): HeaderSource {
  const e = error as Record<string, unknown>;
  const response = isRecord(e.response) ? e.response : {};
  const headers = e.headers ?? response.headers;
  return headers !== null && typeof headers === 'object' ? (headers as HeaderSource) : {};
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

type StreamEnd = { how: 'done' } | { how: 'stopped' } | { how: 'failed'; error: unknown };

/**
 * One decorated method bound to its limiter: runs each call between an acquire and the
 * matching adjust (or release), exactly once per call.
 */
export class RateLimitedCall {
  private warnedNoUsage = false;

  constructor(
    private readonly limiter: RateLimiter,
    private readonly options: RateLimitLlmOptions,
    /** `Class.method`, for messages. */
    readonly label: string,
    private readonly logger: LimiterLogger,
  ) {}

  get model(): string {
    return this.limiter.model;
  }

  /** A call of a method returning a value, a promise, or a (promised) async iterable. */
  async run(instance: unknown, method: Method, args: unknown[]): Promise<unknown> {
    const { request, estimate } = this.requestOf(args);
    const { recordId } = await this.limiter.acquire(request, this.acquireOptions());
    let result: unknown;
    try {
      result = await method.apply(instance, args);
    } catch (error) {
      await this.failed(recordId, error);
      throw error;
    }
    if (isAsyncIterable(result)) return this.streamed(result, recordId, estimate);
    await this.settle(recordId, this.options.usage ? this.options.usage(result) : usageOfResult(result), estimate);
    return result;
  }

  /** A call of an async generator method: the reservation is made on the first `next()`. */
  async *runGenerator(instance: unknown, method: (...args: unknown[]) => AsyncIterable<unknown>, args: unknown[]): AsyncGenerator<unknown> {
    const { request, estimate } = this.requestOf(args);
    const { recordId } = await this.limiter.acquire(request, this.acquireOptions());
    let iterable: AsyncIterable<unknown>;
    try {
      iterable = method.apply(instance, args);
    } catch (error) {
      await this.failed(recordId, error);
      throw error;
    }
    yield* this.observe(iterable, recordId, estimate);
  }

  private acquireOptions() {
    return this.options.maxWaitMs === undefined ? {} : { maxWaitMs: this.options.maxWaitMs };
  }

  private requestOf(args: unknown[]): { request: TokenRequest; estimate: CallEstimate } {
    const { tokens, inputTokens, outputTokens } = this.options;
    if (tokens) {
      const count = this.checked(tokens(...args), 'tokens');
      return { request: { tokens: count }, estimate: { inputTokens: count, outputTokens: 0 } };
    }
    const auto = inputTokens && outputTokens ? undefined : estimateCall(args);
    const estimate = {
      inputTokens: inputTokens ? this.checked(inputTokens(...args), 'inputTokens') : auto!.inputTokens,
      outputTokens: outputTokens ? this.checked(outputTokens(...args), 'outputTokens') : auto!.outputTokens,
    };
    return { request: estimate, estimate };
  }

  private checked(value: unknown, name: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new InvalidTokenCountError(`@RateLimitLlm() on ${this.label}: ${name}() must return a non-negative integer, got ${String(value)}`);
    }
    return value;
  }

  /**
   * A stream returned by the method: an async generator is replaced by an observing one; any
   * other async iterable (an SDK stream object) keeps its identity and methods, and observes
   * through its own iterator.
   */
  private streamed(result: AsyncIterable<unknown>, recordId: string, estimate: CallEstimate): AsyncIterable<unknown> {
    if (Object.prototype.toString.call(result) === '[object AsyncGenerator]' || !Object.isExtensible(result)) {
      return this.observe(result, recordId, estimate);
    }
    const iterate = result[Symbol.asyncIterator];
    Object.defineProperty(result, Symbol.asyncIterator, {
      configurable: true,
      writable: true,
      value: () => this.observe({ [Symbol.asyncIterator]: () => iterate.call(result) }, recordId, estimate)[Symbol.asyncIterator](),
    });
    return result;
  }

  private async *observe(iterable: AsyncIterable<unknown>, recordId: string, estimate: CallEstimate): AsyncGenerator<unknown> {
    const state = newStreamState();
    let chunks = 0;
    let end: StreamEnd = { how: 'stopped' };
    try {
      for await (const chunk of iterable) {
        chunks++;
        this.readChunk(chunk, state);
        yield chunk;
      }
      end = { how: 'done' };
    } catch (error) {
      end = { how: 'failed', error };
      throw error;
    } finally {
      await this.settleStream(recordId, state, estimate, end, chunks);
    }
  }

  private readChunk(chunk: unknown, state: StreamState): void {
    if (this.options.usage) {
      const usage = this.options.usage(chunk);
      if (usage) {
        mergeUsage(state, usage);
        state.recognised = true;
      }
    } else {
      readStreamEvent(chunk, state);
    }
  }

  private async settleStream(recordId: string, state: StreamState, estimate: CallEstimate, end: StreamEnd, chunks: number): Promise<void> {
    if (end.how === 'failed' && chunks === 0) return this.failed(recordId, end.error);
    const usage = streamedUsage(state, end.how === 'done');
    // Stopped early with nothing readable seen: what the provider produced is unknown, so the
    // estimate stays charged rather than a guess freeing capacity.
    if (!usage && end.how !== 'done') return;
    await this.settle(recordId, usage, estimate);
  }

  private async settle(recordId: string, usage: LlmUsage | undefined, estimate: CallEstimate): Promise<void> {
    if (!usage) {
      if (!this.warnedNoUsage) {
        this.warnedNoUsage = true;
        this.logger.warn(
          `${this.label}: the result carries no usage this library recognises, so the estimate stays charged; ` +
            'pass @RateLimitLlm({ usage: (result) => ({ input, output }) })',
        );
      }
      return;
    }
    const actual: ActualUsage = {
      actualOutput: usage.output ?? estimate.outputTokens,
      actualInput: usage.input,
      actualCacheRead: usage.cacheRead,
      actualCacheWrite: usage.cacheWrite,
    };
    try {
      await this.limiter.adjust(recordId, actual);
    } catch (error) {
      // The provider call succeeded; its result matters more than the correction.
      this.logger.error(`${this.label}: could not adjust ${recordId} to the real usage, so the estimate stays charged: ${String(error)}`);
    }
  }

  /**
   * The call threw. An error with an HTTP status came from the provider, which counts some
   * failed calls (the limiter's provider profile decides); anything else never reached it and
   * its reservation is given back. A 429 also pauses every process (see `observe`).
   */
  private async failed(recordId: string, error: unknown): Promise<void> {
    const status = statusOf(error);
    try {
      await this.limiter.release(recordId, { reachedProvider: status !== undefined });
      if (status === 429 || status === 529) await this.limiter.observe(headersOf(error), { status });
    } catch (cause) {
      this.logger.error(`${this.label}: could not release ${recordId} after the call failed; it frees when its window passes: ${String(cause)}`);
    }
  }
}
