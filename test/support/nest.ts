import type { INestApplication, LoggerService, ModuleMetadata } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';

/** A Nest logger that remembers its lines, with their context. */
export function recordingNestLogger() {
  const lines: { level: string; message: string; context?: string }[] = [];
  const record =
    (level: string) =>
    (message: unknown, ...rest: unknown[]) => {
      const context = rest.length > 0 && typeof rest[rest.length - 1] === 'string' ? (rest[rest.length - 1] as string) : undefined;
      lines.push({ level, message: String(message), context });
    };
  const logger: LoggerService & { lines: typeof lines } = {
    lines,
    log: record('log'),
    warn: record('warn'),
    error: record('error'),
    debug: record('debug'),
    verbose: record('verbose'),
  };
  return logger;
}

/** Compiles and initialises a testing module (so `onModuleInit` hooks have run). */
export async function initModule(metadata: ModuleMetadata, logger?: LoggerService): Promise<TestingModule> {
  const builder = Test.createTestingModule(metadata);
  if (logger) builder.setLogger(logger);
  const moduleRef = await builder.compile();
  await moduleRef.init();
  return moduleRef;
}

/** Starts an HTTP application on a free loopback port; returns it with its base URL. */
export async function listen(metadata: ModuleMetadata, logger?: LoggerService): Promise<{ app: INestApplication; url: string }> {
  const builder = Test.createTestingModule(metadata);
  if (logger) builder.setLogger(logger);
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication({ logger: logger ?? false });
  await app.listen(0, '127.0.0.1');
  return { app, url: await app.getUrl() };
}
