export default async function globalTeardown() {
  await globalThis.__llmrlRedis?.stop();
}
