/**
 * Type tests for the public API, checked by `tsc -p tsconfig.json`: lines marked
 * @ts-expect-error must NOT compile (if one starts compiling, tsc fails). tap only loads the file.
 */
import Fastify from 'fastify'
import t from 'tap'
import { Registry } from 'prom-client'
import { MeterProvider } from '@opentelemetry/sdk-metrics'
import core from '@faultline/core'
import metrics, { defaultBuckets, metricNames, type FaultlineMetrics, type FaultlineMetricsOptions } from '@faultline/metrics'
import type { FaultlineTargets } from '@faultline/proxy'

export async function typeChecks (): Promise<unknown[]> {
  const app = Fastify()
  await app.register(core)
  await app.register(metrics)
  await app.register(metrics, { path: '/metrics', port: 9464, host: '0.0.0.0', processMetrics: true })
  await app.register(metrics, { prometheus: false, openTelemetry: new MeterProvider() })
  await app.register(metrics, { registry: new Registry(), openTelemetry: 'auto', buckets: [0.01, 0.1, 1] })
  // @ts-expect-error the port is a number
  await app.register(metrics, { port: '9464' })
  // @ts-expect-error openTelemetry is 'auto', a boolean or a MeterProvider
  await app.register(metrics, { openTelemetry: 'on' })
  const options: FaultlineMetricsOptions = { buckets: defaultBuckets }
  // @ts-expect-error the defaults are read-only
  defaultBuckets.push(120)
  // @ts-expect-error the names are read-only
  metricNames.requests = 'requests_total'

  const m: FaultlineMetrics = app.faultlineMetrics
  const text: Promise<string> = m.metrics()
  const port: number | undefined = m.address?.port
  // @ts-expect-error the address is read, not set
  m.address = null
  const targets: FaultlineTargets = app.faultlineTargets
  // @ts-expect-error the balancer's view is read-only
  targets.list()[0].healthy = false
  return [options, text, port]
}

t.test('the public types compile (checked by tsc -p tsconfig.json)', async (t) => {
  t.type(typeChecks, 'function')
})
