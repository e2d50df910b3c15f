import { Controller, Get, Injectable, type OnApplicationShutdown, Req, Res } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { LimiterMeter } from 'nestjs-llm-rate-limiter';

/**
 * The application's OpenTelemetry setup: a MeterProvider whose reader is a Prometheus exporter
 * served by this app at /metrics rather than on a port of its own. The limiter is handed its
 * Meter (see app.module.ts); it imports no OpenTelemetry package itself.
 */
@Injectable()
export class MetricsService implements OnApplicationShutdown {
  readonly exporter = new PrometheusExporter({ preventServerStart: true });
  private readonly provider = new MeterProvider({ readers: [this.exporter] });
  readonly meter: LimiterMeter = this.provider.getMeter('nestjs-llm-rate-limiter-sample');

  async onApplicationShutdown(): Promise<void> {
    await this.provider.shutdown();
  }
}

@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  /** `GET /metrics`: every metric in Prometheus's text format, collected on each scrape. */
  @Get()
  scrape(@Req() request: IncomingMessage, @Res() response: ServerResponse): void {
    this.metrics.exporter.getMetricsRequestHandler(request, response);
  }
}
