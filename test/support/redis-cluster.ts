import { spawnSync } from 'node:child_process';
import { freePort, OwnRedisServer } from './redis-server.js';
import type { TestCertificates } from './redis-tls.js';

/** Runs redis-cli against a port and returns its output (throws when redis-cli fails). */
export function cli(port: number, ...args: string[]): string {
  return cliWith([], port, ...args);
}

/** `cli` with connection arguments first (`--tls --cacert ...`). */
export function cliWith(connection: readonly string[], port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-p', String(port), ...connection, ...args], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`redis-cli -p ${port} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `condition` holds; rejects after `timeoutMs`, naming what it waited for. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await condition()) return;
    } catch {
      // a node still starting or just killed: ask again
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** One line of CLUSTER NODES. */
interface NodeLine {
  readonly id: string;
  readonly port: number;
  readonly flags: string[];
  readonly masterId: string;
  readonly linkState: string;
  readonly slots: Array<[number, number]>;
}

function parseNodes(text: string): NodeLine[] {
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, address, flags, masterId, , , , linkState, ...slots] = line.trim().split(' ');
      return {
        id,
        port: Number(address.split('@')[0].split(':').pop()),
        flags: flags.split(','),
        masterId,
        linkState,
        slots: slots
          .filter((s) => !s.startsWith('['))
          .map((s) => {
            const [from, to] = s.split('-').map(Number);
            return [from, to ?? from] as [number, number];
          }),
      };
    });
}

export interface OwnRedisClusterOptions {
  readonly masters?: number;
  readonly replicasPerMaster?: number;
  /** cluster-node-timeout: how long a master may be silent before its replica takes over. */
  readonly nodeTimeoutMs?: number;
  /** More redis-server arguments for every node. */
  readonly extraArgs?: string[];
  /** Speak TLS only, between nodes too, with these certificates. */
  readonly tls?: TestCertificates;
}

/**
 * A Redis Cluster of a test's own on loopback (default 3 masters, each with a replica), on free
 * ports, bus ports included. Stops exactly what it started.
 */
export class OwnRedisCluster {
  private constructor(
    readonly nodes: OwnRedisServer[],
    /** redis-cli arguments that reach a node (TLS). */
    private readonly connection: readonly string[] = [],
  ) {}

  /** redis-cli against a node of this cluster. */
  cli(port: number, ...args: string[]): string {
    return cliWith(this.connection, port, ...args);
  }

  static async start(options: OwnRedisClusterOptions = {}): Promise<OwnRedisCluster> {
    const masters = options.masters ?? 3;
    const replicas = options.replicasPerMaster ?? 1;
    const nodes: OwnRedisServer[] = [];
    const tls = options.tls;
    const connection = tls ? ['--tls', '--cacert', tls.caFile] : [];
    const tlsArgs = tls
      ? [
          '--tls-cluster',
          'yes',
          '--tls-replication',
          'yes',
          '--tls-cert-file',
          tls.certFile,
          '--tls-key-file',
          tls.keyFile,
          '--tls-ca-cert-file',
          tls.caFile,
          '--tls-auth-clients',
          'no',
        ]
      : [];
    const cluster = new OwnRedisCluster(nodes, connection);
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        nodes.push(
          await OwnRedisServer.start(
            [
              '--cluster-enabled',
              'yes',
              '--cluster-config-file',
              'nodes.conf',
              '--cluster-node-timeout',
              String(options.nodeTimeoutMs ?? 1000),
              // The bus port defaults to port + 10000, which may be taken or beyond 65535.
              '--cluster-port',
              String(await freePort()),
              // Replicas sync at once, and may always take over: tests kill masters on purpose.
              '--repl-diskless-sync-delay',
              '0',
              '--cluster-replica-validity-factor',
              '0',
              ...tlsArgs,
              ...(options.extraArgs ?? []),
            ],
            tls ? { tlsOnly: true, pingArgs: connection } : {},
          ),
        );
      }
      const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
      cluster.cli(nodes[0].port, '--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes');
      await cluster.waitUntilHealthy(20_000);
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** Startup nodes for a client: every node. */
  get startupNodes(): { host: string; port: number }[] {
    return this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }));
  }

  private live(): OwnRedisServer[] {
    return this.nodes.filter((n) => n.alive);
  }

  /** The cluster as a live node sees it. */
  private view(): NodeLine[] {
    for (const node of this.live()) {
      try {
        return parseNodes(this.cli(node.port, 'cluster', 'nodes'));
      } catch {
        // try the next node
      }
    }
    throw new Error('no live cluster node answers');
  }

  /** The slot of a key, as the server computes it. */
  keySlot(key: string): number {
    return Number(this.cli(this.live()[0].port, 'cluster', 'keyslot', key).trim());
  }

  /** The node serving `slot` as master now. */
  masterOfSlot(slot: number): OwnRedisServer {
    const line = this.view().find(
      (n) => n.flags.includes('master') && !n.flags.includes('fail') && n.slots.some(([a, b]) => slot >= a && slot <= b),
    );
    const node = line && this.nodes.find((n) => n.port === line.port);
    if (!node) throw new Error(`no master serves slot ${slot}`);
    return node;
  }

  /** The replicas of a master. */
  replicasOf(master: OwnRedisServer): OwnRedisServer[] {
    const view = this.view();
    const id = view.find((n) => n.port === master.port)?.id;
    return view.filter((n) => n.masterId === id).map((n) => this.nodes.find((x) => x.port === n.port)!);
  }

  /**
   * Resolves once every live node reports cluster_state:ok, every slot has a master that no node
   * flags as failed, and every replica's link to its master is up and synced.
   */
  async waitUntilHealthy(timeoutMs: number): Promise<void> {
    await until(
      () => {
        const live = this.live();
        for (const node of live) {
          if (!this.cli(node.port, 'cluster', 'info').includes('cluster_state:ok')) return false;
        }
        for (const node of live) {
          const view = parseNodes(this.cli(node.port, 'cluster', 'nodes'));
          if (view.some((n) => n.flags.some((f) => f === 'fail' || f === 'fail?' || f === 'handshake' || f === 'noaddr'))) return false;
          if (view.length !== this.nodes.length) return false;
        }
        for (const node of live) {
          const info = this.cli(node.port, 'info', 'replication');
          if (info.includes('role:slave') && (!info.includes('master_link_status:up') || info.includes('master_sync_in_progress:1')))
            return false;
        }
        return true;
      },
      timeoutMs,
      'the cluster to be healthy',
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
}
