import { BUCKETS, MAX_ADMIT, MIN_LEASE_HOLD_MS, OWNER_LEASE_MS, SETTLED_HORIZON_MS } from '../core/store.js';
import type {
  AcquireCommand,
  AcquireReply,
  AdmittedWaiter,
  BackOffCommand,
  BackOffReply,
  Charge,
  ClaimCommand,
  ClaimReply,
  LimiterStore,
  ModelSettings,
  ModelStore,
  ReconcileCommand,
  WindowReading,
  RecordState,
  SettleCommand,
  SettleReply,
  StatusReply,
} from '../core/store.js';
import type { RedisExecutor } from './executor.js';
import { classify, CommandDeadlineError, ReplyOutOfStepError } from './redis-errors.js';
import { modelKeys } from './keys.js';
import { defineScripts, type RedisClient } from './scripts.js';
import { CommandBatcher } from './command-batcher.js';
import { AdmissionNotices } from './admission-notices.js';
import { handBackArgs } from './handback-args.js';

const num = Number;

/** `deadline`: when its caller gives up, a `performance.now()` reading. */
type QueueCommand =
  | { readonly kind: 'A'; readonly settings: ModelSettings; readonly command: AcquireCommand; readonly deadline: number }
  | { readonly kind: 'C'; readonly settings: ModelSettings; readonly command: ClaimCommand; readonly deadline: number }
  | { readonly kind: 'S'; readonly settings: ModelSettings; readonly command: SettleCommand; readonly deadline: number };

type QueueReply = AcquireReply | ClaimReply | SettleReply;

export interface RedisStoreOptions {
  /** Opens the connection admissions are heard on (one per store, subscribed while anyone waits). */
  readonly subscriber?: () => RedisClient;
  /** Epoch ms every script reads instead of the server's TIME: for the differential tests only. */
  readonly clock?: () => number;
}

const limitsOf = (s: ModelSettings) => [s.limits.tokens, s.limits.inputTokens, s.limits.outputTokens, s.limits.requests];
const figures = (r: (string | number)[], at: number): Charge => ({
  tokens: num(r[at]),
  inputTokens: num(r[at + 1]),
  outputTokens: num(r[at + 2]),
  requests: num(r[at + 3]),
});

/** The settings argument of lua/queue.lua up to its last field (the clock), per settings object. */
const settingsArgs = new WeakMap<ModelSettings, string>();

function settingsArg(s: ModelSettings): string {
  let text = settingsArgs.get(s);
  if (text === undefined) {
    const tokenBucket = s.algorithm === 'token-bucket';
    const l = s.limits;
    // One argument for the settings (see the script's header): every argument costs on both sides.
    text =
      `${tokenBucket ? 'b' : 'w'}|${s.windowMs}|${BUCKETS}|${tokenBucket ? s.bucketMs : s.paceMs}|` +
      `${l.tokens}|${l.inputTokens}|${l.outputTokens}|${l.requests}|${s.learn?.maxFactor ?? 0}|${s.learn?.increasePerWindow ?? 0}|` +
      `${SETTLED_HORIZON_MS}|${OWNER_LEASE_MS}|${MAX_ADMIT}|`;
    settingsArgs.set(s, text);
  }
  return text;
}

/**
 * The arguments of lua/queue.lua for one batch of one model's commands. `serverDeadline` turns
 * a caller's deadline into server epoch ms (-1 while the server's clock is not known yet).
 */
