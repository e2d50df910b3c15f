// A master, a replica and three sentinels on loopback: T1, T18, T19, T20, T21. Replication is
// asynchronous, so a failover may roll back reservations acknowledged by the old master; these
// tests measure that and hold it to the bound docs/cluster.md states.
import { RateLimiter, RedisConnectionManager, RedisUnavailableError } from '../../lib/index.js';
import { recordingLogger } from '../support/backends.js';
import { waitFor } from '../support/redis.js';
import { until } from '../support/redis-cluster.js';
import { freePort } from '../support/redis-server.js';
import { OwnSentinelGroup } from '../support/redis-sentinel.js';
import { Traffic } from '../support/traffic.js';

describe('through sentinels nobody runs', () => {
  it('fails open within the deadline and verify says unavailable (T1)', async () => {
    const manager = new RedisConnectionManager({
      sentinel: { sentinels: [{ host: '127.0.0.1', port: await freePort() }], name: 'mymaster' },
    });
    const limiter = new RateLimiter(manager, 'gpt-4o', { tpm: 1000 }, { logger: recordingLogger() });
    try {
      const started = performance.now();
      const results = await Promise.all([1, 2, 3].map(() => limiter.acquire({ tokens: 1 })));
      // a hang detector: ioredis's Sentinel defaults wait forever
      expect(performance.now() - started).toBeLessThan(5000);
      expect(results.every((r) => r.degraded)).toBe(true);
      await expect(manager.verify()).rejects.toThrow(RedisUnavailableError);
    } finally {
      await manager.close();
    }
  });
});

