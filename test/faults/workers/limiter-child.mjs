// A separate process using the built library (LLMRL_DIST), driven by the parent test through
// argv: `crash` acquires and waits to be killed; `shutdown` closes its manager while acquires
// are in flight and must then exit by itself.
const { RateLimiter, RedisConnectionManager } = await import(`${process.env.LLMRL_DIST}/index.js`);
const [mode, url, prefix] = process.argv.slice(2);
const quiet = { warn: () => undefined, error: () => undefined };

if (mode === 'crash') {
  const manager = new RedisConnectionManager({ url });
  const limiter = new RateLimiter(manager, 'crash', { rpm: 5, windowSeconds: 2 }, { keyPrefix: prefix, logger: quiet });
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await limiter.acquire({ tokens: 1 })).recordId);
  process.send({ acquired: ids });
  // Killed here by the parent: no adjust, no release, no close.
  setInterval(() => undefined, 1000);
} else if (mode === 'shutdown') {
  const manager = new RedisConnectionManager({ url });
  const limiter = new RateLimiter(manager, 'shutdown', { rpm: 1000 }, { keyPrefix: prefix, logger: quiet });
  const pending = Array.from({ length: 20 }, () => limiter.acquire({ tokens: 1 }));
  await new Promise((r) => setTimeout(r, 200));
  await manager.close();
  const results = await Promise.allSettled(pending);
  process.send({ closed: results.map((r) => (r.status === 'fulfilled' ? (r.value.degraded ? 'degraded' : 'ok') : 'rejected')) });
  process.disconnect();
  // Nothing else: the process must now exit on its own.
}