function queueArgs(
  batch: readonly QueueCommand[],
  channel: string,
  clock: number,
  serverDeadline: (deadline: number, acquire: boolean) => number,
): (string | number)[] {
  const args: (string | number)[] = [settingsArg(batch[0].settings) + clock, channel, batch.length];
  for (const q of batch) {
    if (q.kind === 'A') {
      const c = q.command;
      args.push(
        'A',
        c.opId,
        c.owner,
        c.cost.tokens,
        c.cost.inputTokens,
        c.cost.outputTokens,
        c.cost.requests,
        c.maxWaitMs,
        c.deadlineMs ?? serverDeadline(q.deadline, true),
      );
    } else if (q.kind === 'C') {
      // Its deadline ends the owner's lease: its waiters cannot be admitted once it gave up.
      args.push('C', q.command.owner, serverDeadline(q.deadline, false), q.command.opIds.length, ...q.command.opIds);
    } else {
      const c = q.command;
      const to = c.to ?? { tokens: 0, inputTokens: 0, outputTokens: 0 };
      args.push('S', c.opId, c.mode, c.refunds ? 1 : 0, to.tokens, to.inputTokens, to.outputTokens);
    }
  }
  return args;
}

/**
 * Reads lua/queue.lua's reply (its fields joined by '|') back into one reply per command; a
 * reply of another shape belongs to another command (the stream lost bytes) and is refused.
 */
function parseQueueReply(operation: string, batch: readonly QueueCommand[], reply: unknown): QueueReply[] {
  if (typeof reply !== 'string') throw new ReplyOutOfStepError(operation, 'not a queue reply');
  const r = reply.split('|');
  if (r.length < 9 || !Number.isFinite(num(r[0]))) throw new ReplyOutOfStepError(operation, 'not a queue reply');
  // The reading of the state closes the reply (5 fields).
  const end = r.length - 5;
  const window: WindowReading = { used: figures(r, end), instances: num(r[end + 4]) };
  const replies = readQueueReply(batch, r, window);
  if (replies.at !== end) throw new ReplyOutOfStepError(operation, `${r.length} fields for ${batch.length} commands`);
  return replies.replies;
}

function readQueueReply(
  batch: readonly QueueCommand[],
  r: (string | number)[],
  window: WindowReading,
): { replies: QueueReply[]; at: number } {
  const nowMs = num(r[0]);
  const nextCheckMs = num(r[1]);
  const headOwner = String(r[2]);
  const admittedCount = num(r[3]);
  const admitted: AdmittedWaiter[] = [];
  let at = 4;
  for (let k = 0; k < admittedCount; k++, at += 2) admitted.push({ opId: String(r[at]), slotMs: num(r[at + 1]) });
  const replies = batch.map((q): QueueReply => {
    if (q.kind === 'A') {
      // Literal objects, not spreads of `news`: this runs once per acquire on the hot path.
      const reply: AcquireReply = {
        nowMs,
        admitted,
        nextCheckMs,
        headOwner,
        state: r[at] as RecordState,
        slotMs: num(r[at + 1]),
        position: num(r[at + 2]),
        estimateMs: num(r[at + 3]),
        window,
      };
      at += 4;
      return reply;
    }
    if (q.kind === 'C') {
      const count = num(r[at++]);
      const records = [];
      for (let k = 0; k < count; k++, at += 3)
        records.push({ state: r[at] as RecordState, slotMs: num(r[at + 1]), position: num(r[at + 2]) });
      return { nowMs, admitted, nextCheckMs, headOwner, records, window };
    }
    const reply: SettleReply = {
      nowMs,
      admitted,
      nextCheckMs,
      headOwner,
      status: r[at] as SettleReply['status'],
      applied: figures(r, at + 1),
      charged: figures(r, at + 5),
      window,
    };
    at += 9;
    return reply;
  });
  return { replies, at };
}

/**
 * Limiter state in Redis, shared by every process that uses the same server. Acquires, claims
 * and settles of one model are grouped into one script call (lua/queue.lua) while others are in
 * flight; every call is timed by the Redis server's clock.
 */
export class RedisStore implements LimiterStore {
  readonly kind = 'redis' as const;
  private readonly notices: AdmissionNotices | undefined;
  private readonly clock: () => number;
  private readonly testClock: boolean;
  /**
   * Server clock minus this process's, ms, as the last queue reply showed it (server time at
   * the reply, taken as read when it arrived: never more than the true offset, so a deadline
   * converted with it falls early, never late).
   */
  private offsetMs: number | undefined;

