import { isThenable } from './sdk-results.js';

/**
 * What a limited call returns before the call itself exists: the SDK's object is made only once
 * the call is admitted, yet the caller wants its surface at once (`await`, `withResponse()`,
 * `on('text', ...)`, `finalMessage()`, `for await`). `target` is the SDK's object, `awaited`
 * what awaiting it gives (the object itself when it is no promise).
 */
export interface DeferredBox {
  readonly target: unknown;
  readonly awaited: unknown;
}

function member(target: unknown, key: string): (...args: unknown[]) => unknown {
  const value = target === null || target === undefined ? undefined : (target as Record<string, unknown>)[key];
  if (typeof value !== 'function')
    throw new TypeError(`${key} is not a function of the call's result (${Object.prototype.toString.call(target)})`);
  return value as (...args: unknown[]) => unknown;
}

/**
 * A thenable standing for the SDK's object: `then`/`catch`/`finally` settle with what awaiting
 * the object gives; any method called on it is called on the object once it exists, and returns
 * another such stand-in (so `stream.on('text', f).on('end', g)` chains, and
 * `await call().withResponse()` gives what the SDK's `withResponse()` gives); `for await`
 * iterates the object. Derived promises are made on demand, so a rejection nobody asked about
 * is not reported twice.
 */
export function deferredResult(ready: Promise<DeferredBox>): unknown {
  const awaited = () => ready.then((box) => box.awaited);
  const handler: ProxyHandler<object> = {
    get(_target, key) {
      if (key === 'then')
        return (onFulfilled?: (v: unknown) => unknown, onRejected?: (e: unknown) => unknown) => awaited().then(onFulfilled, onRejected);
      if (key === 'catch') return (onRejected?: (e: unknown) => unknown) => awaited().catch(onRejected);
      if (key === 'finally') return (onFinally?: () => void) => awaited().finally(onFinally);
      if (key === Symbol.asyncIterator) {
        return async function* () {
          const box = await ready;
          const iterable = (
            typeof (box.target as AsyncIterable<unknown>)?.[Symbol.asyncIterator] === 'function' ? box.target : box.awaited
          ) as AsyncIterable<unknown>;
          yield* iterable;
        };
      }
      if (typeof key === 'symbol') return undefined;
      return (...args: unknown[]) =>
        deferredResult(
          ready.then(async (box) => {
            const result = member(box.target, key).apply(box.target, args);
            return { target: result, awaited: isThenable(result) ? await result : result };
          }),
        );
    },
  };
  return new Proxy({}, handler);
}
