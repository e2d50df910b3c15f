// The Redis a benchmark runs against: REDIS_URL when set, else a throw-away redis-server from
// PATH on a free loopback port (the repository's one launcher), stopped when the benchmark ends.
import { RedisServerProcess } from '../tools/redis-server.mjs';

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
  const server = await RedisServerProcess.start();
  return { url: server.url, owned: true, pid: server.pid, stop: () => server.stop() };
}
