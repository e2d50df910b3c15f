import { Cluster, Redis } from 'ioredis';
import { RateLimitConfigError, RedisConnectionManager } from '../../lib/index.js';

describe('RedisConnectionManager options per topology', () => {
  const managers: RedisConnectionManager[] = [];
  afterAll(() => Promise.all(managers.map((m) => m.close())));
  const make = (options: ConstructorParameters<typeof RedisConnectionManager>[0]) => {
    const m = new RedisConnectionManager(options);
    managers.push(m);
    return m;
  };

  it('gives a single server the limiter fail-fast settings, TLS from rediss:// and the URL user', () => {
    const m = make({ url: 'rediss://limiter:secret@cache.internal:6380/2', tls: { servername: 'cache.internal' } });
    const { options } = m.client;
    expect(m.topology).toBe('standalone');
    expect(options).toMatchObject({
      host: 'cache.internal',
      port: 6380,
      db: 2,
      username: 'limiter',
      password: 'secret',
      tls: { servername: 'cache.internal' },
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    expect(
      options.reconnectOnError?.(
        Object.assign(new Error("READONLY You can't write against a read only replica."), { name: 'ReplyError' }) as never,
      ),
    ).toBe(1);
  });

  it('carries rediss:// and user:password of cluster node URLs to every node, and tunes redirections', () => {
    const m = make({ cluster: { nodes: ['rediss://limiter:secret@10.0.0.1:7000', '10.0.0.2:7001', { host: '10.0.0.3', port: 7002 }] } });
    const cluster = m.cluster;
    expect(cluster).toBeInstanceOf(Cluster);
    expect(m.topology).toBe('cluster');
    expect(cluster.options).toMatchObject({
      enableOfflineQueue: false,
      lazyConnect: true,
      maxRedirections: 16,
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
      redisOptions: { username: 'limiter', password: 'secret', tls: {}, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 },
    });
    expect(cluster.options.redisOptions).not.toHaveProperty('enableOfflineQueue');
    expect(() => m.client).toThrow(/manager.cluster/);
  });

  it('lets cluster options override the defaults and merges their redisOptions', () => {
    const m = make({
      username: 'u',
      password: 'p',
      cluster: { nodes: ['127.0.0.1:7000'], options: { maxRedirections: 4, redisOptions: { connectionName: 'x' } } },
    });
    expect(m.cluster.options).toMatchObject({ maxRedirections: 4, redisOptions: { username: 'u', password: 'p', connectionName: 'x' } });
  });

  it('connects through sentinels with failoverDetector on, and TLS to sentinels on request', () => {
    const m = make({
      sentinel: { sentinels: [{ host: '10.0.0.1', port: 26379 }], name: 'mymaster', sentinelPassword: 's', sentinelTls: true },
      username: 'limiter',
      password: 'secret',
      tls: true,
    });
    expect(m.topology).toBe('sentinel');
    expect(m.client).toBeInstanceOf(Redis);
    expect(m.client.options).toMatchObject({
      sentinels: [{ host: '10.0.0.1', port: 26379 }],
      name: 'mymaster',
      failoverDetector: true,
      sentinelPassword: 's',
      enableTLSForSentinelMode: true,
      sentinelTLS: {},
      username: 'limiter',
      password: 'secret',
      tls: {},
      enableOfflineQueue: false,
    });
  });

  it('knows the topology of an application-owned client', async () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    expect(make({ client: cluster }).topology).toBe('cluster');
    cluster.disconnect();
  });

  it('rejects contradictory or malformed topology options', () => {
    expect(() => new RedisConnectionManager({ cluster: { nodes: [] } })).toThrow(/at least one startup node/);
    expect(() => new RedisConnectionManager({ cluster: { nodes: ['http://x:1'] } })).toThrow(/redis:\/\/ or rediss:\/\//);
    expect(() => new RedisConnectionManager({ cluster: { nodes: [{ host: 'x', port: 0 }] } })).toThrow(/cluster.nodes\[0\]/);
    expect(() => new RedisConnectionManager({ sentinel: { sentinels: [], name: 'm' } })).toThrow(/at least one sentinel/);
    expect(() => new RedisConnectionManager({ sentinel: { sentinels: [{ host: 'x', port: 1 }], name: '' } })).toThrow(/sentinel.name/);
    expect(
      () => new RedisConnectionManager({ cluster: { nodes: ['x:1'] }, sentinel: { sentinels: [{ host: 'x', port: 1 }], name: 'm' } }),
    ).toThrow(RateLimitConfigError);
  });
});
