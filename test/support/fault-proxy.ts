import { createServer, type Server, type Socket, connect } from 'node:net';

/** One client connection through the proxy and its upstream twin. */
interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  /** Bytes held while paused, per direction, in order. */
  readonly held: { up: Buffer[]; down: Buffer[] };
  /** Chunks on their way under latency, per direction; order is kept by chaining. */
  tail: { up: Promise<void>; down: Promise<void> };
}

/** What the proxy has seen, for assertions. */
export interface FaultProxyStats {
  accepted: number;
  refused: number;
  reset: number;
  droppedReplies: number;
  /** Reply chunks thrown away with the connection kept open. */
  swallowedReplies: number;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A TCP proxy on loopback between the limiter and a Redis, that can inject the network faults a
 * real deployment meets: added latency, a pause (partition whose bytes arrive on heal), a reply
 * lost after the command ran, a reset of every connection, refused connections. Stops exactly
 * what it started.
 *
 * @example
 * const proxy = await FaultProxy.start(redisPort);
 * proxy.dropNextReply();           // the next command runs on Redis, its reply never arrives
 * await proxy.close();
 */
export class FaultProxy {
  readonly stats: FaultProxyStats = { accepted: 0, refused: 0, reset: 0, droppedReplies: 0, swallowedReplies: 0 };
  private readonly links = new Set<Link>();
  private latencyMs = 0;
  private paused = false;
  private refusing = false;
  private dropReplies = 0;
  private swallowReplies = 0;
  private swallowedOn: Link | undefined;
  private server: Server;

  private constructor(
    readonly port: number,
    private readonly targetPort: number,
    private readonly targetHost: string,
    server: Server,
  ) {
    this.server = server;
  }

  /** Listens on a free loopback port (or `port`) and forwards to `targetHost:targetPort`. */
  static async start(targetPort: number, options: { targetHost?: string; port?: number } = {}): Promise<FaultProxy> {
    const server = createServer();
    const port = await listen(server, options.port ?? 0);
    const proxy = new FaultProxy(port, targetPort, options.targetHost ?? '127.0.0.1', server);
    proxy.attach(server);
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Open client connections. */
  get connections(): number {
    return this.links.size;
  }

  /** Adds `ms` to every chunk in each direction (so a round trip gains twice that), keeping order. */
  setLatency(ms: number): void {
    this.latencyMs = ms;
  }

  /** Holds every byte in both directions, connections kept open, until `resume()`. */
  pause(): void {
    this.paused = true;
  }

  /** Delivers what was held, in order, and forwards again. */
  resume(): void {
    this.paused = false;
    for (const link of this.links) {
      for (const chunk of link.held.up.splice(0)) this.forward(link, 'up', chunk);
      for (const chunk of link.held.down.splice(0)) this.forward(link, 'down', chunk);
    }
  }

  /**
   * The next reply Redis sends is thrown away and its connection reset: the command ran on the
   * server, the client never hears of it. Counts up with each call.
   */
  dropNextReply(): void {
    this.dropReplies++;
  }

  /**
   * The next reply bytes Redis sends (one chunk as read) are thrown away and the connection is
   * kept open, as a broken middlebox would: the client hears nothing of that command, and every
   * later reply on the connection is one behind. Counts up with each call.
   */
  swallowNextReply(): void {
    this.swallowReplies++;
  }

  /** Whether the connection that last lost a reply to `swallowNextReply` is still open. */
  get swallowingConnectionOpen(): boolean {
    return this.swallowedOn !== undefined && this.links.has(this.swallowedOn);
  }

  /** Resets every open connection (RST on both sides), as a server crash or a load balancer would. */
  resetAll(): void {
    for (const link of [...this.links]) this.reset(link);
  }

  /**
   * Refuses connections while on: the listening socket is closed, so clients get ECONNREFUSED;
   * open connections are reset. Off listens again on the same port.
   */
  async refuse(on: boolean): Promise<void> {
    if (on === this.refusing) return;
    this.refusing = on;
    if (on) {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.resetAll();
      await closed;
    } else {
      const server = createServer();
      await listen(server, this.port);
      this.server = server;
      this.attach(server);
    }
  }

  /** Stops listening and resets every connection. */
  async close(): Promise<void> {
    this.refusing = true;
    this.resetAll();
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private attach(server: Server): void {
    server.on('connection', (client) => this.accept(client));
  }

  private accept(client: Socket): void {
    if (this.refusing) {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    this.stats.accepted++;
    client.setNoDelay(true);
    const upstream = connect({ host: this.targetHost, port: this.targetPort });
    upstream.setNoDelay(true);
    const link: Link = { client, upstream, held: { up: [], down: [] }, tail: { up: Promise.resolve(), down: Promise.resolve() } };
    this.links.add(link);
    // Bytes from a client that arrive before the upstream connection is up are buffered by it.
    client.on('data', (chunk) => this.forward(link, 'up', chunk));
    upstream.on('data', (chunk) => this.onReply(link, chunk));
    const end = () => this.reset(link);
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  }

  private onReply(link: Link, chunk: Buffer): void {
    if (this.swallowReplies > 0 && !this.paused) {
      this.swallowReplies--;
      this.stats.swallowedReplies++;
      this.swallowedOn = link;
      return;
    }
    if (this.dropReplies > 0) {
      this.dropReplies--;
      this.stats.droppedReplies++;
      this.reset(link);
      return;
    }
    this.forward(link, 'down', chunk);
  }

  private forward(link: Link, direction: 'up' | 'down', chunk: Buffer): void {
    if (!this.links.has(link)) return;
    if (this.paused) {
      link.held[direction].push(chunk);
      return;
    }
    const target = direction === 'up' ? link.upstream : link.client;
    if (this.latencyMs === 0) {
      target.write(chunk);
      return;
    }
    const ms = this.latencyMs;
    link.tail[direction] = link.tail[direction].then(async () => {
      await delay(ms);
      if (this.links.has(link) && !target.destroyed) target.write(chunk);
    });
  }

  private reset(link: Link): void {
    if (!this.links.delete(link)) return;
    this.stats.reset++;
    for (const socket of [link.client, link.upstream]) {
      if (socket.destroyed) continue;
      // An RST, not a FIN: the peer sees ECONNRESET, as after a crash.
      if (socket.connecting) socket.destroy();
      else socket.resetAndDestroy();
    }
  }
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}
