import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { FAKE_PROVIDER_LIMITS } from './fake-provider.js';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule);
  app.enableShutdownHooks();
  const port = process.env.PORT === undefined ? 3000 : Number(process.env.PORT);
  await app.listen(port, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', 'localhost');
  const logger = new Logger('Sample');
  const { tpm, rpm, windowSeconds } = FAKE_PROVIDER_LIMITS;
  logger.log(`listening on ${url}`);
  logger.log(
    `store: ${process.env.REDIS_URL ? `Redis at ${process.env.REDIS_URL}` : 'in memory (set REDIS_URL to share limits between instances)'}`,
  );
  logger.log(`the fake provider allows ${rpm} requests and ${tpm} tokens per ${windowSeconds} s, and answers 429 beyond that`);
  logger.log('try:');
  logger.log(`  curl -s -X POST ${url}/chat -H 'content-type: application/json' -d '{"prompt":"Hello","maxTokens":200}'`);
  logger.log(`  curl -sN '${url}/chat/stream?prompt=Hello'`);
  logger.log(`  curl -s ${url}/health`);
  logger.log(`  curl -s ${url}/chat/stats`);
  logger.log(`  curl -s ${url}/metrics`);
  logger.log(
    `  curl -s -X POST ${url}/chat -H 'content-type: application/json' -d '{"prompt":"Hello","maxTokens":999999}'   (413: larger than a window allows)`,
  );
  logger.log(`  npm run sample:burst -- --url ${url}`);
}

bootstrap().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
