// `npm run bench:steps`: where the acquire script's time goes. The script is cut short after
// each of its steps in turn (a `return` inserted there) and each cut version is timed by the
// server (INFO commandstats), for a lone request per call and for a group of 18 per call (the
// group size at 64 callers in `npm run bench`). The difference between two cuts is what the step
// between them costs. A diagnostic for work on the script, not a comparison: run it on a quiet
// machine, the differences are a few µs.
//
// Settings (environment): REDIS_URL to use an existing Redis (else a throw-away redis-server is
// started), BENCH_ROUNDS (default 7), BENCH_CALLS (calls per round and cut, default 2000).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { loadScript } from '../dist/redis/scripts.js';
import { benchRedis } from './redis-server.mjs';
import { median } from './measure.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CALLS = Number(process.env.BENCH_CALLS ?? 2000);
const GROUPS = [1, 18];
const CUT = 'if true then return 1 end\n';

// Each step ends where its text begins (`before`) or ends (`after`) in lua/acquire.lua.
const STEPS = [
  ['arguments read, server TIME', { after: 'local n = bucket_of(now, W, B)\n' }],
  ['HMGET of the window hash', { before: 'local pause = tonumber(state[9]) or 0\n' }],
  ['old buckets dropped, current chunk parsed', { after: 'buckets.seed(chunk_of(n), state[8])\n' }],
  ['ZMSCORE of the op ids', { before: 'local reply = { now }\n' }],
  ['requests placed', { before: 'if #added > 0 or moved then\n' }],
  ['running figures formatted', { before: '  write_window(window, buckets, fields)\n' }],
  ['buckets formatted, HSET of the window hash', { after: '  write_window(window, buckets, fields)\n' }],
  ['ZADD to the ops ring', { after: "    redis.call('ZADD', ring, unpack(added))\n" }],
  ['ring trimmed, TTLs, reply', null],
];

const full = loadScript('acquire');
function cutAt(step) {
  if (!step) return full;
  const text = step.before ?? step.after;
  const at = full.indexOf(text);
  if (at < 0 || full.indexOf(text, at + 1) >= 0) throw new Error(`lua/acquire.lua changed: "${text.trim()}" is not found exactly once; update STEPS`);
  const cut = step.before ? at : at + text.length;
  return full.slice(0, cut) + CUT + full.slice(cut);
}

const redis = await benchRedis();
const client = new Redis(redis.url);
const prefix = `steps${randomBytes(3).toString('hex')}`;
const versions = [['(floor: `return 1`)', 'return 1'], ...STEPS.map(([label, step]) => [label, cutAt(step)])];
const shas = await Promise.all(versions.map(([, lua]) => client.script('LOAD', lua)));

let opCount = 0;
/** Server µs per call of `sha` with `group` requests per call, on a model of its own. */
async function timed(sha, group) {
  const keys = [`{${prefix}:m${opCount}}:w`, `{${prefix}:m${opCount}}:o`];
  await client.config('RESETSTAT');
  const pending = [];
  for (let call = 0; call < CALLS; call++) {
    // Wide limits (nothing waits), 60 s window, 100 buckets, ring as the library sends it.
    const args = [60_000, 100, 1e12, 0, 0, 1e12, 30_000, 256, 0, 0, 0, group];
    for (let k = 0; k < group; k++) args.push(`op${(opCount++).toString(36).padStart(14, '0')}`, 1, 0, 0, 1, -1);
    pending.push(client.evalsha(sha, 2, ...keys, ...args));
    if (pending.length === 4) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  const stats = await client.info('commandstats');
  const line = stats.split('\r\n').find((l) => l.startsWith('cmdstat_evalsha:'));
  await client.del(...keys);
  return Number(/usec_per_call=([\d.]+)/.exec(line)[1]);
}

const samples = Object.fromEntries(GROUPS.map((g) => [g, versions.map(() => [])]));
for (let round = 0; round < ROUNDS; round++) {
  for (const group of GROUPS) {
    // Rotate the order, so a drift in machine load favours no cut.
    for (let k = 0; k < versions.length; k++) {
      const v = (round + k) % versions.length;
      samples[group][v].push(await timed(shas[v], group));
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
  '# Benchmark: where acquire.lua spends its time',
  '',
  `${new Date().toISOString().slice(0, 10)}, commit ${commit}; Redis ${(await client.info('server')).match(/redis_version:(\S+)/)[1]}; medians of ${ROUNDS} rounds of ${CALLS} calls per cut, server time (INFO commandstats).`,
  '',
  '| the script up to and including | 1 request per call | step | 18 per call, per request | step |',
  '|---|---|---|---|---|',
];
const at = (group, v) => median(samples[group][v]) / group;
versions.forEach(([label], v) => {
  const step = (group) => (v === 0 ? '' : us(at(group, v) - at(group, v - 1)));
  lines.push(`| ${label} | ${us(at(1, v))} | ${step(1)} | ${us(at(18, v))} | ${step(18)} |`);
});
const report = lines.join('\n') + '\n';
process.stdout.write(report);
writeFileSync(new URL('./steps-results.md', import.meta.url), report);

client.disconnect();
await redis.stop();
