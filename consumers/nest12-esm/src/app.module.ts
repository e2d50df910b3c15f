import { Module } from '@nestjs/common';
import { LlmRateLimiterModule } from 'nestjs-llm-rate-limiter';
import { AppController } from './app.controller.js';
import { AppService } from './app.service.js';
import { ChatController } from './chat.controller.js';
import { ChatService } from './chat.service.js';

@Module({
  imports: [
    LlmRateLimiterModule.forRoot({
      // Without REDIS_URL, an in-memory store (limits per process).
      redis: process.env.REDIS_URL ? { url: process.env.REDIS_URL } : undefined,
      keyPrefix: process.env.LIMITER_KEY_PREFIX,
      models: { 'fake-model': { rpm: 1, tpm: 10_000 } },
    }),
  ],
  controllers: [AppController, ChatController],
  providers: [AppService, ChatService],
})
export class AppModule {}