  constructor(
    private readonly executor: RedisExecutor,
    options: RedisStoreOptions = {},
  ) {
    this.notices = options.subscriber && new AdmissionNotices(options.subscriber);
    const clock = options.clock;
    this.clock = clock ? () => clock() : () => -1;
    this.testClock = clock !== undefined;
  }

  forModel(model: string, keyPrefix: string): ModelStore {
    const keys = modelKeys(keyPrefix, model);
    const { window, bucket, queue, records, expiry, owners, instances, channel } = keys;
    const run = (operation: string, call: (client: RedisClient) => Promise<string[]>) =>
      this.executor.run(`${operation} ${model}`, (client) => {
        defineScripts(client);
        return call(client);
      });
    const stateOf = (s: ModelSettings) => (s.algorithm === 'token-bucket' ? bucket : window);
    // An attempt's length before the caller gives up: a reply needs time to come back, and one
    // that takes longer is given up as lost anyway.
    // An acquire's deadline leaves an attempt for the reply to come back; a claim's, where its
    // owner's lease ends at most, is leaseHoldMs after it was sent. None on a test's clock.
    const shift = (acquire: boolean) => (acquire ? -this.executor.attemptMs : this.leaseHoldMs - this.executor.budgetMs);
    const serverDeadline = (deadline: number, acquire: boolean) =>
      this.offsetMs === undefined || this.testClock
        ? -1
        : Math.floor(Date.now() + (deadline - performance.now()) + this.offsetMs + shift(acquire));
    const submit = (q: QueueCommand): Promise<QueueReply> => batcher.submit(q, q.deadline);
    const due = () => performance.now() + this.executor.budgetMs;
    const batcher: CommandBatcher<QueueCommand, QueueReply> = new CommandBatcher<QueueCommand, QueueReply>(
      (batch, deadline) => {
        const operation = `${batch.every((q) => q.kind === 'A') ? 'acquire' : 'queue'} ${model}`;
        // Built per attempt: a retry carries deadlines converted with the latest offset.
        return this.executor.run(
          operation,
          async (client) => {
            defineScripts(client);
            const args = queueArgs(batch, this.notices ? channel : '', this.clock(), serverDeadline);
            const r = await client.llmrlQueue(stateOf(batch[0].settings), queue, records, expiry, owners, ...args);
            const replies = parseQueueReply(operation, batch, r);
            this.offsetMs = replies[0].nowMs - Date.now();
            return replies;
          },
          deadline,
        );
      },
      undefined,
      undefined,
      undefined,
      (q) =>
        classify(
          `${q.kind === 'A' ? 'acquire' : q.kind === 'C' ? 'claim' : 'settle'} ${model}`,
          new CommandDeadlineError('the call', this.executor.budgetMs),
          1,
        ),
      // Reached Redis in time, answered too late: its caller has gone on without it, so what it
      // holds is given back (a reply that never comes is covered by the deadline in the script).
      (q, reply) => {
        if (q.kind !== 'A' || ((reply as AcquireReply).state !== 'admitted' && (reply as AcquireReply).state !== 'waiting')) return;
        const c = q.command;
        submit({
          kind: 'S',
          settings: c.settings,
          command: { opId: c.opId, settings: c.settings, mode: 'release', refunds: true },
          deadline: due(),
        }).catch(() => undefined);
      },
    );
    return {
      acquire: async (c: AcquireCommand) => {
        const deadline = due();
        const reply = (await submit({ kind: 'A', settings: c.settings, command: c, deadline })) as AcquireReply;
        // The script refused it because it ran after the deadline this store gave it (see
        // queueArgs): Redis answered too late to reserve anything, which is Redis being
        // unavailable to this caller, not a wait the caller bounded (maxWaitMs). A deadline the
        // caller set itself (deadlineMs) is the caller's to read from the 'timeout' state.
        const late = serverDeadline(deadline, true);
        if (reply.state === 'timeout' && c.deadlineMs === undefined && (c.maxWaitMs < 0 || (late >= 0 && reply.nowMs > late))) {
          throw classify(`acquire ${model}`, new CommandDeadlineError('the call', this.executor.budgetMs), 1);
        }
        return reply;
      },
      claim: (c: ClaimCommand) => submit({ kind: 'C', settings: c.settings, command: c, deadline: due() }) as Promise<ClaimReply>,
      settle: (c: SettleCommand) => submit({ kind: 'S', settings: c.settings, command: c, deadline: due() }) as Promise<SettleReply>,
      status: async (s: ModelSettings): Promise<StatusReply> => {
        const r = await run('status', (client) =>
          s.algorithm === 'token-bucket'
            ? client.llmrlTbStatus(bucket, queue, s.windowMs, ...limitsOf(s), this.clock())
            : client.llmrlStatus(window, queue, s.windowMs, BUCKETS, this.clock()),
        );
        return {
          nowMs: num(r[0]),
          used: { tokens: num(r[1]), inputTokens: num(r[2]), outputTokens: num(r[3]), requests: num(r[4]) },
          queueDepth: num(r[5]),
          pausedUntil: num(r[6]),
          limitFactor: num(r[7]),
        };
      },
      backOff: async (s: ModelSettings, c: BackOffCommand): Promise<BackOffReply> => {
        const r = await run('backoff', (client) =>
          client.llmrlBackoff(stateOf(s), c.pauseMs, s.windowMs, c.cut, c.floor, c.settleMs, s.learn ? 1 : 0, this.clock()),
        );
        return { pausedUntil: num(r[0]), limitFactor: num(r[1]) };
      },
      reconcile: async (s: ModelSettings, c: ReconcileCommand): Promise<Charge> => {
        const tokenBucket = s.algorithm === 'token-bucket';
        const rem = c.remaining;
        const t = c.tolerance;
        const r = await run('reconcile', (client) =>
          client.llmrlReconcile(
            stateOf(s),
            s.algorithm,
            s.windowMs,
            tokenBucket ? s.bucketMs : BUCKETS,
            rem.tokens ?? -1,
            rem.inputTokens ?? -1,
            rem.outputTokens ?? -1,
            rem.requests ?? -1,
            ...limitsOf(s),
            t.tokens,
            t.inputTokens,
            t.outputTokens,
            t.requests,
            this.clock(),
          ),
        );
        return { tokens: num(r[0]), inputTokens: num(r[1]), outputTokens: num(r[2]), requests: num(r[3]) };
      },
      handBack: async (s, admissions): Promise<Charge> => {
        const r = await run('handback', (client) => client.llmrlHandback(stateOf(s), ...handBackArgs(s, admissions, this.clock())));
        return figures(r, 0);
      },
      heartbeat: async (instanceId: string, ttlMs: number, s: ModelSettings): Promise<number> => {
        const r = await this.executor.run(`heartbeat ${model}`, (client) => {
          defineScripts(client);
          return client.llmrlHeartbeat(instances, stateOf(s), instanceId, ttlMs);
        });
        return num(r);
      },
      onAdmitted: (listener, heard) => (this.notices ? this.notices.listen(channel, listener, heard) : () => undefined),
    };
  }

  get leaseHoldMs(): number {
    return Math.max(this.executor.budgetMs, MIN_LEASE_HOLD_MS);
  }

  async ping(): Promise<number> {
    const started = performance.now();
    await this.executor.run('ping', (client) => client.ping());
    return performance.now() - started;
  }

  /** Closes the connection admissions are heard on. */
  async close(): Promise<void> {
    await this.notices?.close();
  }
}
