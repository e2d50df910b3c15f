// `npm run bench:compare -- <before> <after>`: a lone acquire of two builds of this library, side
// by side in one process against one Redis, next to the floor (a bare EVALSHA of `return 1`).
// Each argument is a checkout (its dist/esm is used; run `npm run build` there first) or a
// dist/esm directory. Rounds rotate between the three sides, so a drift in the machine's speed
// (this one's moves by tens of percent between runs) weighs on all of them alike; what to read
// is `after / before`, per round, then the median. A diagnostic for work on the hot path: it
// answers "did this change make the lone call faster", which two separate `npm run bench` runs
// cannot tell apart from the machine's drift.
//
// Settings (environment): REDIS_URL to use an existing Redis (else a throw-away redis-server is
// started), BENCH_ROUNDS (default 11), BENCH_CALLS (acquires per round and side, default 3000).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { benchRedis } from './redis-server.mjs';
import { median, sequential } from './measure.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 11);
const CALLS = Number(process.env.BENCH_CALLS ?? 3000);
const builds = process.argv.slice(2);
if (builds.length !== 2) {
  console.error('usage: npm run bench:compare -- <before: checkout or dist/esm> <after: checkout or dist/esm>');
  process.exit(2);
}

function entryOf(path) {
  for (const candidate of [resolve(path, 'dist/esm/index.js'), resolve(path, 'index.js')]) {
    if (existsSync(candidate)) return pathToFileURL(candidate).href;
  }
  throw new Error(`${path}: neither dist/esm/index.js nor index.js is there (run npm run build in it)`);
}

const redis = await benchRedis();
const admin = new Redis(redis.url);
const floorClient = new Redis(redis.url);
const floorSha = await floorClient.script('LOAD', 'return 1');
const quiet = { log: () => undefined, warn: (m) => console.warn(m), error: (m) => console.error(m) };
const prefix = `compare${process.pid}`;

// As `npm run bench` measures a lone acquire: acquires only, never settled, in a 1 s window with
// limits that never hold anyone back. Each build on a model of its own.
const sides = [{ name: 'floor', op: () => floorClient.evalsha(floorSha, 0) }];
for (const [k, path] of builds.entries()) {
  const { RateLimiter, RedisConnectionManager } = await import(entryOf(path));
  const manager = new RedisConnectionManager({ url: redis.url });
  const limiter = new RateLimiter(manager, `m${k}`, { tpm: 1e12, rpm: 1e12, windowSeconds: 1 }, { keyPrefix: prefix, logger: quiet });
  sides.push({ name: k === 0 ? 'before' : 'after', op: () => limiter.acquire({ tokens: 1 }), manager });
}

async function scriptUsPerCall() {
  const stats = await admin.info('commandstats');
  const line = stats.split('\r\n').find((l) => l.startsWith('cmdstat_evalsha:'));
  return line ? Number(/usec_per_call=([\d.]+)/.exec(line)[1]) : NaN;
}

// Warm-up: the JIT, the script caches, and a window's worth of records for each model.
for (const side of sides) await sequential(side.op, CALLS);

const p50 = Object.fromEntries(sides.map((s) => [s.name, []]));
const serverUs = Object.fromEntries(sides.map((s) => [s.name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (let k = 0; k < sides.length; k++) {
    const side = sides[(round + k) % sides.length];
    if (redis.owned) await admin.config('RESETSTAT');
    const result = await sequential(side.op, CALLS);
    p50[side.name].push(result.p50Us);
    if (redis.owned) serverUs[side.name].push(await scriptUsPerCall());
  }
  process.stderr.write(`[compare] round ${round + 1} of ${ROUNDS}\n`);
}

const perRound = (a, b) => median(p50[b].map((v, i) => v / p50[a][i]));
const fmt = (v, digits = 1) => (Number.isNaN(v) ? '-' : v.toFixed(digits));
console.log(`Lone acquire, ${ROUNDS} rounds of ${CALLS} calls per side, sides rotated; before: ${builds[0]}; after: ${builds[1]}\n`);
console.log('| side | p50 (median over rounds) | / floor (per round, median) | server time per call |');
console.log('|---|---|---|---|');
for (const side of sides) {
  const ratio = side.name === 'floor' ? '1.00x' : `${fmt(perRound('floor', side.name), 2)}x`;
  console.log(`| ${side.name} | ${fmt(median(p50[side.name]))} µs | ${ratio} | ${fmt(median(serverUs[side.name]))} µs |`);
}
console.log(`\n**after / before**: p50 ${fmt(perRound('before', 'after'), 3)}x (per round, median)`);
if (redis.owned) {
  const server = median(serverUs.after.map((v, i) => v / serverUs.before[i]));
  console.log(`server time (INFO commandstats, EVALSHA usec with the commands it ran) ${fmt(server, 3)}x`);
}

for (const side of sides) await side.manager?.close();
admin.disconnect();
floorClient.disconnect();
await redis.stop();
