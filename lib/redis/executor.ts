import { backoffDelayMs, type ResolvedRetryConfig } from './retry.js';
import {
  classify,
  CommandDeadlineError,
  ConnectionDownError,
  isTransient,
  ManagerClosedError,
  ReplyOutOfStepError,
} from './redis-errors.js';
import type { RedisClient } from './scripts.js';

export interface ExecutorOptions {
  readonly retry: ResolvedRetryConfig;
  /** Deadline of one attempt, ms, waiting for a connection included. */
  readonly commandTimeoutMs: number;
}

/**
 * The longest one operation may take, ms, from its caller's call to its settling: every attempt
 * at its full deadline and every backoff delay at its longest (with the default retry config,
 * 4 x 500 ms + (100 + 200 + 400) x 1.1 = 2,770 ms). Time queued in this process counts too.
 */
export function operationBudgetMs(options: ExecutorOptions): number {
  const { retry, commandTimeoutMs } = options;
  let total = (retry.maxRetries + 1) * commandTimeoutMs;
  for (let attempt = 0; attempt < retry.maxRetries; attempt++) {
    total += Math.min(retry.maxDelayMs, retry.baseDelayMs * retry.exponentialBase ** attempt) * (1 + retry.jitter);
  }
  return Math.ceil(total);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `work`'s outcome, or CommandDeadlineError once `timeoutMs` pass (one promise, one timer: hot path). */
function withDeadline<T>(work: Promise<T>, operation: string, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CommandDeadlineError(operation, Math.round(timeoutMs))), Math.max(0, timeoutMs));
    // A reply that comes after the deadline settles nothing, and a failure then is not unhandled.
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: Error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** One wait per connecting client, however many calls wait for it. */
const connecting = new WeakMap<RedisClient, Promise<void>>();

function waitForConnection(client: RedisClient, lastError: () => unknown): Promise<void> {
  let waiting = connecting.get(client);
  if (waiting) return waiting;
  waiting = new Promise<void>((resolve, reject) => {
    const onReady = () => {
      done();
      resolve();
    };
    const onFail = (error?: unknown) => {
      done();
      // An auth, ACL or TLS failure while connecting is the cause, not a passing condition, even
      // when the event that ended the wait was only the connection closing after it.
      const seen = [error, lastError()];
      const cause = seen.find((e) => e !== undefined && !isTransient(e)) ?? seen.find((e) => e !== undefined);
      // What ioredis emits as a connection's error is an Error.
      reject(cause !== undefined && !isTransient(cause) ? (cause as Error) : new ConnectionDownError(client.status, cause));
    };
    const onDown = () => onFail();
    const done = () => {
      connecting.delete(client);
      client.off('ready', onReady);
      client.off('error', onFail);
      client.off('close', onDown);
      client.off('end', onDown);
      client.off('reconnecting', onDown);
    };
    client.once('ready', onReady);
    client.once('error', onFail);
    // A Cluster that fails to connect goes to 'close' and then 'reconnecting' or 'end'; a single
    // connection emits 'close' before either as well.
    client.once('close', onDown);
    client.once('end', onDown);
    client.once('reconnecting', onDown);
  });
  // Settled by every waiter's own handler; this one only keeps an unobserved failure quiet.
  waiting.catch(() => undefined);
  connecting.set(client, waiting);
  return waiting;
}

/**
 * Resolves when the client can take a command. A client still making its first connection (or,
 * for a Cluster, still loading its slot map and checking the cluster state) is waited for,
 * within the attempt's deadline; one that lost its connection fails at once, so a command never
 * sits in an offline queue to be replayed late.
 */
function whenReady(client: RedisClient, lastError: () => unknown): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'wait') client.connect().catch(() => undefined);
  switch (client.status) {
    case 'wait':
    case 'connecting':
    case 'connect':
      return waitForConnection(client, lastError);
    default: {
      // 'reconnecting', 'close', 'disconnecting', 'end' (Redis and Cluster alike).
      const cause = lastError();
      return Promise.reject(cause !== undefined && !isTransient(cause) ? (cause as Error) : new ConnectionDownError(client.status, cause));
    }
  }
}

/**
 * Runs Redis calls with the limiter's own deadline and retry policy, whatever the client's
 * options: transient failures are retried with exponential backoff and jitter, then surface as
 * `RedisUnavailableError`; anything else surfaces at once as `RedisConfigurationError`. One
 * operation never outlasts its deadline (`operationBudgetMs` after its caller called, unless the
 * caller gives an earlier one): no retry starts that could not finish before it.
 *
 * A connection that stays open but does not answer within an attempt's deadline, or answers out
 * of step (a reply that cannot belong to the command), is handed to `retire`, which closes it:
 * the next attempt gets a fresh one instead of waiting behind a dead or garbled stream.
 */
export class RedisExecutor {
  /** See `operationBudgetMs`. */
  readonly budgetMs: number;
  /** Deadline of one attempt, ms. */
  readonly attemptMs: number;

  constructor(
    private readonly pick: () => RedisClient,
    private readonly options: ExecutorOptions,
    private readonly lastError: () => unknown = () => undefined,
    private readonly retire: (client: RedisClient) => void = () => undefined,
  ) {
    this.budgetMs = operationBudgetMs(options);
    this.attemptMs = options.commandTimeoutMs;
  }

  /**
   * Runs `call` until it succeeds, fails for good, or `deadline` (a `performance.now()` reading;
   * by default `budgetMs` from now) passes.
   */
  async run<T>(operation: string, call: (client: RedisClient) => Promise<T>, deadline = performance.now() + this.budgetMs): Promise<T> {
    const { retry, commandTimeoutMs } = this.options;
    for (let attempt = 0; ; attempt++) {
      let client: RedisClient | undefined;
      // Only a connection that was ready when the command went out and then stayed silent is
      // suspect: one still connecting spent the attempt on its handshake (over a slow link that
      // alone may take longer than an attempt), and replacing it would start that over again.
      let sentReady = false;
      try {
        const left = deadline - performance.now();
        if (left <= 0) throw new CommandDeadlineError(operation, 0);
        client = this.pick();
        const picked = client;
        sentReady = picked.status === 'ready';
        // A ready client takes the command at once, without a turn through whenReady's promise.
        const work = picked.status === 'ready' ? call(picked) : whenReady(picked, this.lastError).then(() => call(picked));
        return await withDeadline(work, operation, Math.min(commandTimeoutMs, left));
      } catch (error) {
        // Open, yet silent for a whole attempt (or garbled): not a connection to wait on again.
        if (
          client &&
          client.status === 'ready' &&
          ((sentReady && error instanceof CommandDeadlineError) || error instanceof ReplyOutOfStepError)
        )
          this.retire(client);
        const pause = backoffDelayMs(retry, attempt);
        const lastChance = attempt >= retry.maxRetries || performance.now() + pause >= deadline;
        if (!isTransient(error) || lastChance || error instanceof ManagerClosedError) {
          throw classify(operation, error, attempt + 1);
        }
        await delay(pause);
      }
    }
  }
}
