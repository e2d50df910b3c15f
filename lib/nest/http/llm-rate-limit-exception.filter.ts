import { type ArgumentsHost, Catch, type ExceptionFilter, HttpStatus, Injectable, Optional } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { AcquireTimeoutError, RateLimitConfigError, RedisUnavailableError, RequestTooLargeError } from '../../core/errors.js';

/** The JSON body the filter answers with. */
export interface LlmRateLimitErrorBody {
  readonly statusCode: number;
  /** The HTTP reason phrase. */
  readonly error: string;
  /** What happened, for a person reading the response. */
  readonly message: string;
  /** 429 only: the `Retry-After` header's value. */
  readonly retryAfterSeconds?: number;
  /** 413 only: the limit the request can never fit (`tpm`, `inputTpm`, `outputTpm`), what it needs and what the limit allows. */
  readonly limit?: { readonly name: string; readonly requested: number; readonly allowed: number };
}

/** The response for one of the limiter's errors: status, headers and body. */
export interface LlmRateLimitErrorResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: LlmRateLimitErrorBody;
}

type LimiterHttpError = AcquireTimeoutError | RequestTooLargeError | RedisUnavailableError;

/**
 * How the filter answers each error. `Retry-After` is the limiter's estimate of when a request
 * enqueued now could be admitted, rounded up to whole seconds and at least 1 (the limiter has
 * just refused: an immediate retry would only be refused again).
 */
export function llmRateLimitErrorResponse(error: LimiterHttpError): LlmRateLimitErrorResponse {
  if (error instanceof AcquireTimeoutError) {
    const retryAfterSeconds = Math.max(1, Math.ceil(error.estimatedWaitMs / 1000));
    return {
      status: HttpStatus.TOO_MANY_REQUESTS,
      headers: { 'Retry-After': String(retryAfterSeconds) },
      body: { statusCode: HttpStatus.TOO_MANY_REQUESTS, error: 'Too Many Requests', message: error.message, retryAfterSeconds },
    };
  }
  if (error instanceof RequestTooLargeError) {
    return {
      status: HttpStatus.PAYLOAD_TOO_LARGE,
      headers: {},
      body: {
        statusCode: HttpStatus.PAYLOAD_TOO_LARGE,
        error: 'Payload Too Large',
        message: error.message,
        limit: { name: error.limitName, requested: error.requested, allowed: error.limit },
      },
    };
  }
  // The cause names Redis hosts and addresses, which are no business of an HTTP client.
  return {
    status: HttpStatus.SERVICE_UNAVAILABLE,
    headers: {},
    body: {
      statusCode: HttpStatus.SERVICE_UNAVAILABLE,
      error: 'Service Unavailable',
      message: 'the rate limiter cannot reach its shared store, and calls are refused until it can (failureMode: closed); try again later',
    },
  };
}

/**
 * Answers the limiter's errors over HTTP instead of letting them become 500s:
 * `AcquireTimeoutError` as 429 with `Retry-After`, `RequestTooLargeError` as 413 and
 * `RedisUnavailableError` (`failureMode: 'closed'`) as 503, each with a JSON body. Other errors
 * never reach it. Replies through Nest's HTTP adapter, so Express and Fastify alike.
 *
 * @example
 * providers: [{ provide: APP_FILTER, useClass: LlmRateLimitExceptionFilter }]
 * // or: app.useGlobalFilters(new LlmRateLimitExceptionFilter(app.get(HttpAdapterHost)))
 */
@Catch(AcquireTimeoutError, RequestTooLargeError, RedisUnavailableError)
@Injectable()
export class LlmRateLimitExceptionFilter implements ExceptionFilter<LimiterHttpError> {
  constructor(@Optional() private readonly adapterHost?: HttpAdapterHost) {}

  catch(error: LimiterHttpError, host: ArgumentsHost): void {
    // WebSocket and microservice contexts have no HTTP response to write.
    if (host.getType() !== 'http') throw error;
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter) {
      throw new RateLimitConfigError(
        'LlmRateLimitExceptionFilter needs the HTTP adapter: register it as { provide: APP_FILTER, useClass: LlmRateLimitExceptionFilter }, ' +
          'or pass it: new LlmRateLimitExceptionFilter(app.get(HttpAdapterHost))',
        { cause: error },
      );
    }
    const response: unknown = host.switchToHttp().getResponse();
    const { status, headers, body } = llmRateLimitErrorResponse(error);
    for (const [name, value] of Object.entries(headers)) adapter.setHeader(response, name, value);
    adapter.reply(response, body, status);
  }
}
