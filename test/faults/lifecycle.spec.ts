// Child processes against the built library: T39 (a process dies holding reservations) and
// T43 (a process shuts down with acquires in flight and exits by itself).
import { execFileSync, fork } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AcquireTimeoutError, RateLimiter, RedisConnectionManager } from '../../lib/index.js';
import { modelKeys } from '../../lib/redis/keys.js';
import { recordingLogger } from '../support/backends.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { closeClient, inspector, redisUrl, uniquePrefix, waitFor } from '../support/redis.js';

const ROOT = process.cwd();
// Inside node_modules so the children resolve ioredis; lua/ beside dist/ as in the package.
const BUILD = join(ROOT, 'node_modules', '.cache', 'llmrl-faults');
const WORKER = join(ROOT, 'test', 'faults', 'workers', 'limiter-child.mjs');

function runChild(args: string[]) {
  const child = fork(WORKER, args, {
    env: { ...process.env, LLMRL_DIST: join(BUILD, 'dist') },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(Date.now())));
  const message = new Promise<Record<string, string[]>>((resolve, reject) => {
    child.once('message', (m) => resolve(m as Record<string, string[]>));
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before reporting`)));
  });
  return { child, exited, message };
}

describe('separate processes', () => {
  beforeAll(() => {
    rmSync(BUILD, { recursive: true, force: true });
    mkdirSync(BUILD, { recursive: true });
    execFileSync(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', join(BUILD, 'dist')],
      { cwd: ROOT, stdio: 'pipe' },
    );
    cpSync(join(ROOT, 'lua'), join(BUILD, 'lua'), { recursive: true });
  }, 120_000);

  afterAll(() => {
    rmSync(BUILD, { recursive: true, force: true });
  });

  it('gives back what a crashed process held once its window passes (T39)', async () => {
    const prefix = uniquePrefix();
    const { child, exited, message } = runChild(['crash', redisUrl(), prefix]);
    try {
      expect((await message).acquired).toHaveLength(5);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const manager = new RedisConnectionManager({ url: redisUrl() });
    const redis = inspector();
    try {
      const limiter = new RateLimiter(manager, 'crash', { rpm: 5, windowSeconds: 2 }, { keyPrefix: prefix, logger: recordingLogger() });
      expect((await limiter.getStatus()).requestsUsed).toBe(5);
      await expect(limiter.acquire({ tokens: 1 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
      // nothing leaks for good: every key of the model carries a TTL
      for (const key of Object.values(modelKeys(prefix, 'crash'))) {
        const ttl = await redis.pttl(key);
        if (ttl !== -2) expect(ttl).toBeGreaterThan(0);
      }
      await waitFor(async () => (await limiter.getStatus()).requestsUsed === 0, 5000, 'the window to pass');
      await expect(limiter.acquire({ tokens: 1 }, { maxWaitMs: 0 })).resolves.toMatchObject({ degraded: false, waitTime: 0 });
    } finally {
      await manager.close();
      await closeClient(redis);
    }
  });

  it('settles in-flight acquires on close and then exits without help (T43)', async () => {
    const proxy = await FaultProxy.start(Number(new URL(redisUrl()).port));
    proxy.setLatency(400);
    try {
      const { exited, message } = runChild(['shutdown', proxy.url, uniquePrefix()]);
      const closed = (await message).closed;
      const reportedAt = Date.now();
      expect(closed).toHaveLength(20);
      expect(closed.every((r) => r === 'degraded' || r === 'ok')).toBe(true);
      // no timer or socket of the library keeps the process alive
      expect((await exited) - reportedAt).toBeLessThan(3000);
    } finally {
      await proxy.close();
    }
  });
});
