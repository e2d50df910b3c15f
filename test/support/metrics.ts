import { type Histogram, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';

/** A reader that keeps nothing and exports nowhere: each `collect()` returns what is current. */
class InMemoryReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** A real OpenTelemetry MeterProvider, read on demand; `value(name, labels)` finds one series. */
export function inMemoryMetrics() {
  const reader = new InMemoryReader();
  const provider = new MeterProvider({ readers: [reader] });
  return {
    meter: provider.getMeter('test'),
    /** Collects once and returns a lookup of the series: a number for counters and gauges, the count and sum of a histogram. */
    async collect() {
      const { resourceMetrics, errors } = await reader.collect();
      if (errors.length > 0) throw errors[0];
      const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
      return (name: string, labels: Record<string, string>): number | Histogram | undefined => {
        const metric = metrics.find((m) => m.descriptor.name === name);
        const point = metric?.dataPoints.find((p) => Object.entries(labels).every(([k, v]) => p.attributes[k] === v));
        return point?.value as number | Histogram | undefined;
      };
    },
    shutdown: () => provider.shutdown(),
  };
}