describe('through Redis Sentinel', () => {
  let group: OwnSentinelGroup;
  let manager: RedisConnectionManager;

  beforeAll(async () => {
    group = await OwnSentinelGroup.start({ downAfterMs: 1000 });
    manager = new RedisConnectionManager({ sentinel: { sentinels: group.sentinelAddresses, name: group.name } });
  });

  afterAll(async () => {
    await manager?.close();
    await group?.stop();
  });

  it('passes the self-check', async () => {
    await expect(manager.verify()).resolves.toMatchObject({ topology: 'sentinel', warnings: [] });
  });

  it('says so when pointed at a replica instead of failing open for ever (T21)', async () => {
    const replica = group.data.find((d) => d.port !== group.masterPort())!;
    const direct = new RedisConnectionManager({ url: replica.url, retryConfig: { maxRetries: 1 } });
    try {
      await expect(direct.verify()).rejects.toThrow(
        /connected to a read-only replica \(READONLY.*connect to the master, or use the sentinel/,
      );
    } finally {
      await direct.close();
    }
  });

  it('follows SENTINEL FAILOVER at once, bounding what the demoted master takes with it (T19)', async () => {
    const limiter = new RateLimiter(manager, 'switch', { tpm: 1e9, rpm: 1e9 }, { logger: recordingLogger() });
    const oldMaster = group.masterPort();
    const traffic = new Traffic(limiter, 4).start();
    try {
      await waitFor(() => traffic.acknowledged().length > 50, 10_000, 'traffic to flow');
      const startedAt = Date.now();
      group.failover();
      await until(() => group.masterPort() !== oldMaster, 15_000, 'the sentinels to promote the replica');
      const switchedAt = Date.now();
      await waitFor(
        () => traffic.since(switchedAt + 1000).filter((s) => !s.degraded && !s.error).length > 100,
        15_000,
        'traffic on the new master',
      );
      const samples = await traffic.stop();
      const seconds = (samples[samples.length - 1].endedAt - samples[0].startedAt) / 1000;
      const rate = traffic.acknowledged().length / seconds;
      const used = (await limiter.getStatus()).requestsUsed;
      const lost = Math.max(0, traffic.acknowledged().length - used);
      const outage = traffic.outageAfter(startedAt);
      console.log(
        `T19 SENTINEL FAILOVER: promoted at +${switchedAt - startedAt} ms; ${outage.calls} calls failed open; longest call ${outage.longestCallMs} ms; ` +
          `${traffic.acknowledged().length} acknowledged at ${rate.toFixed(0)}/s, ${used} on the new master: ${lost} lost (${((lost / rate) * 1000).toFixed(0)} ms of traffic)`,
      );
      expect(samples.filter((s) => s.error)).toEqual([]);
      expect(outage.longestCallMs).toBeLessThan(4000);
      // failoverDetector switches within about a second; ioredis's default stays ~10 s on the demoted master
      expect(lost).toBeLessThanOrEqual(rate * 1.5);
    } finally {
      await traffic.stop();
      await group.waitUntilHealthy(30_000);
    }
  });

  it('fails open at the deadline while the master hangs, and keeps what the new master acknowledged (T20)', async () => {
    await group.waitUntilHealthy(30_000);
    const limiter = new RateLimiter(manager, 'hung', { tpm: 1e9, rpm: 1e9 }, { logger: recordingLogger() });
    const master = group.node(group.masterPort());
    const traffic = new Traffic(limiter, 4).start();
    try {
      await waitFor(() => traffic.acknowledged().length > 50, 10_000, 'traffic to flow');
      const frozenAt = Date.now();
      master.freeze();
      await until(() => group.masterPort() !== master.port, 20_000, 'the sentinels to promote the replica');
      const promotedAt = Date.now();
      await waitFor(
        () => traffic.since(promotedAt + 500).filter((s) => !s.degraded && !s.error).length > 50,
        15_000,
        'traffic on the new master',
      );
      const samples = await traffic.stop();
      master.thaw();
      const acked = traffic.acknowledged();
      const degraded = samples.filter((s) => s.degraded).length;
      const used = (await limiter.getStatus()).requestsUsed;
      const outage = traffic.outageAfter(frozenAt);
      const lost = Math.max(0, acked.length - used);
      console.log(
        `T20 master SIGSTOP: promoted at +${promotedAt - frozenAt} ms; ${outage.calls} calls failed open from +${outage.fromMs} to +${outage.toMs} ms; ` +
          `longest call ${outage.longestCallMs} ms; ${acked.length} acknowledged, ${used} on the new master, ${lost} lost, ${degraded} degraded`,
      );
      expect(samples.filter((s) => s.error)).toEqual([]);
      expect(outage.longestCallMs).toBeLessThan(4000);
      // Replication is asynchronous: what the master acknowledged in the moments before it froze
      // may not have reached the replica (seen here: 0 lost with the replica in sync, ~0.1 s of
      // traffic when the freeze came while it was still resyncing after the previous test's
      // failover). Bound it as T19 does; calls that timed out against the frozen master were
      // failed open and cancelled, so nothing counts twice on the new master.
      const beforeFreeze = acked.filter((s) => s.endedAt <= frozenAt);
      const rate = beforeFreeze.length / Math.max(0.001, (frozenAt - samples[0].startedAt) / 1000);
      expect(lost).toBeLessThanOrEqual(rate * 1.5);
      expect(used).toBeLessThanOrEqual(acked.length);
    } finally {
      master.thaw();
      await traffic.stop();
    }
  });

  it('fails open within the deadline when the master is killed; what replication had not copied is bounded (T18)', async () => {
    await group.waitUntilHealthy(30_000);
    const limiter = new RateLimiter(manager, 'killed', { tpm: 1e9, rpm: 1e9 }, { logger: recordingLogger() });
    const master = group.node(group.masterPort());
    const traffic = new Traffic(limiter, 4).start();
    try {
      await waitFor(() => traffic.acknowledged().length > 50, 10_000, 'traffic to flow');
      const killedAt = Date.now();
      await master.kill();
      await until(() => group.masterPort() !== master.port, 20_000, 'the sentinels to promote the replica');
      const promotedAt = Date.now();
      await waitFor(
        () => traffic.since(promotedAt + 500).filter((s) => !s.degraded && !s.error).length > 50,
        15_000,
        'traffic on the new master',
      );
      const samples = await traffic.stop();
      const acked = traffic.acknowledged();
      const degraded = samples.filter((s) => s.degraded).length;
      const used = (await limiter.getStatus()).requestsUsed;
      const outage = traffic.outageAfter(killedAt);
      const before = acked.filter((s) => s.endedAt <= killedAt);
      const rate = before.length / ((killedAt - before[0].startedAt) / 1000);
      const lost = Math.max(0, acked.length - used);
      console.log(
        `T18 master SIGKILL: promoted at +${promotedAt - killedAt} ms; ${outage.calls} calls failed open` +
          (outage.calls ? ` from +${outage.fromMs} to +${outage.toMs} ms` : '') +
          `; longest call ${outage.longestCallMs} ms; ${acked.length} acknowledged (${rate.toFixed(0)}/s before the kill), ${used} on the new master, ${lost} lost, ${degraded} degraded`,
      );
      expect(samples.filter((s) => s.error)).toEqual([]);
      expect(outage.longestCallMs).toBeLessThan(4000);
      // Replication is asynchronous: what the master acknowledged but had not yet sent is gone
      // with it. Usually nothing on loopback; never more than 1.5 s of traffic.
      expect(lost).toBeLessThanOrEqual(rate * 1.5);
      expect(used).toBeLessThanOrEqual(acked.length + degraded);
    } finally {
      await traffic.stop();
      await master.startAgain();
    }
  });
});
