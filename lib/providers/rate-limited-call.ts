import { InvalidTokenCountError } from '../core/errors.js';
import type { LimiterLogger } from '../core/events.js';
import type { HeaderSource } from './headers.js';
import type { RateLimiter, TokenRequest } from '../core/rate-limiter.js';
import { LlmCallScope, runInCallScope } from './call-scope.js';
import { type DeferredBox, deferredResult } from './deferred-result.js';
import { isHelperStream, watchHelperStream } from './helper-streams.js';
import { awaitWithHeaders, headersOf, isAsyncIterable, isThenable, statusOf } from './sdk-results.js';
import { actualUsageOf } from './settle.js';
import type { RateLimitedCallOptions } from './rate-limited-call.options.js';
import { estimateCall, readStreamEvent, streamedUsage, usageOfResult } from './call-usage.js';
import { type CallEstimate, isRecord, type LlmUsage, mergeUsage, newStreamState, type StreamState } from './llm-usage.js';

type Method = (...args: unknown[]) => unknown;

type StreamEnd = { how: 'done' } | { how: 'stopped' } | { how: 'failed'; error: unknown };

/** One call in flight: its reservation and estimate, and the scope a limited fetch finds. */
interface Call {
  readonly recordId: string;
  readonly estimate: CallEstimate;
  readonly scope: LlmCallScope;
}

/**
 * One decorated method bound to its limiter: runs each call after an acquire and settles it
 * exactly once. When the SDK sends through `createLimitedFetch`, the first HTTP attempt takes
 * the call's reservation and the fetch settles every attempt; otherwise the call is settled
 * here, from its result and the final response's headers.
 */
export class RateLimitedCall {
  private warnedNoUsage = false;

  constructor(
    private readonly limiter: RateLimiter,
    private readonly options: RateLimitedCallOptions,
    /** `Class.method`, for messages. */
    readonly label: string,
    private readonly logger: LimiterLogger,
  ) {}

  get model(): string {
    return this.limiter.model;
  }

  /**
   * A call of a method returning a value, a promise (an SDK's `APIPromise`), a helper stream or
   * a (promised) async iterable. Returns at once a stand-in with the result's surface (see
   * `deferredResult`); awaiting it gives the result once the call has been settled.
   */
  run(instance: unknown, method: Method, args: unknown[]): unknown {
    return deferredResult(this.admit(args).then((call) => this.invoke(instance, method, args, call)));
  }

  /** A call of an async generator method: the reservation is made on the first `next()`. */
  async *runGenerator(instance: unknown, method: (...args: unknown[]) => AsyncIterable<unknown>, args: unknown[]): AsyncGenerator<unknown> {
    const call = await this.admit(args);
    let iterator: AsyncIterator<unknown>;
    try {
      iterator = runInCallScope(call.scope, () => method.apply(instance, args)[Symbol.asyncIterator]());
    } catch (error) {
      await this.failed(call, error);
      throw error;
    }
    // Each step runs in the call's scope, so the generator's requests find its reservation.
    yield* this.observe(
      {
        [Symbol.asyncIterator]: () => ({
          next: () => runInCallScope(call.scope, () => iterator.next()),
          return: (v?: unknown) => iterator.return?.(v) ?? Promise.resolve({ done: true as const, value: v }),
        }),
      },
      call,
    );
  }

  private async admit(args: unknown[]): Promise<Call> {
    const { request, estimate } = this.requestOf(args);
    const acquireOptions = this.options.maxWaitMs === undefined ? {} : { maxWaitMs: this.options.maxWaitMs };
    const { recordId } = await this.limiter.acquire(request, acquireOptions);
    return { recordId, estimate, scope: new LlmCallScope(this.limiter, recordId) };
  }

  private async invoke(instance: unknown, method: Method, args: unknown[], call: Call): Promise<DeferredBox> {
    let value: unknown;
    try {
      value = runInCallScope(call.scope, () => method.apply(instance, args));
    } catch (error) {
      await this.failed(call, error);
      throw error;
    }
    if (isThenable(value)) return { target: value, awaited: await this.settleAwaited(value, call) };
    if (isHelperStream(value)) {
      this.watchHelper(value, call);
      return { target: value, awaited: value };
    }
    if (isAsyncIterable(value)) {
      const stream = this.streamed(value, call);
      return { target: stream, awaited: stream };
    }
    await this.settle(call, this.usageOf(value));
    return { target: value, awaited: value };
  }

