// Packs the library as npm would publish it and uses the tarball from a throw-away consumer,
// with `import` and with `require()` (CommonJS), the way an application installs it. The
// consumer links the project's installed peers (one copy of @nestjs/core, as in a real app)
// instead of downloading them.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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
  console.log(JSON.stringify({ degraded, bareUsed, decoratedUsed, health: typeof health.LlmRateLimiterHealthIndicator, build: resolved.replace(/^.*\\/dist\\//, '') }));
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
    for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.cjs.json', 'README.md', 'lib', 'lua', 'scripts'])
      cpSync(join(root, entry), join(pkg, entry), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'), 'dir');
    run(process.execPath, [join('scripts', 'build.mjs')], pkg);
    const packed = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], pkg)) as {
      filename: string;
      files: { path: string }[];
    }[];
    files = packed[0].files.map((f) => f.path);

    consumer = join(work, 'consumer');
    const modules = join(consumer, 'node_modules');
    mkdirSync(modules, { recursive: true });
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    run('tar', ['-xzf', join(work, packed[0].filename), '-C', modules], consumer);
    renameSync(join(modules, 'package'), join(modules, 'nestjs-llm-rate-limiter'));
    for (const peer of ['@nestjs', 'ioredis', 'reflect-metadata', 'rxjs'])
      symlinkSync(join(root, 'node_modules', peer), join(modules, peer), 'dir');
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships both builds with their declarations and the README, and nothing of the sources, tests or sample', () => {
    for (const format of ['esm', 'commonjs']) {
      const entries = ['index', 'health', 'limiter'].flatMap((entry) => [`dist/${format}/${entry}.js`, `dist/${format}/${entry}.d.ts`]);
      expect(files).toEqual(
        expect.arrayContaining([
          'package.json',
          'README.md',
          `dist/${format}/package.json`,
          `dist/${format}/redis/lua-sources.generated.js`,
          ...entries,
        ]),
      );
    }
    expect(files.filter((f) => /^(test|sample|bench|lib|lua|scripts|consumers)\//.test(f))).toEqual([]);
  });

  it('has no import.meta in the CommonJS build, and the Lua scripts compiled into both builds', () => {
    const dist = join(consumer, 'node_modules', 'nestjs-llm-rate-limiter', 'dist');
    const commonjs = files.filter((f) => f.startsWith('dist/commonjs/') && f.endsWith('.js'));
    expect(commonjs.length).toBeGreaterThan(10);
    for (const file of commonjs)
      expect([file, readFileSync(join(dist, '..', file), 'utf8').includes('import.meta')]).toEqual([file, false]);
    const queue = readFileSync(join(root, 'lua', 'queue.lua'), 'utf8');
    for (const format of ['esm', 'commonjs'])
      expect(readFileSync(join(dist, format, 'redis', 'lua-sources.generated.js'), 'utf8')).toContain(JSON.stringify(queue));
  });

  it.each([
    [
      'import (ESM)',
      'consumer.mjs',
      'esm/index.js',
      `import 'reflect-metadata';\nimport * as lib from 'nestjs-llm-rate-limiter';\nimport * as health from 'nestjs-llm-rate-limiter/health';\nimport * as common from '@nestjs/common';\nimport * as core from '@nestjs/core';\nconst resolved = import.meta.resolve('nestjs-llm-rate-limiter');`,
    ],
    [
      'require() (CommonJS)',
      'consumer.cjs',
      'commonjs/index.js',
      `require('reflect-metadata');\nconst lib = require('nestjs-llm-rate-limiter');\nconst health = require('nestjs-llm-rate-limiter/health');\nconst common = require('@nestjs/common');\nconst core = require('@nestjs/core');\nconst resolved = require.resolve('nestjs-llm-rate-limiter');`,
    ],
  ])('works when loaded with %s: a limiter on Redis and a decorated Nest provider', (_, file, build, load) => {
    writeFileSync(join(consumer, file), consumerBody(load));
    const output = run(process.execPath, [file], consumer, { REDIS_URL: redisUrl(), PREFIX: uniquePrefix('pack') });
    expect(JSON.parse(output.trim().split('\n').at(-1)!)).toEqual({
      degraded: false,
      bareUsed: 7,
      decoratedUsed: 6,
      health: 'function',
      build,
    });
  });

  it('serves an app that loads both builds: injection and instanceof work across the CommonJS and the ESM copy', () => {
    // A CommonJS part of the app (a dependency, say) requires the package; the ESM part imports it
    // and registers the root module. Plain JavaScript, so decorators are applied by hand.
    writeFileSync(
      join(consumer, 'side.cjs'),
      `const cjs = require('nestjs-llm-rate-limiter');
const { Inject, Injectable } = require('@nestjs/common');

class SideService {
  constructor(registry, limiter, connections) {
    Object.assign(this, { registry, limiter, connections });
  }
  ask(prompt) {
    return Promise.resolve({ object: 'chat.completion', usage: { prompt_tokens: prompt.length, completion_tokens: 1 } });
  }
}
const method = Object.getOwnPropertyDescriptor(SideService.prototype, 'ask');
cjs.RateLimitLlm({ model: 'm', maxWaitMs: 100 })(SideService.prototype, 'ask', method);
Object.defineProperty(SideService.prototype, 'ask', method);
Inject(cjs.RateLimiterRegistry)(SideService, undefined, 0);
cjs.InjectRateLimiter('m')(SideService, undefined, 1);
Inject(cjs.RedisConnectionManager)(SideService, undefined, 2);
Injectable()(SideService);

// A feature module of the CommonJS copy: its limiter comes from the ESM copy's root module.
class SideModule {}
const SideModuleDefinition = { module: SideModule, imports: [cjs.LlmRateLimiterModule.forFeature(['m'])], providers: [SideService], exports: [SideService] };
module.exports = { cjs, SideService, SideModuleDefinition, resolved: require.resolve('nestjs-llm-rate-limiter') };
`,
    );
    writeFileSync(
      join(consumer, 'both.mjs'),
      `import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import * as esm from 'nestjs-llm-rate-limiter';
import side from './side.cjs';

const { cjs, SideService, SideModuleDefinition } = side;
const app = await NestFactory.createApplicationContext(
  {
    module: class AppModule {},
    imports: [esm.LlmRateLimiterModule.forRoot({ isGlobal: true, redis: { url: process.env.REDIS_URL }, keyPrefix: process.env.PREFIX, models: { m: { rpm: 1 } } }), SideModuleDefinition],
  },
  { logger: false },
);
try {
  const service = app.get(SideService);
  const registry = app.get(esm.RateLimiterRegistry);
  await service.ask('abc');
  const refused = await service.ask('again').then(() => undefined, (error) => error);
  const fromCjs = new cjs.RequestTooLargeError('too large', 'tpm', 2, 1);
  console.log(JSON.stringify({
    twoCopies: cjs.RateLimiterRegistry !== esm.RateLimiterRegistry,
    builds: [side.resolved, import.meta.resolve('nestjs-llm-rate-limiter')].map((f) => f.replace(/^.*\\/dist\\//, '')),
    registryInjected: service.registry === registry,
    limiterInjected: service.limiter === registry.get('m'),
    connectionsInjected: service.connections === app.get(esm.RedisConnectionManager) && service.connections !== null,
    requestsUsed: (await registry.get('m').getStatus()).requestsUsed,
    refused: refused?.name,
    refusedIsEsm: refused instanceof esm.AcquireTimeoutError,
    refusedIsCjs: refused instanceof cjs.AcquireTimeoutError && refused instanceof cjs.LlmRateLimiterError,
    cjsIsEsm: fromCjs instanceof esm.RequestTooLargeError && fromCjs instanceof esm.LlmRateLimiterError,
    notOtherClass: fromCjs instanceof esm.AcquireTimeoutError || refused instanceof cjs.RequestTooLargeError || new Error('x') instanceof cjs.LlmRateLimiterError,
  }));
} finally {
  await app.close();
}
`,
    );
    const output = run(process.execPath, ['both.mjs'], consumer, { REDIS_URL: redisUrl(), PREFIX: uniquePrefix('both') });
    expect(JSON.parse(output.trim().split('\n').at(-1)!)).toEqual({
      twoCopies: true,
      builds: ['commonjs/index.js', 'esm/index.js'],
      registryInjected: true,
      limiterInjected: true,
      connectionsInjected: true,
      requestsUsed: 1,
      refused: 'AcquireTimeoutError',
      refusedIsEsm: true,
      refusedIsCjs: true,
      cjsIsEsm: true,
      notOtherClass: false,
    });
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
