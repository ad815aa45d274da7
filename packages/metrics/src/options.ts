import type { MeterProvider } from '@opentelemetry/api'
import { Registry } from 'prom-client'
import { defaultBuckets } from './duration.js'

export interface FaultlineMetricsOptions {
  /** Serve the Prometheus exposition. Default true; false leaves OpenTelemetry only. */
  prometheus?: boolean
  /** Path of the exposition. Default `/metrics`. */
  path?: string
  /**
   * Serve the exposition on its own port (recommended: scrapes stay off the gateway's routes and
   * its access log). 0 picks a free port. Default: none, served on the app's own port at `path`.
   */
  port?: number
  /** Host the own port listens on. Default `127.0.0.1`. */
  host?: string
  /** prom-client registry to register the metrics in. Default: a new one for this app. */
  registry?: Registry
  /** Also expose prom-client's process metrics (CPU, memory, event loop lag, GC). Default false. */
  processMetrics?: boolean
  /**
   * Report through OpenTelemetry: `'auto'` (default) when a MeterProvider was registered globally
   * before this plugin, `true` through the global provider, a `MeterProvider` through that one,
   * `false` never.
   */
  openTelemetry?: 'auto' | boolean | MeterProvider
  /** Upper bounds (seconds) of the latency histograms' buckets. Default 0.5 ms to 60 s. */
  buckets?: readonly number[]
}

export interface MetricsSettings {
  prometheus: boolean
  path: string
  port: number | undefined
  host: string
  registry: Registry
  processMetrics: boolean
  openTelemetry: 'auto' | boolean | MeterProvider
  buckets: readonly number[]
}

function fail (name: string, expected: string, value: unknown): never {
  throw new TypeError(`@faultline/metrics: option "${name}" must be ${expected}, got ${typeof value === 'object' && value !== null ? Object.prototype.toString.call(value) : JSON.stringify(value)}`)
}

function isMeterProvider (value: unknown): value is MeterProvider {
  return typeof value === 'object' && value !== null && typeof (value as MeterProvider).getMeter === 'function'
}

export function validateMetricsOptions (options: FaultlineMetricsOptions): MetricsSettings {
  for (const name of ['prometheus', 'processMetrics'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'boolean') fail(name, 'a boolean', options[name])
  }
  const path = options.path ?? '/metrics'
  if (typeof path !== 'string' || !/^\/[\w\-./~]*$/.test(path)) fail('path', 'a path starting with "/"', path)
  const port = options.port
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) fail('port', 'an integer from 0 to 65535', port)
  const host = options.host ?? '127.0.0.1'
  if (typeof host !== 'string' || host.length === 0) fail('host', 'a host name or address', host)
  if (options.host !== undefined && port === undefined) fail('host', 'given together with "port" (without it the app\'s own server serves the metrics)', options.host)
  const registry = options.registry ?? new Registry()
  // Duck-typed: the app may hold a registry from its own copy of prom-client.
  if (typeof registry.registerMetric !== 'function' || typeof registry.metrics !== 'function') fail('registry', 'a prom-client Registry', registry)
  const otel = options.openTelemetry ?? 'auto'
  if (otel !== 'auto' && typeof otel !== 'boolean' && !isMeterProvider(otel)) fail('openTelemetry', '"auto", a boolean or a MeterProvider', otel)
  const buckets = options.buckets ?? defaultBuckets
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.some((b, i) => typeof b !== 'number' || !Number.isFinite(b) || b <= 0 || (i > 0 && b <= buckets[i - 1]))) {
    fail('buckets', 'a non-empty array of increasing positive numbers (seconds)', buckets)
  }
  return {
    prometheus: options.prometheus ?? true,
    path,
    port,
    host,
    registry,
    processMetrics: options.processMetrics ?? false,
    openTelemetry: otel,
    buckets: Object.freeze([...buckets])
  }
}
