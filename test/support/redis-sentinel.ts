import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, until } from './redis-cluster.js';
import { freePort, OwnRedisServer } from './redis-server.js';

export interface OwnSentinelGroupOptions {
  /** Master group name (default 'mymaster'). */
  readonly name?: string;
  /** How long the master may be silent before sentinels call it down. */
  readonly downAfterMs?: number;
}

/**
 * A master, one replica and three sentinels (quorum 2) of a test's own on loopback. Stops
 * exactly what it started.
 */
export class OwnSentinelGroup {
  private readonly configDir = mkdtempSync(join(tmpdir(), 'llmrl-sentinel-'));

  private constructor(
    readonly name: string,
    readonly data: OwnRedisServer[],
    readonly sentinels: OwnRedisServer[],
  ) {}

  static async start(options: OwnSentinelGroupOptions = {}): Promise<OwnSentinelGroup> {
    const name = options.name ?? 'mymaster';
    const group = new OwnSentinelGroup(name, [], []);
    try {
      const master = await OwnRedisServer.start(['--repl-diskless-sync-delay', '0']);
      group.data.push(master);
      group.data.push(await OwnRedisServer.start(['--replicaof', '127.0.0.1', String(master.port), '--repl-diskless-sync-delay', '0']));
      for (let i = 0; i < 3; i++) {
        const port = await freePort();
        const file = join(group.configDir, `sentinel-${port}.conf`);
        writeFileSync(
          file,
          [
            `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
            `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
            `sentinel failover-timeout ${name} 10000`,
            `sentinel parallel-syncs ${name} 1`,
            '',
          ].join('\n'),
        );
        group.sentinels.push(await OwnRedisServer.start(['--sentinel'], { port, configFile: file }));
      }
      await group.waitUntilHealthy(20_000);
      return group;
    } catch (error) {
      await group.stop();
      throw error;
    }
  }

  /** Sentinel addresses for a client. */
  get sentinelAddresses(): { host: string; port: number }[] {
    return this.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port }));
  }

  /** Port of the master the first live sentinel names. */
  masterPort(): number {
    const sentinel = this.sentinels.find((s) => s.alive)!;
    return Number(cli(sentinel.port, 'sentinel', 'get-master-addr-by-name', this.name).trim().split('\n')[1]);
  }

  /** The data node on `port`. */
  node(port: number): OwnRedisServer {
    return this.data.find((d) => d.port === port)!;
  }

  /** Asks the sentinels to fail over now, the old master staying alive. */
  failover(): void {
    cli(this.sentinels[0].port, 'sentinel', 'failover', this.name);
  }

  /**
   * Resolves once every sentinel agrees on one live master with a synced replica and knows the
   * other two sentinels.
   */
  async waitUntilHealthy(timeoutMs: number): Promise<void> {
    await until(
      () => {
        const masters = new Set<number>();
        for (const s of this.sentinels) {
          const fields = cli(s.port, 'sentinel', 'master', this.name).trim().split('\n');
          const get = (key: string) => fields[fields.indexOf(key) + 1];
          if (get('flags') !== 'master' || get('num-other-sentinels') !== '2' || get('num-slaves') === '0') return false;
          masters.add(Number(get('port')));
        }
        if (masters.size !== 1) return false;
        const [port] = masters;
        for (const d of this.data) {
          if (d.port === port) continue;
          const info = cli(d.port, 'info', 'replication');
          if (
            !info.includes(`master_port:${port}`) ||
            !info.includes('master_link_status:up') ||
            info.includes('master_sync_in_progress:1')
          )
            return false;
        }
        return this.node(port).alive;
      },
      timeoutMs,
      'the sentinels to agree on a master with a synced replica',
    );
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels, ...this.data].map((s) => s.stop()));
    rmSync(this.configDir, { recursive: true, force: true });
  }
}
