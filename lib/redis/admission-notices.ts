import type { AdmittedWaiter } from '../core/store.js';
import type { RedisClient } from './scripts.js';

type Listener = (admitted: readonly AdmittedWaiter[]) => void;

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
  private readonly listeners = new Map<string, Set<Listener>>();
  private closed = false;
  private idle: NodeJS.Timeout | undefined;

  constructor(private readonly open: () => RedisClient) {}

  listen(channel: string, listener: Listener): () => void {
    if (this.closed) return () => undefined;
    clearTimeout(this.idle);
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      this.subscribe(this.connection(), [channel]);
    }
    set.add(listener);
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
   * limiter's clients queue nothing offline); ioredis subscribes again after a reconnect.
   */
  private subscribe(client: RedisClient, channels: string[]): void {
    if (client.status !== 'ready' || channels.length === 0) return;
    client.subscribe(...channels).catch(() => {
      // Lost meanwhile: 'ready' subscribes again, and the claim timer covers the gap.
    });
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
      for (const listener of set) listener(admitted);
    });
    client.on('ready', () => this.subscribe(client, [...this.listeners.keys()]));
    // Errors surface through the command connections; this one only listens.
    client.on('error', () => undefined);
    if (client.status === 'wait') client.connect().catch(() => undefined);
    this.client = client;
    return client;
  }
}
