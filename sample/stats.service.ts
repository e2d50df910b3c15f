import { Injectable } from '@nestjs/common';
import type { RateLimiterEvent } from 'nestjs-llm-rate-limiter';

/** Remembers the limiter's waits, from its onEvent hook, for /chat/stats and the burst. */
@Injectable()
export class StatsService {
  readonly waitsMs: number[] = [];
  degradedEvents = 0;

  record(event: RateLimiterEvent): void {
    if (event.type === 'acquired') this.waitsMs.push(event.waitMs);
    if (event.type === 'degraded') this.degradedEvents++;
  }
}
