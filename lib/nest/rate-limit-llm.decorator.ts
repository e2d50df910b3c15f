import { RateLimitConfigError } from '../core/errors.js';
import { RateLimitLlmNotBoundError } from './errors/rate-limit-llm-not-bound.error.js';
import { boundCall } from './rate-limit-llm.binding.js';
import type { RateLimitLlmMetadata, RateLimitLlmOptions } from './rate-limit-llm.options.js';

/** Metadata key of `@RateLimitLlm()`, read by the explorer from the installed wrapper. */
export const RATE_LIMIT_LLM_METADATA = 'llm-rate-limiter:rate-limit-llm';

const FUNCTIONS = ['tokens', 'inputTokens', 'outputTokens', 'usage'] as const;
const KNOWN = new Set<string>(['model', 'maxWaitMs', ...FUNCTIONS]);

function checkOptions(options: RateLimitLlmOptions, label: string): void {
  if (options === null || typeof options !== 'object') {
    throw new RateLimitConfigError(
      `@RateLimitLlm() on ${label} takes an options object such as { model: 'gpt-4o' }, got ${String(options)}`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key))
      throw new RateLimitConfigError(`@RateLimitLlm() on ${label}: ${key} is not an option; known options: ${[...KNOWN].join(', ')}`);
  }
  if (options.model !== undefined && (typeof options.model !== 'string' || options.model.length === 0)) {
    throw new RateLimitConfigError(`@RateLimitLlm() on ${label}: model must be a configured model's name, got ${String(options.model)}`);
  }
  for (const name of FUNCTIONS) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new RateLimitConfigError(
        `@RateLimitLlm() on ${label}: ${name} must be a function of the method's ${name === 'usage' ? 'result' : 'arguments'}, got ${typeof options[name]}`,
      );
    }
  }
  if (options.tokens && (options.inputTokens || options.outputTokens)) {
    throw new RateLimitConfigError(`@RateLimitLlm() on ${label}: give either tokens or inputTokens/outputTokens, not both`);
  }
  const { maxWaitMs } = options;
  if (maxWaitMs !== undefined && (typeof maxWaitMs !== 'number' || !Number.isFinite(maxWaitMs) || maxWaitMs < 0)) {
    throw new RateLimitConfigError(`@RateLimitLlm() on ${label}: maxWaitMs must be a non-negative number of ms, got ${String(maxWaitMs)}`);
  }
}

function notBound(label: string, instance: unknown): RateLimitLlmNotBoundError {
  const why =
    instance === undefined || instance === null
      ? 'it was called without its instance (pass it as () => service.method(...) or bind it)'
      : 'no limiter is bound to this instance: Nest did not create it, it is request-scoped, or the application has not been initialised (call app.init() or app.listen())';
  return new RateLimitLlmNotBoundError(`${label} is decorated with @RateLimitLlm() but ${why}; the call was not made.`);
}

const AsyncGeneratorFunction = (Object.getPrototypeOf(async function* () {}) as { constructor: new (...args: never[]) => unknown })
  .constructor;

/**
 * Limits every call of a provider method or controller route by the model's limits: reserves
 * before the call (waiting for the slot), settles to the real usage after it (for a streamed
 * result, when the stream ends), and releases the reservation when the call throws before
 * reaching the provider. The method returns at once a stand-in for what it returns: awaiting
 * it gives the result once the call is settled, and the SDK's own methods work on it
 * (`withResponse()`, a helper stream's `on()` and `finalMessage()`, `for await`). An async
 * generator method stays an async generator. With `createLimitedFetch` as the SDK's `fetch`,
 * the first HTTP attempt uses the call's reservation and every retry is limited too.
 *
 * The wrapper is installed on the prototype when the class is defined (so routes, which Nest
 * captures before `onModuleInit`, use it too); the module binds the limiter at bootstrap and
 * fails on an unknown model. A call on an instance with nothing bound throws.
 *
 * @example
 * @RateLimitLlm({ model: 'gpt-4o' })
 * complete(body: ChatCompletionCreateParams) { return this.openai.chat.completions.create(body); }
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- as in RateLimitLlmOptions: without type arguments, any method's options
export function RateLimitLlm<Args extends unknown[] = any[], Result = any>(
  options: RateLimitLlmOptions<Args, Result> = {},
): MethodDecorator {
  return (target, key, descriptor) => {
    const owner = typeof target === 'function' ? target.name : target.constructor.name;
    const label = `${owner}.${String(key)}`;
    checkOptions(options as RateLimitLlmOptions, label);
    const original: unknown = descriptor.value;
    if (typeof original !== 'function') throw new RateLimitConfigError(`@RateLimitLlm() goes on a method; ${label} is not one`);
    if (Reflect.hasOwnMetadata(RATE_LIMIT_LLM_METADATA, original)) {
      throw new RateLimitConfigError(`@RateLimitLlm() is applied to ${label} twice; each call is limited once, so keep one`);
    }
    // Bindings are keyed by this metadata object, which travels with the wrapper when another
    // decorator wraps it in turn and copies its metadata.
    const metadata: RateLimitLlmMetadata = { options: options as RateLimitLlmOptions, label };
    const wrapper: (this: unknown, ...args: unknown[]) => unknown =
      original instanceof AsyncGeneratorFunction
        ? async function* (this: unknown, ...args: unknown[]) {
            const call = boundCall(this, metadata);
            if (!call) throw notBound(label, this);
            yield* call.runGenerator(this, original as (...a: unknown[]) => AsyncIterable<unknown>, args);
          }
        : function (this: unknown, ...args: unknown[]) {
            const call = boundCall(this, metadata);
            if (!call) return Promise.reject(notBound(label, this));
            return call.run(this, original as (...a: unknown[]) => unknown, args);
          };
    // Decorators applied before this one (route, guard, interceptor metadata) wrote onto the
    // original function; Nest reads them from whatever the prototype holds.
    for (const metadataKey of Reflect.getOwnMetadataKeys(original)) {
      Reflect.defineMetadata(metadataKey, Reflect.getOwnMetadata(metadataKey, original), wrapper);
    }
    Object.defineProperty(wrapper, 'name', { value: original.name, configurable: true });
    Reflect.defineMetadata(RATE_LIMIT_LLM_METADATA, metadata, wrapper);
    descriptor.value = wrapper as typeof descriptor.value;
    return descriptor;
  };
}
