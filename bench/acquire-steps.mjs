// `npm run bench:steps`: where lua/queue.lua (with its includes, as the library loads it) spends
// its time. The script is cut short after each of its steps in turn (a `return` inserted there)
// and each cut version is timed by the server (INFO commandstats) for three kinds of call: a lone
// acquire admitted at once (a path of its own, cut at its own steps), a group of 18 such acquires
// (the group size at 64 callers in `npm run bench`), and a lone adjust of an admitted reservation.
// The difference between two cuts is what the step between them costs. A diagnostic for work on the script, not a comparison: run it on
// a quiet machine, the differences are a few µs.
//
// Settings (environment): REDIS_URL to use an existing Redis (else a throw-away redis-server is
// started), BENCH_ROUNDS (default 5), BENCH_CALLS (calls per round, cut and kind, default 1000).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { loadScript } from '../dist/esm/redis/scripts.js';
import { benchRedis } from './redis-server.mjs';
import { median } from './measure.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CALLS = Number(process.env.BENCH_CALLS ?? 1000);
const CUT = 'if true then return 1 end\n';

// Each step ends where its text begins (`before`) or ends (`after`) in lua/queue.lua. The calls
// timed here are all the script's common call: a lone acquire takes its own path (lone_acquire in
// lua/includes/fast.lua), batches and settles the fast path (fast_call), each with steps of its own.
const PROLOGUE = ['functions defined, settings read, server TIME', { before: '-- What the fast path read before it handed' }];
const PATHS = [
  {
    title: 'A lone acquire (lone_acquire)',
    kinds: ['1 acquire per call'],
    steps: [
      PROLOGUE,
      ['HMGET of the state hash, the checks, the limits', { before: '  trim_records(records, expiry, now)\n  local op = argv[at + 1]' }],
      ['trim: ZRANGEBYSCORE of expiry (HDEL, ZREM of what is due)', { before: '  local op = argv[at + 1]\n' }],
      ['ZADD NX of the op id into expiry (is it known?)', { before: "  -- As fast_call: the bucket's entry plus the cost" }],
      ["the bucket's entry edited into its chunk", { before: '  local f1, f2, f3, f4 = fmt(s1), fmt(s2), fmt(s3), fmt(s4)\n  local last' }],
      ['HSET of the state hash', { before: '  local slot = fmt(now)\n' }],
      ['HSET of the record, PEXPIREAT of records and expiry, the reply', null],
    ],
  },
  {
    title: 'Batches and settles (fast_call)',
    kinds: ['18 acquires per call, per acquire', '1 adjust per call'],
    steps: [
      PROLOGUE,
      ['HMGET of the state hash, checks that the fast path applies', { before: '  local ops = {}\n  local seen = {}\n' }],
      ['trim: ZRANGEBYSCORE of expiry (HDEL, ZREM of what is due)', { before: "  local stored = redis.call('HMGET', records" }],
      ['the records the commands name (one HMGET)', { after: "  local stored = redis.call('HMGET', records, unpack(ops))\n" }],
      ['the commands (bucket chunks edited, records and reply built)', { before: "  -- As window_capacity's write and write_window" }],
      ['HSET of the state hash', { before: '  local exp = v[4]\n' }],
      ['HSET of records, ZADD of expiry, PEXPIREAT of both', null],
    ],
  },
];

const full = loadScript('queue');
function cutAt(step) {
  if (!step) return full;
  const text = step.before ?? step.after;
  const at = full.indexOf(text);
  if (at < 0 || full.indexOf(text, at + 1) >= 0)
    throw new Error(`lua/queue.lua changed: "${text.trim()}" is not found exactly once; update PATHS`);
  const cut = step.before ? at : at + text.length;
  return full.slice(0, cut) + CUT + full.slice(cut);
}

const redis = await benchRedis();
const client = new Redis(redis.url);
const prefix = `steps${randomBytes(3).toString('hex')}`;
const FLOOR = ['(floor: `return 1`)', 'return 1'];
// Per path: its cut versions, the floor first, the whole script last.
for (const path of PATHS) {
  path.versions = [FLOOR, ...path.steps.map(([label, step]) => [label, cutAt(step)])];
  path.shas = await Promise.all(path.versions.map(([, lua]) => client.script('LOAD', lua)));
}
const fullSha = await client.script('LOAD', full);

