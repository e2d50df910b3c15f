import { EventEmitter } from 'node:events';
import { deferredResult } from '../../lib/providers/deferred-result.js';

/** An SDK-like helper: chainable `on`, a promised final value, async iterable. */
class Helper extends EventEmitter {
  final(): Promise<string> {
    return Promise.resolve('final');
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<number> {
    yield 1;
    yield 2;
  }
}

describe('the stand-in for a result made after admission', () => {
  it('chains on() onto the real object and gives its methods results', async () => {
    const helper = new Helper();
    const stand = deferredResult(Promise.resolve({ target: helper, awaited: helper })) as Helper & PromiseLike<Helper>;
    const seen: string[] = [];
    const chained = stand.on('a', (v: string) => seen.push(`a:${v}`)).on('b', (v: string) => seen.push(`b:${v}`));
    await chained;
    helper.emit('a', '1');
    helper.emit('b', '2');
    expect(seen).toEqual(['a:1', 'b:2']);
    expect(await stand.final()).toBe('final');
    expect(await stand).toBe(helper);
  });

  it('iterates the real object with for await', async () => {
    const helper = new Helper();
    const stand = deferredResult(Promise.resolve({ target: helper, awaited: helper })) as AsyncIterable<number>;
    const values: number[] = [];
    for await (const v of stand) values.push(v);
    expect(values).toEqual([1, 2]);
  });

  it('awaits to the awaited value, and calls methods on the promise-like target', async () => {
    const target = Object.assign(Promise.resolve('data'), { withResponse: () => Promise.resolve({ data: 'data', response: 'r' }) });
    const stand = deferredResult(Promise.resolve({ target, awaited: 'data' })) as typeof target;
    expect(await stand).toBe('data');
    expect(await stand.withResponse()).toEqual({ data: 'data', response: 'r' });
  });

  it('rejects every use when the call failed, and names a missing method', async () => {
    const failed = deferredResult(Promise.reject(new Error('admission failed'))) as Helper;
    await expect(failed).rejects.toThrow('admission failed');
    await expect(failed.final()).rejects.toThrow('admission failed');
    const plain = deferredResult(Promise.resolve({ target: {}, awaited: {} })) as Helper;
    await expect(plain.final()).rejects.toThrow(/final is not a function/);
  });
});
