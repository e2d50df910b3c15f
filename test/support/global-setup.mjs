// Finds the Redis the tests run against, in this order: REDIS_URL; a throw-away redis-server
// from PATH on a free loopback port; a Testcontainers container. With none, the run fails and
// says how to get one: the suite never skips its Redis tests.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForPing(port, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const r = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (r.stdout?.trim() === 'PONG') return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within ${ms} ms`);
}

async function spawnRedis() {
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.error) return undefined;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'llmrl-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
    detached: true,
  });
  child.unref();
  await waitForPing(port, 5000);
  return { url: `redis://127.0.0.1:${port}`, stop: () => { try { process.kill(child.pid); } catch {} rmSync(dir, { recursive: true, force: true }); } };
}

async function startContainer() {
  try {
    const { GenericContainer } = await import('testcontainers');
    const container = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start();
    return { url: `redis://${container.getHost()}:${container.getMappedPort(6379)}`, stop: () => container.stop() };
  } catch (error) {
    return { error };
  }
}

export default async function globalSetup() {
  if (process.env.REDIS_URL) {
    process.env.LLMRL_TEST_REDIS_URL = process.env.REDIS_URL;
    return;
  }
  let redis = await spawnRedis();
  if (!redis) {
    const container = await startContainer();
    if (container.error) {
      throw new Error(
        'The tests need a real Redis and none could be had:\n' +
          '  - REDIS_URL is not set,\n' +
          '  - redis-server is not on PATH,\n' +
          `  - Testcontainers could not start a container (${container.error.message}).\n` +
          'Do one of: install Redis (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis), ' +
          'set REDIS_URL=redis://host:port to a Redis you may flush, or start a Docker daemon.',
      );
    }
    redis = container;
  }
  process.env.LLMRL_TEST_REDIS_URL = redis.url;
  globalThis.__llmrlRedis = redis;
}
