import { CommandBatcher } from '../../lib/redis/command-batcher.js';
import type { ModelSettings } from '../../lib/core/store.js';

// The batcher only groups commands and hands them to `send`; here `send` records each group and
// lets the test decide when its reply comes, so the grouping itself can be observed.

const settings: ModelSettings = {
  windowMs: 60_000,
  algorithm: 'sliding-window',
  bucketMs: 60_000,
  paceMs: 0,
  limits: { tokens: 1000, inputTokens: 0, outputTokens: 0, requests: 0 },
};
interface Command {
  readonly opId: string;
  readonly settings: ModelSettings;
}
const command = (opId: string, s: ModelSettings = settings): Command => ({ opId, settings: s });
const reply = (c: Command) => ({ bucket: Number(c.opId.slice(1)) });

function recorder() {
  const sent: { batch: string[]; settle: (error?: Error) => void }[] = [];
  const send = (batch: readonly Command[]) =>
    new Promise<{ bucket: number }[]>((resolve, reject) => {
      sent.push({ batch: batch.map((c) => c.opId), settle: (error) => (error ? reject(error) : resolve(batch.map(reply))) });
    });
  return { sent, send };
}

describe('CommandBatcher', () => {
  const turn = () => new Promise((r) => setImmediate(r));

  it('sends a lone acquire at once, and those that come while it is in flight together on the next turn', async () => {
    const { sent, send } = recorder();
    const batcher = new CommandBatcher(send, 2, 128);
    const first = batcher.submit(command('a0'));
    // Nothing in flight: it goes as soon as the pending microtasks have run, before any I/O.
    await Promise.resolve();
    expect(sent.map((s) => s.batch)).toEqual([['a0']]);
    const rest = ['a1', 'a2', 'a3'].map((id) => batcher.submit(command(id)));
    // The second lane is free, but it waits for the end of this turn, so all three go together.
    await Promise.resolve();
    expect(sent.map((s) => s.batch)).toEqual([['a0']]);
    await turn();
    expect(sent.map((s) => s.batch)).toEqual([['a0'], ['a1', 'a2', 'a3']]);
    // Both lanes busy: a4 waits for one to free, and then for the turn to end.
    const late = batcher.submit(command('a4'));
    await turn();
    expect(sent).toHaveLength(2);
    sent[0].settle();
    await expect(first).resolves.toMatchObject({ bucket: 0 });
    await turn();
    expect(sent.map((s) => s.batch)).toEqual([['a0'], ['a1', 'a2', 'a3'], ['a4']]);
    sent[1].settle();
    sent[2].settle();
    await expect(Promise.all([...rest, late])).resolves.toEqual([1, 2, 3, 4].map((b) => expect.objectContaining({ bucket: b })));
  });

  it('sends callers that a reply wakes together as one call, not the first alone', async () => {
    const { sent, send } = recorder();
    const batcher = new CommandBatcher(send, 2, 128);
    // Each caller re-enters through a few awaits, as a caller of RateLimiter.acquire does.
    const caller = async (id: string) => {
      await Promise.resolve();
      await Promise.resolve();
      return batcher.submit(command(id));
    };
    const woken = ['w0', 'w1', 'w2', 'w3'].map(caller);
    await turn();
    expect(sent.map((s) => s.batch)).toEqual([['w0', 'w1', 'w2', 'w3']]);
    sent[0].settle();
    await Promise.all(woken);
  });

  /** Sends ids[0] alone, queues the rest behind it, and lets its reply come back before the turn ends. */
  async function queuedBehindOneReply(maxInFlight: number, minShare: number, ids: string[]) {
    const { sent, send } = recorder();
    const batcher = new CommandBatcher(send, maxInFlight, 128, minShare);
    const first = batcher.submit(command(ids[0]));
    await Promise.resolve();
    const rest = ids.slice(1).map((id) => batcher.submit(command(id)));
    sent[0].settle();
    await first;
    await turn();
    return { sent, rest };
  }

  it('splits what waits evenly over the free lanes, so no lane idles while another carries everyone', async () => {
    const { sent, rest } = await queuedBehindOneReply(3, 2, ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7']);
    // All three lanes are free when the group goes out.
    expect(sent.map((s) => s.batch)).toEqual([['s0'], ['s1', 's2', 's3'], ['s4', 's5'], ['s6', 's7']]);
    sent.slice(1).forEach((s) => s.settle());
    await expect(Promise.all(rest)).resolves.toEqual([1, 2, 3, 4, 5, 6, 7].map((b) => expect.objectContaining({ bucket: b })));
  });

  it('keeps a small group whole rather than send calls of fewer than minShare', async () => {
    const { sent, rest } = await queuedBehindOneReply(3, 4, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
    // Seven waiting, at least four per call: one call, not three of two or three.
    expect(sent.map((s) => s.batch)).toEqual([['m0'], ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']]);
    sent[1].settle();
    await Promise.all(rest);
  });

  it('bounds a group and never mixes two configurations in one', async () => {
    const { sent, send } = recorder();
    const batcher = new CommandBatcher(send, 1, 3);
    const other: ModelSettings = { ...settings, limits: { ...settings.limits, tokens: 500 } };
    const b0 = batcher.submit(command('b0'));
    await Promise.resolve();
    const all = [
      b0,
      ...['b1', 'b2', 'b3', 'b4'].map((id) => batcher.submit(command(id))),
      // Equal settings in another object go along; different limits wait for the next call.
      batcher.submit(command('b5', { ...settings })),
      batcher.submit(command('b6', other)),
    ];
    for (let i = 0; i < 4; i++) {
      await turn();
      sent[i].settle();
      await turn();
    }
    await Promise.all(all);
    expect(sent.map((s) => s.batch)).toEqual([['b0'], ['b1', 'b2', 'b3'], ['b4', 'b5'], ['b6']]);
  });

  it('rejects every acquire of a failed group, and only those', async () => {
    const { sent, send } = recorder();
    const batcher = new CommandBatcher(send, 1, 128);
    const lone = batcher.submit(command('c0'));
    await Promise.resolve();
    const grouped = ['c1', 'c2'].map((id) => batcher.submit(command(id)));
    sent[0].settle(new Error('down'));
    await expect(lone).rejects.toThrow('down');
    await turn();
    sent[1].settle();
    await expect(Promise.all(grouped)).resolves.toHaveLength(2);
  });
});
