// A Faultline gateway whose metrics go to OpenTelemetry as well as to Prometheus.
//
// The app registers an OpenTelemetry SDK MeterProvider globally BEFORE building the gateway:
// @faultline/metrics looks for one when it is registered ("auto") and then reports the same
// instruments through it. Here the SDK prints them to the console every 10 s; swap the
// ConsoleMetricExporter for an OTLP exporter (@opentelemetry/exporter-metrics-otlp-http) to send
// them to a collector.
//
//   node examples/otel/gateway.js            # proxies /api to UPSTREAM_URL (default http://127.0.0.1:9)
//   curl localhost:8080/api/x; curl localhost:9464/metrics
import { pathToFileURL } from 'node:url'
import { metrics } from '@opentelemetry/api'
import { ConsoleMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { buildGateway } from '@faultline/gateway'

/**
 * Starts the gateway with `reader` (any SDK MetricReader) attached to a global MeterProvider.
 * `close()` stops the gateway, then flushes and unregisters the provider.
 */
export async function startGateway ({ upstreamUrl, reader, port = 8080, metricsPort = 9464, accessLogDestination }) {
  const provider = new MeterProvider({ readers: [reader] })
  metrics.setGlobalMeterProvider(provider)
  const app = await buildGateway({
    server: { port },
    metrics: { enabled: true, port: metricsPort },
    apis: [{ name: 'Items', prefix: '/api', upstream: { targets: [upstreamUrl] }, circuitBreaker: { volumeThreshold: 10 } }]
  }, accessLogDestination === undefined ? {} : { accessLogDestination })
  await app.listen({ port, host: '127.0.0.1' })
  return {
    app,
    async close () {
      await app.close()
      await provider.shutdown()
      metrics.disable()
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const reader = new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter(), exportIntervalMillis: 10_000 })
  const { app, close } = await startGateway({
    upstreamUrl: process.env.UPSTREAM_URL ?? 'http://127.0.0.1:9',
    reader,
    port: Number(process.env.PORT ?? 8080)
  })
  const { port } = app.server.address()
  process.stderr.write(`gateway on http://127.0.0.1:${port}/api, Prometheus on http://127.0.0.1:${app.faultlineMetrics.address.port}/metrics, OpenTelemetry to the console every 10 s\n`)
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => { close().then(() => process.exit(0)) })
}
