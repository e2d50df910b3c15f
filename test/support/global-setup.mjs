// Finds the Redis the tests run against, in this order: REDIS_URL; a throw-away redis-server
// from PATH on a free loopback port; a Testcontainers container. With none, the run fails and
// says how to get one: the suite never skips its Redis tests.
import { INSTALL_HINT, RedisServerProcess, redisServerInstalled } from '../../tools/redis-server.mjs';

async function spawnRedis() {
  if (!(await redisServerInstalled())) return undefined;
  return RedisServerProcess.start([], { detached: true });
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
          `Do one of: ${INSTALL_HINT}, or start a Docker daemon.`,
      );
    }
    redis = container;
  }
  process.env.LLMRL_TEST_REDIS_URL = redis.url;
  globalThis.__llmrlRedis = redis;
}
