// Tests that stop, restart, freeze or reconfigure a server use one of their own, started by the
// repository's one launcher (tools/redis-server.mjs, shared with the benchmarks).
export {
  freePort,
  RedisServerProcess as OwnRedisServer,
  type RedisServerOptions as OwnRedisServerOptions,
} from '../../tools/redis-server.mjs';
