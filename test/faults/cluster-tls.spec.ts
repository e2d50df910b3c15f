// A Redis Cluster that speaks TLS only (clients, bus and replication), with an ACL user: the
// limiter's TLS and username reach every node the cluster announces, and a TLS failure on a
// node surfaces with its cause.
import { RateLimiter, RedisConfigurationError, RedisConnectionManager } from '../../lib/index.js';
import { recordingLogger } from '../support/backends.js';
import { OwnRedisCluster } from '../support/redis-cluster.js';
import { makeCertificates, type TestCertificates } from '../support/redis-tls.js';
import { rmSync } from 'node:fs';
import { limiterAcl } from '../support/limiter-acl.js';

const CLUSTER_ACL = limiterAcl({ cluster: true });

describe('on a TLS-only Redis Cluster', () => {
  let certificates: TestCertificates;
  let cluster: OwnRedisCluster;
  const managers: RedisConnectionManager[] = [];

  beforeAll(async () => {
    certificates = makeCertificates();
    cluster = await OwnRedisCluster.start({ replicasPerMaster: 0, tls: certificates });
    for (const node of cluster.nodes)
      cluster.cli(node.port, 'ACL', 'SETUSER', 'limiter', 'reset', 'on', '>limiter-pw', '~{llmrl:*', '-@all', ...CLUSTER_ACL);
  });

  afterAll(async () => {
    await Promise.all(managers.map((m) => m.close()));
    await cluster?.stop();
    if (certificates) rmSync(certificates.dir, { recursive: true, force: true });
  });

  function manager(...args: ConstructorParameters<typeof RedisConnectionManager>) {
    const m = new RedisConnectionManager(...args);
    managers.push(m);
    return m;
  }

  it('limits over TLS as an ACL user on every master, from one rediss:// startup node', async () => {
    const m = manager({
      cluster: { nodes: [`rediss://limiter:limiter-pw@127.0.0.1:${cluster.nodes[0].port}`] },
      tls: { ca: certificates.ca },
    });
    await expect(m.verify()).resolves.toMatchObject({ topology: 'cluster', username: 'limiter' });
    // models spread over the slots, so every master is reached
    const models = Array.from({ length: 12 }, (_, i) => `model-${i}`);
    for (const model of models) {
      const limiter = new RateLimiter(m, model, { tpm: 1000 });
      expect((await limiter.acquire({ tokens: 10 })).degraded).toBe(false);
    }
    expect(m.cluster.nodes('master')).toHaveLength(3);
  });

  it("reports a node's TLS failure with its cause at verify()", async () => {
    const m = manager({
      cluster: { nodes: cluster.startupNodes.slice(0, 1) },
      tls: { ca: certificates.otherCa },
      username: 'limiter',
      password: 'limiter-pw',
      retryConfig: { maxRetries: 1 },
    });
    const err = await m.verify().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisConfigurationError);
    expect((err as Error).message).toMatch(/self-signed certificate|unable to verify|unable to get.*certificate/i);
    expect((err as Error).message).toMatch(/TLS handshake with 127\.0\.0\.1:\d+ failed/);
    // ioredis hides a Cluster node's TLS error from its events: an acquire can only see an
    // unreachable cluster and fails open, with a degraded event; verify() is where it shows
    const events: string[] = [];
    const limiter = new RateLimiter(m, 'gpt-4o', { tpm: 1000 }, { logger: recordingLogger(), onEvent: (e) => events.push(e.type) });
    await expect(limiter.acquire({ tokens: 1 })).resolves.toMatchObject({ degraded: true });
    expect(events).toContain('degraded');
  });
});