// As lib/redis/redis-store.ts sends them: sliding window, 60 s, 100 buckets, no pacing, wide
// limits (nothing waits), tombstones 10 s, lease 5 s, at most 256 admissions a step, no channel,
// the server's clock.
const HEAD = [['w', 60_000, 100, 0, 1e12, 0, 0, 1e12, 0, 0, 10_000, 5_000, 256, -1].join('|'), ''];
const keysOf = (model) => ['w', 'q', 'r', 'x', 'o'].map((k) => `{${prefix}:${model}}:${k}`);
let opCount = 0;
const newOp = () => `op${(opCount++).toString(36).padStart(14, '0')}`;
const acquire = (op) => ['A', op, 'owner0000000000', 210, 10, 200, 1, -1, -1];
const adjust = (op) => ['S', op, 'adjust', 1, 30, 10, 20];

/** Server µs per call of `sha`, each call made of `commandsOf()`'s commands, on `keys`. */
async function timed(sha, keys, commandsOf) {
  await client.config('RESETSTAT');
  const pending = [];
  for (let call = 0; call < CALLS; call++) {
    const commands = commandsOf(call);
    pending.push(client.evalsha(sha, 5, ...keys, ...HEAD, commands.length, ...commands.flat()));
    if (pending.length === 4) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  const stats = await client.info('commandstats');
  const line = stats.split('\r\n').find((l) => l.startsWith('cmdstat_evalsha:'));
  return Number(/usec_per_call=([\d.]+)/.exec(line)[1]);
}

/** Admits `count` reservations on `keys` with the whole script; resolves with their op ids. */
async function admitted(keys, count) {
  const ops = [];
  for (let at = 0; at < count; at += 100) {
    const batch = Array.from({ length: Math.min(100, count - at) }, newOp);
    await client.evalsha(fullSha, 5, ...keys, ...HEAD, batch.length, ...batch.flatMap(acquire));
    ops.push(...batch);
  }
  return ops;
}

/** Per kind of call: commands per call, and what makes the calls (given the model's keys). */
const KINDS = {
  '1 acquire per call': [1, () => () => [acquire(newOp())]],
  '18 acquires per call, per acquire': [18, () => () => Array.from({ length: 18 }, () => acquire(newOp()))],
  '1 adjust per call': [
    1,
    async (keys) => {
      const ops = await admitted(keys, CALLS);
      return (call) => [adjust(ops[call])];
    },
  ],
};

let model = 0;
for (const path of PATHS) path.samples = path.kinds.map(() => path.versions.map(() => []));
for (let round = 0; round < ROUNDS; round++) {
  for (const path of PATHS) {
    for (const [kind, name] of path.kinds.entries()) {
      // Rotate the order, so a drift in machine load favours no cut.
      for (let k = 0; k < path.versions.length; k++) {
        const v = (round + k) % path.versions.length;
        const keys = keysOf(`m${model++}`);
        const commandsOf = await KINDS[name][1](keys);
        path.samples[kind][v].push(await timed(path.shas[v], keys, commandsOf));
        await client.del(...keys);
      }
    }
  }
  process.stderr.write(`[bench:steps] round ${round + 1} of ${ROUNDS}\n`);
}

let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  if (execFileSync('git', ['status', '--porcelain', '--', 'lua'], { encoding: 'utf8' }).trim()) commit += ' (lua/ modified)';
} catch {
  // Not a git checkout: the commit stays unknown.
}
const us = (n) => `${n.toFixed(1)} µs`;
const lines = [
  '# Benchmark: where lua/queue.lua spends its time',
  '',
  `${new Date().toISOString().slice(0, 10)}, commit ${commit}; Redis ${(await client.info('server')).match(/redis_version:(\S+)/)[1]}; medians of ${ROUNDS} rounds of ${CALLS} calls per cut and kind, server time (INFO commandstats: EVALSHA usec, the commands the script ran included).`,
];
for (const path of PATHS) {
  lines.push('', `## ${path.title}`, '');
  lines.push(`| the script up to and including | ${path.kinds.map((label) => `${label} | step`).join(' | ')} |`);
  lines.push(`|---|${path.kinds.map(() => '---|---|').join('')}`);
  const at = (kind, v) => median(path.samples[kind][v]) / KINDS[path.kinds[kind]][0];
  path.versions.forEach(([label], v) => {
    const cells = path.kinds.map((_, kind) => `${us(at(kind, v))} | ${v === 0 ? '' : us(at(kind, v) - at(kind, v - 1))}`);
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
  });
}
const report = lines.join('\n') + '\n';
process.stdout.write(report);
writeFileSync(new URL('./steps-results.md', import.meta.url), report);

client.disconnect();
await redis.stop();
