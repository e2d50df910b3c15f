import type { AdmittedWaiter } from '../core/store.js';
import type { RedisClient } from './scripts.js';

type Listener = (admitted: readonly AdmittedWaiter[]) => void;
/** Called when notices start to reach a listener (see ModelStore.onAdmitted). */
type Heard = (() => void) | undefined;

/** Reads a notice of lua/queue.lua: "op:slot,op:slot,...". */
export function parseNotice(message: string): AdmittedWaiter[] {
  const admitted: AdmittedWaiter[] = [];
  for (const entry of message.split(',')) {
    const colon = entry.lastIndexOf(':');
    const slotMs = Number(entry.slice(colon + 1));
    if (colon > 0 && Number.isFinite(slotMs)) admitted.push({ opId: entry.slice(0, colon), slotMs });
  }
  return admitted;
}

/** How long the subscriber connection stays open after its last listener left. */
const LINGER_MS = 5_000;

/**
 * One subscriber connection per store, subscribed to a model's channel while some limiter of
 * this process waits for it, and closed once nobody has listened for a while. Pub/sub delivers
 * at most once: a notice lost while the connection reconnects is made up for by the waiters'
 * claim at the queue's next check time.
 */
export class AdmissionNotices {
  private client: RedisClient | undefined;
  private readonly listeners = new Map<string, Map<Listener, Heard>>();
  private closed = false;
  private idle: NodeJS.Timeout | undefined;

  constructor(private readonly open: () => RedisClient) {}

  listen(channel: string, listener: Listener, heard?: () => void): () => void {
    if (this.closed) return () => undefined;
    clearTimeout(this.idle);
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Map();
      this.listeners.set(channel, set);
      set.set(listener, heard);
      this.subscribe(this.connection(), [channel]);
    } else {
      // Already subscribed (or about to be: then `heard` runs with the others').
      set.set(listener, heard);
    }
    return () => {
      const current = this.listeners.get(channel);
      if (!current?.delete(listener) || current.size > 0) return;
      this.listeners.delete(channel);
      const client = this.client;
      if (client?.status === 'ready') client.unsubscribe(channel).catch(() => undefined);
      if (this.listeners.size === 0) {
        this.idle = setTimeout(() => void this.disconnect(), LINGER_MS);
        this.idle.unref();
      }
    };
  }

  /**
   * Subscribes once the connection is ready (commands sent before would be refused, the
   * limiter's clients queue nothing offline), again after every reconnect; once Redis confirms,
   * the listeners hear that notices flow from now on, and claim what they may have missed.
   */
  private subscribe(client: RedisClient, channels: string[]): void {
    if (client.status !== 'ready' || channels.length === 0) return;
    client.subscribe(...channels).then(
      () => {
        for (const channel of channels) for (const heard of this.listeners.get(channel)?.values() ?? []) heard?.();
      },
      () => {
        // Lost meanwhile: 'ready' subscribes again, and the claim timer covers the gap.
      },
    );
  }

  private async disconnect(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client || client.status === 'end') return;
    await client.quit().catch(() => client.disconnect());
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idle);
    this.listeners.clear();
    await this.disconnect();
  }

  private connection(): RedisClient {
    if (this.client) return this.client;
    const client = this.open();
    client.on('message', (channel: string, message: string) => {
      const set = this.listeners.get(channel);
      if (!set) return;
      const admitted = parseNotice(message);
      for (const listener of set.keys()) listener(admitted);
    });
    client.on('ready', () => this.subscribe(client, [...this.listeners.keys()]));
    // Errors surface through the command connections; this one only listens.
    client.on('error', () => undefined);
    if (client.status === 'wait') client.connect().catch(() => undefined);
    this.client = client;
    return client;
  }
}
