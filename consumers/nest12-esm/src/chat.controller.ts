import { Controller, Get, Query } from '@nestjs/common';
import { InjectRateLimiter, RateLimiter } from 'nestjs-llm-rate-limiter';
import { ChatService } from './chat.service.js';

@Controller('chat')
export class ChatController {
  constructor(
    private readonly chat: ChatService,
    @InjectRateLimiter('fake-model') private readonly limiter: RateLimiter,
  ) {}

  @Get()
  ask(@Query('prompt') prompt: string) {
    return this.chat.complete(prompt);
  }

  @Get('status')
  status() {
    return this.limiter.getStatus();
  }
}
