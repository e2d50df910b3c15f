// Packs the library as npm would publish it and uses the tarball from a throw-away consumer,
// with `import` and with `require()` (CommonJS), the way an application installs it. The
// consumer links the project's installed peers (one copy of @nestjs/core, as in a real app)
// instead of downloading them.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redisUrl, uniquePrefix } from '../support/redis.js';

const root = join(import.meta.dirname, '..', '..');
const run = (command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) =>
  execFileSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });

/** What both consumers do with the package: a bare limiter on Redis, and a Nest app with a decorated provider. */
const consumerBody = (load: string) => `
${load}
const { Injectable } = common;
const { NestFactory } = core;

class Chat {
  ask(prompt) {
    return Promise.resolve({ object: 'chat.completion', usage: { prompt_tokens: prompt.length, completion_tokens: 2 } });
  }
}
const method = Object.getOwnPropertyDescriptor(Chat.prototype, 'ask');
lib.RateLimitLlm({ model: 'm' })(Chat.prototype, 'ask', method);
Object.defineProperty(Chat.prototype, 'ask', method);
Injectable()(Chat);

async function main() {
  const manager = new lib.RedisConnectionManager({ url: process.env.REDIS_URL });
  const bare = new lib.RateLimiter(manager, 'bare', { tpm: 100 }, { keyPrefix: process.env.PREFIX });
  const { degraded } = await bare.acquire({ tokens: 7 });
  const bareUsed = (await bare.getStatus()).tokensUsed;
  await manager.close();

  const app = await NestFactory.createApplicationContext(
    { module: class AppModule {}, imports: [lib.LlmRateLimiterModule.forRoot({ redis: { url: process.env.REDIS_URL }, keyPrefix: process.env.PREFIX, models: { m: { tpm: 10000 } } })], providers: [Chat] },
    { logger: false },
  );
  await app.get(Chat).ask('abcd');
  const decoratedUsed = (await app.get(lib.RateLimiterRegistry).get('m').getStatus()).tokensUsed;
  await app.close();
  console.log(JSON.stringify({ degraded, bareUsed, decoratedUsed, health: typeof health.LlmRateLimiterHealthIndicator }));
}
main().catch((error) => { console.error(error); process.exit(1); });
`;

describe('the npm package', () => {
  let work: string;
  let consumer: string;
  let files: string[];

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'llmrl-pack-'));
    // Build and pack a copy, so the working tree's dist/ is left alone.
    const pkg = join(work, 'pkg');
    mkdirSync(pkg);
    for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'lib', 'lua']) cpSync(join(root, entry), join(pkg, entry), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'), 'dir');
    run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], pkg);
    const packed = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], pkg)) as { filename: string; files: { path: string }[] }[];
    files = packed[0].files.map((f) => f.path);

    consumer = join(work, 'consumer');
    const modules = join(consumer, 'node_modules');
    mkdirSync(modules, { recursive: true });
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    run('tar', ['-xzf', join(work, packed[0].filename), '-C', modules], consumer);
    renameSync(join(modules, 'package'), join(modules, 'nestjs-llm-rate-limiter'));
    for (const peer of ['@nestjs', 'ioredis', 'reflect-metadata', 'rxjs']) symlinkSync(join(root, 'node_modules', peer), join(modules, peer), 'dir');
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships the build, the Lua scripts and the README, and nothing of the tests or the sample', () => {
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/health.js', 'dist/health.d.ts', 'dist/limiter.js', 'dist/limiter.d.ts']));
    const lua = readdirSync(join(root, 'lua')).filter((f) => f.endsWith('.lua'));
    for (const script of lua) expect(files).toContain(`lua/${script}`);
    expect(files.filter((f) => /^(test|sample|bench|lib)\//.test(f))).toEqual([]);
  });

  it.each([
    ['import (ESM)', 'consumer.mjs', `import 'reflect-metadata';\nimport * as lib from 'nestjs-llm-rate-limiter';\nimport * as health from 'nestjs-llm-rate-limiter/health';\nimport * as common from '@nestjs/common';\nimport * as core from '@nestjs/core';`],
    ['require() (CommonJS)', 'consumer.cjs', `require('reflect-metadata');\nconst lib = require('nestjs-llm-rate-limiter');\nconst health = require('nestjs-llm-rate-limiter/health');\nconst common = require('@nestjs/common');\nconst core = require('@nestjs/core');`],
  ])('works when loaded with %s: a limiter on Redis and a decorated Nest provider', (_, file, load) => {
    writeFileSync(join(consumer, file), consumerBody(load));
    const output = run(process.execPath, [file], consumer, { REDIS_URL: redisUrl(), PREFIX: uniquePrefix('pack') });
    expect(JSON.parse(output.trim().split('\n').at(-1)!)).toEqual({ degraded: false, bareUsed: 7, decoratedUsed: 6, health: 'function' });
  });

  it.each([
    ['import (ESM)', 'bare.mjs', `import { RateLimiter, RedisConnectionManager } from 'nestjs-llm-rate-limiter/core';`],
    ['require() (CommonJS)', 'bare.cjs', `const { RateLimiter, RedisConnectionManager } = require('nestjs-llm-rate-limiter/core');`],
  ])('loads the limiter from /core with %s where only ioredis is installed', (_, file, load) => {
    const bare = join(work, 'bare');
    const modules = join(bare, 'node_modules');
    mkdirSync(modules, { recursive: true });
    cpSync(join(consumer, 'node_modules', 'nestjs-llm-rate-limiter'), join(modules, 'nestjs-llm-rate-limiter'), { recursive: true });
    symlinkSync(join(root, 'node_modules', 'ioredis'), join(modules, 'ioredis'), 'dir');
    writeFileSync(
      join(bare, file),
      `${load}
async function main() {
  const manager = new RedisConnectionManager({ url: process.env.REDIS_URL });
  const limiter = new RateLimiter(manager, 'bare', { tpm: 100 }, { keyPrefix: process.env.PREFIX });
  await limiter.acquire({ tokens: 9 });
  console.log((await limiter.getStatus()).tokensUsed);
  await manager.close();
}
main().catch((error) => { console.error(error); process.exit(1); });
`,
    );
    const output = run(process.execPath, [file], bare, { REDIS_URL: redisUrl(), PREFIX: uniquePrefix('bare') });
    expect(output.trim()).toBe('9');
    rmSync(bare, { recursive: true, force: true });
  });
});