  /** A promised result: settled (or its stream set to settle) before the caller sees it. */
  private async settleAwaited(value: PromiseLike<unknown>, call: Call): Promise<unknown> {
    let result: { data: unknown; headers?: HeaderSource };
    try {
      result = await awaitWithHeaders(value);
    } catch (error) {
      await this.failed(call, error);
      throw error;
    }
    const { data, headers } = result;
    // A limited fetch saw the request: it has observed and settled every attempt.
    if (call.scope.seenByFetch) return data;
    if (headers) {
      try {
        await this.limiter.observe(headers);
      } catch (error) {
        this.logger.error(`${this.label}: could not read the response's rate-limit headers: ${String(error)}`);
      }
    }
    if (isHelperStream(data)) {
      this.watchHelper(data, call);
      return data;
    }
    if (isAsyncIterable(data)) return this.streamed(data, call);
    await this.settle(call, this.usageOf(data));
    return data;
  }

  private usageOf(result: unknown): LlmUsage | undefined {
    return this.options.usage ? this.options.usage(result) : usageOfResult(result);
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
      throw new InvalidTokenCountError(
        `@RateLimitLlm() on ${this.label}: ${name}() must return a non-negative integer, got ${String(value)}`,
      );
    }
    return value;
  }

  /** A helper stream read by the SDK itself: settled from its raw events when it ends. */
  private watchHelper(stream: Parameters<typeof watchHelperStream>[0], call: Call): void {
    const state = newStreamState();
    let chunks = 0;
    watchHelperStream(
      stream,
      (event) => {
        chunks++;
        this.readChunk(event, state);
      },
      (error) => {
        const end: StreamEnd = error === undefined ? { how: 'done' } : { how: 'failed', error };
        void this.settleStream(call, state, end, chunks);
      },
    );
  }

  /**
   * A stream returned by the method: an async generator is replaced by an observing one; any
   * other async iterable (an SDK stream object) keeps its identity and methods, and observes
   * through its own iterator.
   */
  private streamed(result: AsyncIterable<unknown>, call: Call): AsyncIterable<unknown> {
    if (Object.prototype.toString.call(result) === '[object AsyncGenerator]' || !Object.isExtensible(result)) {
      return this.observe(result, call);
    }
    const iterate = result[Symbol.asyncIterator];
    Object.defineProperty(result, Symbol.asyncIterator, {
      configurable: true,
      writable: true,
      value: () => this.observe({ [Symbol.asyncIterator]: () => iterate.call(result) }, call)[Symbol.asyncIterator](),
    });
    return result;
  }

  private async *observe(iterable: AsyncIterable<unknown>, call: Call): AsyncGenerator<unknown> {
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
      await this.settleStream(call, state, end, chunks);
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

  private async settleStream(call: Call, state: StreamState, end: StreamEnd, chunks: number): Promise<void> {
    if (call.scope.seenByFetch) return;
    if (end.how === 'failed' && chunks === 0) return this.failed(call, end.error);
    const usage = streamedUsage(state, end.how === 'done');
    // Stopped early with nothing readable seen: what the provider produced is unknown, so the
    // estimate stays charged rather than a guess freeing capacity.
    if (!usage && end.how !== 'done') return;
    await this.settle(call, usage);
  }

  private async settle(call: Call, usage: LlmUsage | undefined): Promise<void> {
    if (call.scope.seenByFetch) return;
    const { recordId, estimate } = call;
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
    try {
      await this.limiter.adjust(recordId, actualUsageOf(usage, estimate));
    } catch (error) {
      // The provider call succeeded; its result matters more than the correction.
      this.logger.error(`${this.label}: could not adjust ${recordId} to the real usage, so the estimate stays charged: ${String(error)}`);
    }
  }

  /**
   * The call threw. A limited fetch has settled every attempt it saw. Otherwise, an error with
   * an HTTP status came from the provider, which counts some failed calls (the limiter's
   * provider profile decides); anything else never reached it and its reservation is given
   * back. A 429 also pauses every process, unless its body is a billing refusal.
   */
  private async failed(call: Call, error: unknown): Promise<void> {
    if (call.scope.seenByFetch) return;
    const status = statusOf(error);
    try {
      if (status !== undefined && status >= 400) {
        const body = isRecord(error) || error instanceof Error ? (error as { error?: unknown }).error : undefined;
        await this.limiter.observe(headersOf(error), { status, body });
      }
      await this.limiter.release(call.recordId, { reachedProvider: status !== undefined });
    } catch (cause) {
      this.logger.error(
        `${this.label}: could not release ${call.recordId} after the call failed; it frees when its window passes: ${String(cause)}`,
      );
    }
  }
}
