// A real Redis Cluster (3 masters, 3 replicas) on loopback: T1, T13/T36, T14, T16, and the
// self-check on a cluster, through an ACL user that has only what docs/cluster.md lists.
import { Redis } from 'ioredis';
import { RateLimiter, RedisConnectionManager, RedisUnavailableError, type RateLimiterEvent } from '../../lib/index.js';
import { modelKeys } from '../../lib/redis/keys.js';
import { recordingLogger } from '../support/backends.js';
import { waitFor } from '../support/redis.js';
import { cli, OwnRedisCluster, until } from '../support/redis-cluster.js';
import { freePort } from '../support/redis-server.js';
import { Traffic } from '../support/traffic.js';
import { limiterAcl } from '../support/limiter-acl.js';

const NODE_TIMEOUT_MS = 1000;
const CLUSTER_ACL = limiterAcl({ cluster: true });

describe('on a Redis Cluster nobody listens on', () => {
  it('fails open within the deadline and verify says unavailable (T1)', async () => {
    const manager = new RedisConnectionManager({
      cluster: { nodes: [`127.0.0.1:${await freePort()}`, { host: '127.0.0.1', port: await freePort() }] },
    });
    const events: RateLimiterEvent[] = [];
    const limiter = new RateLimiter(manager, 'gpt-4o', { tpm: 1000 }, { logger: recordingLogger(), onEvent: (e) => events.push(e) });
    try {
      const started = performance.now();
      const results = await Promise.all([1, 2, 3].map(() => limiter.acquire({ tokens: 1 })));
      // a hang detector: ioredis's Cluster defaults wait forever
      expect(performance.now() - started).toBeLessThan(5000);
      expect(results.every((r) => r.degraded)).toBe(true);
      expect(events.filter((e) => e.type === 'degraded')).toHaveLength(1);
      await expect(manager.verify()).rejects.toThrow(RedisUnavailableError);
    } finally {
      await manager.close();
    }
  });
});

