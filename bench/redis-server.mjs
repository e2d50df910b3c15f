// The Redis a benchmark runs against: REDIS_URL when set, else a throw-away redis-server from
// PATH on a free loopback port, stopped when the benchmark ends.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function answersPing(url) {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/**
 * Resolves with `{ url, owned, pid, stop }`. `owned` is true when the server was started here (only
 * then may the benchmark reset its statistics freely). `pid` is the redis-server process, whose
 * CPU time the benchmark reads from /proc: the one started here, or BENCH_REDIS_PID beside
 * REDIS_URL (undefined when not given: the CPU figures are then left out).
 */
export async function benchRedis() {
  if (process.env.REDIS_URL) {
    const pid = process.env.BENCH_REDIS_PID ? Number(process.env.BENCH_REDIS_PID) : undefined;
    return { url: process.env.REDIS_URL, owned: false, pid, stop: async () => undefined };
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'llmrl-bench-redis-'));
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const failed = new Promise((_, reject) => {
    child.once('error', (error) =>
      reject(
        new Error(
          `could not start redis-server (${error.message}): install Redis (Debian/Ubuntu: sudo apt-get install -y redis-server) or set REDIS_URL`,
        ),
      ),
    );
    child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code} before answering`)));
  });
  const url = `redis://127.0.0.1:${port}`;
  const ready = (async () => {
    const until = Date.now() + 5000;
    while (!(await answersPing(url))) {
      if (Date.now() > until) throw new Error(`redis-server on port ${port} did not answer PING within 5 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await Promise.race([ready, failed]);
  child.removeAllListeners('exit');
  return {
    url,
    owned: true,
    pid: child.pid,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
