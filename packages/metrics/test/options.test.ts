import t from 'tap'
import Fastify from 'fastify'
import core from '@faultline/core'
import metrics, { type FaultlineMetricsOptions } from '@faultline/metrics'

async function register (options: unknown): Promise<void> {
  const app = Fastify()
  try {
    await app.register(core)
    await app.register(metrics, options as FaultlineMetricsOptions)
    await app.ready()
  } finally {
    await app.close()
  }
}

t.test('bad options fail the registration with a message naming the option and the value', async (t) => {
  const cases: Array<[unknown, string]> = [
    [{ prometheus: 'yes' }, '@faultline/metrics: option "prometheus" must be a boolean, got "yes"'],
    [{ processMetrics: 1 }, '@faultline/metrics: option "processMetrics" must be a boolean, got 1'],
    [{ path: 'metrics' }, '@faultline/metrics: option "path" must be a path starting with "/", got "metrics"'],
    [{ path: '/m etrics' }, '@faultline/metrics: option "path" must be a path starting with "/", got "/m etrics"'],
    [{ port: 70000 }, '@faultline/metrics: option "port" must be an integer from 0 to 65535, got 70000'],
    [{ port: '9464' }, '@faultline/metrics: option "port" must be an integer from 0 to 65535, got "9464"'],
    [{ host: '0.0.0.0' }, '@faultline/metrics: option "host" must be given together with "port" (without it the app\'s own server serves the metrics), got "0.0.0.0"'],
    [{ port: 0, host: '' }, '@faultline/metrics: option "host" must be a host name or address, got ""'],
    [{ registry: {} }, '@faultline/metrics: option "registry" must be a prom-client Registry, got [object Object]'],
    [{ openTelemetry: 'yes' }, '@faultline/metrics: option "openTelemetry" must be "auto", a boolean or a MeterProvider, got "yes"'],
    [{ buckets: [] }, '@faultline/metrics: option "buckets" must be a non-empty array of increasing positive numbers (seconds), got [object Array]'],
    [{ buckets: [0.1, 0.05] }, '@faultline/metrics: option "buckets" must be a non-empty array of increasing positive numbers (seconds), got [object Array]']
  ]
  for (const [options, message] of cases) {
    await t.rejects(register(options), new TypeError(message), JSON.stringify(options))
  }
})

t.test('the options object is not modified', async (t) => {
  const options = { path: '/m', buckets: [0.1, 1] }
  const copy = structuredClone(options)
  await register(options)
  t.same(options, copy)
})

t.test('the core must be registered first', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(metrics).ready() }, /@faultline\/core/)
})

t.test('registered after an API: its requests are still counted, and a warning says what is missing', async (t) => {
  const warnings: Array<Record<string, unknown>> = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line)) } } } })
  t.teardown(() => app.close())
  await app.register(core)
  app.get('/late', { config: { apiName: 'Late' } }, async () => 'ok')
  await app.register(metrics)
  await app.inject('/late')
  await app.inject('/late')
  t.match(await app.faultlineMetrics.metrics(), /faultline_requests_total\{api="Late",method="GET",status_class="2xx",[^}]*\} 2/)
  const late = warnings.filter((w) => typeof w.msg === 'string' && w.msg.includes('registered after'))
  t.equal(late.length, 1, 'warned once')
  t.match(late[0], { level: 40, api_name: 'Late' })
})