describe('on a Redis Cluster', () => {
  let cluster: OwnRedisCluster;
  let manager: RedisConnectionManager;

  beforeAll(async () => {
    cluster = await OwnRedisCluster.start({ nodeTimeoutMs: NODE_TIMEOUT_MS });
    for (const node of cluster.nodes)
      cli(node.port, 'ACL', 'SETUSER', 'limiter', 'reset', 'on', '>limiter-pw', '~{llmrl:*', '-@all', ...CLUSTER_ACL);
    manager = new RedisConnectionManager({
      cluster: { nodes: cluster.startupNodes.slice(0, 2).map(({ port }) => `redis://limiter:limiter-pw@127.0.0.1:${port}`) },
    });
  });

  afterAll(async () => {
    await manager?.close();
    await cluster?.stop();
  });

  it('passes the self-check as an ACL user and reads the eviction policy of every master', async () => {
    const report = await manager.verify();
    expect(report).toMatchObject({ topology: 'cluster', username: 'limiter', algorithms: ['sliding-window', 'token-bucket'] });
    // CONFIG is not granted to this user: one warning, no failure
    expect(report.warnings).toEqual([expect.stringMatching(/CONFIG GET is not allowed/)]);
  });

  it('reads the eviction policy of every master and warns about the one that may evict (T23)', async () => {
    const admin = new RedisConnectionManager({ cluster: { nodes: cluster.startupNodes.slice(0, 1) } });
    const master = cluster.masterOfSlot(0);
    try {
      cli(master.port, 'CONFIG', 'SET', 'maxmemory', '256mb');
      cli(master.port, 'CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
      const report = await admin.verify();
      expect(report.eviction).toHaveLength(3);
      expect(report.warnings).toEqual([
        expect.stringMatching(new RegExp(`maxmemory-policy is allkeys-lru on 127\\.0\\.0\\.1:${master.port}`)),
      ]);
    } finally {
      cli(master.port, 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
      cli(master.port, 'CONFIG', 'SET', 'maxmemory', '0');
      await admin.close();
    }
  });

  it('keeps every key of a model in one slot, for odd model names (T13, T36)', async () => {
    const names = ['{', '}', '{}', 'a}b', '{llmrl:x}', ':', 'a b', 'ünï😀', '\n', 'x'.repeat(1024), 'gpt-4o', 'GPT-4o'];
    const slots = new Set<number>();
    for (const name of names) {
      const limiter = new RateLimiter(manager, name, { tpm: 1000, rpm: 10 });
      const r = await limiter.acquire({ tokens: 5 });
      expect(r.degraded).toBe(false);
      await limiter.adjust(r.recordId, { actualOutput: 3 });
      expect((await limiter.getStatus()).tokensUsed).toBe(8);
      await limiter.release(r.recordId);
      const keySlots = new Set(Object.values(modelKeys('llmrl', name)).map((key) => cluster.keySlot(key)));
      expect(keySlots.size).toBe(1);
      slots.add([...keySlots][0]);
    }
    // the names spread over slots rather than all sharing one tag
    expect(slots.size).toBeGreaterThan(names.length / 2);
  });

  it('fails open for at most about the node timeout when another shard is down, and recovers at once (T16)', async () => {
    const limiter = new RateLimiter(manager, 'shard-down', { tpm: 1e9, rpm: 1e9 }, { logger: recordingLogger() });
    const ours = cluster.masterOfSlot(cluster.keySlot(modelKeys('llmrl', 'shard-down').window));
    const victim = cluster.nodes.find((n) => n !== ours && !cluster.replicasOf(ours).includes(n) && cluster.replicasOf(n).length > 0)!;
    const shard = [victim, ...cluster.replicasOf(victim)];
    const traffic = new Traffic(limiter, 2).start();
    try {
      await waitFor(() => traffic.acknowledged().length > 20, 10_000, 'traffic to flow');
      const frozenAt = Date.now();
      shard.forEach((n) => n.freeze());
      // with full coverage required, the healthy shards answer CLUSTERDOWN once the shard is failed
      await waitFor(() => traffic.since(frozenAt).some((s) => s.degraded), 15_000, 'callers to fail open');
      const thawedAt = Date.now();
      shard.forEach((n) => n.thaw());
      await waitFor(
        () =>
          traffic.since(thawedAt).some(
            (s) =>
              !s.degraded &&
              !s.error &&
              s.startedAt >
                Math.max(
                  ...traffic
                    .since(frozenAt)
                    .filter((x) => x.degraded)
                    .map((x) => x.endedAt),
                ),
          ),
        15_000,
        'limiting to resume',
      );
      const samples = await traffic.stop();
      const outage = traffic.outageAfter(frozenAt);
      const recovery = Math.max(...samples.filter((s) => s.degraded).map((s) => s.endedAt)) - thawedAt;
      console.log(
        `T16 other shard frozen: ${outage.calls} calls failed open from +${outage.fromMs} ms; longest call ${outage.longestCallMs} ms; last degraded call ended ${recovery} ms after the thaw`,
      );
      expect(samples.filter((s) => s.error)).toEqual([]);
      // fail-open within the limiter's budget (4 attempts of 500 ms + backoff), never a hang
      expect(outage.longestCallMs).toBeLessThan(4000);
      expect(recovery).toBeLessThan(4000);
    } finally {
      shard.forEach((n) => n.thaw());
      await traffic.stop();
      await cluster.waitUntilHealthy(30_000);
    }
  });

  it('survives the SIGKILL of the master that owns the model: callers wait or fail open briefly, no acknowledged reservation lost (T14)', async () => {
    const model = 'failover';
    const limiter = new RateLimiter(manager, model, { tpm: 1e9, rpm: 1e9 }, { logger: recordingLogger() });
    const slot = cluster.keySlot(modelKeys('llmrl', model).window);
    const victim = cluster.masterOfSlot(slot);
    const traffic = new Traffic(limiter, 4).start();
    try {
      await waitFor(() => traffic.acknowledged().length > 50, 10_000, 'traffic to flow');
      const killedAt = Date.now();
      await victim.kill();
      await until(() => cluster.masterOfSlot(slot) !== victim, 20_000, 'the replica to take over the slot');
      const promotedAt = Date.now();
      await waitFor(() => traffic.since(promotedAt).filter((s) => !s.degraded && !s.error).length > 50, 20_000, 'limiting to resume');
      const samples = await traffic.stop();
      const outage = traffic.outageAfter(killedAt);
      const acked = traffic.acknowledged();
      const degraded = samples.filter((s) => s.degraded).length;
      const used = (await limiter.getStatus()).requestsUsed;
      const lost = Math.max(0, acked.length - used);
      console.log(
        `T14 master SIGKILL (node timeout ${NODE_TIMEOUT_MS} ms): replica promoted at +${promotedAt - killedAt} ms; ${outage.calls} calls failed open` +
          (outage.calls ? ` from +${outage.fromMs} to +${outage.toMs} ms; ` : '; ') +
          `longest call ${outage.longestCallMs} ms; ${acked.length} acknowledged, ${used} counted by the new master, ${lost} lost, ${degraded} degraded`,
      );
      expect(samples.filter((s) => s.error)).toEqual([]);
      expect(new Set(acked.map((s) => s.recordId)).size).toBe(acked.length);
      // callers wait through the failover on the limiter's retries (same op id) or fail open
      // within its budget (4 attempts of 500 ms + backoff): never the 10 s+ of ioredis's defaults
      expect(outage.longestCallMs).toBeLessThan(4000);
      // the replica was in sync: what callers were told is reserved, stays reserved
      expect(lost).toBe(0);
      // and orphans of failed-open calls count at most once each
      expect(used).toBeLessThanOrEqual(acked.length + degraded);
    } finally {
      await traffic.stop();
      await victim.startAgain();
      await cluster.waitUntilHealthy(30_000);
    }
  });

  it('uses one Cluster client, reachable as manager.cluster', async () => {
    expect(manager.topology).toBe('cluster');
    expect(manager.cluster.status).toBe('ready');
    expect(() => manager.client).toThrow(/manager.cluster/);
    expect(Redis).toBeDefined();
  });
});
