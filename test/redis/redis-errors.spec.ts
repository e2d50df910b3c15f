import { RedisConfigurationError, RedisUnavailableError } from '../../lib/index.js';
import { backoffDelayMs, DEFAULT_RETRY_CONFIG, resolveRetryConfig } from '../../lib/redis/retry.js';
import { classify, CommandDeadlineError, isTransient } from '../../lib/redis/redis-errors.js';

const withCode = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:6379`), { code });

describe('Redis error classification', () => {
  it.each([
    withCode('ECONNREFUSED'),
    withCode('ECONNRESET'),
    withCode('ETIMEDOUT'),
    withCode('EPIPE'),
    new Error('LOADING Redis is loading the dataset in memory'),
    new Error('BUSY Redis is busy running a script'),
    new Error('TRYAGAIN Multiple keys request during rehashing of slot'),
    new Error('CLUSTERDOWN The cluster is down'),
    new Error('ERR CLUSTERDOWN Hash slot not served'),
    new Error('MASTERDOWN Link with MASTER is down'),
    new Error("READONLY You can't write against a read only replica."),
    new Error("OOM command not allowed when used memory > 'maxmemory'."),
    new Error('Connection is closed.'),
    new Error('Too many Cluster redirections. Last error: Error: Connection is closed.'),
    Object.assign(new Error('Reached the max retries per request limit (which is 0).'), { name: 'MaxRetriesPerRequestError' }),
    new CommandDeadlineError('acquire', 500),
    // an error from another realm: recognised by shape
    { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' },
  ])('retries %p', (error) => {
    expect(isTransient(error)).toBe(true);
    expect(classify('acquire', error, 4)).toBeInstanceOf(RedisUnavailableError);
  });

  it.each([
    new Error('WRONGPASS invalid username-password pair or user is disabled.'),
    new Error('NOAUTH Authentication required.'),
    new Error("NOPERM User x has no permissions to run the 'time' command"),
    new Error("CROSSSLOT Keys in request don't hash to the same slot"),
    new Error('ERR Error running script (call to f_x): @user_script:1: Script attempted to access nonexistent global variable'),
    new Error("ERR unknown command 'EVALSHA'"),
    Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
    'a string',
  ])('fails at once on %p', (error) => {
    expect(isTransient(error)).toBe(false);
    const classified = classify('acquire', error, 1);
    expect(classified).toBeInstanceOf(RedisConfigurationError);
    expect(classified.message).toMatch(/acquire: Redis refused the call/);
  });
});

describe('retry backoff', () => {
  it('grows exponentially from the base delay up to the cap, varied by the jitter', () => {
    const config = resolveRetryConfig({ baseDelayMs: 100, maxDelayMs: 1000, exponentialBase: 2, jitter: 0.1 });
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffDelayMs(config, n, () => 0.5))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelayMs(config, 0, () => 0)).toBeCloseTo(90);
    expect(backoffDelayMs(config, 0, () => 1)).toBeCloseTo(110);
  });

  it('uses the documented defaults', () => {
    expect(resolveRetryConfig()).toEqual({ maxRetries: 3, baseDelayMs: 100, maxDelayMs: 5000, exponentialBase: 2, jitter: 0.1 });
    expect(DEFAULT_RETRY_CONFIG).toEqual(resolveRetryConfig({}));
  });
});
