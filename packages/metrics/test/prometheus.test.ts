/**
 * A real Prometheus scrapes a real gateway's metrics port; PromQL through its HTTP API returns the
 * counts by response_flag that were sent. The example alert rules and dashboard queries are
 * checked by the same Prometheus and by promtool.
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { closedPort, startMetricsGateway, upstream } from './fixtures/metrics-gateway.js'
import { runTool, startPrometheus } from './fixtures/prometheus-server.js'

const examples = fileURLToPath(new URL('../../../examples/grafana/', import.meta.url))
const alerts = `${examples}alerts.yml`

t.test('Prometheus scrapes the gateway: PromQL counts by response_flag equal the requests sent', async (t) => {
  const dead = await closedPort()
  const failing = await upstream(t, 503)
  const ok = await upstream(t)
  const gw = await startMetricsGateway(t, [
    { prefix: '/dead', proxy: { name: 'Dead', upstream: { targets: [dead.url] } } },
    { prefix: '/failing', proxy: { name: 'Failing', upstream: { targets: [failing.url] } } },
    { prefix: '/ok', breaker: {}, proxy: { name: 'Ok', upstream: { targets: [ok.url] } } }
  ], { port: 0 })
  const metricsPort = gw.app.faultlineMetrics.address?.port as number

  const prometheus = await startPrometheus({ targets: [`127.0.0.1:${metricsPort}`], ruleFiles: [alerts] })
  t.teardown(() => prometheus.close())

  const sent: Record<string, number> = { UCF: 3, URS: 2, '': 4, NRF: 1 }
  for (let i = 0; i < 3; i++) await gw.send('/dead/x')
  for (let i = 0; i < 2; i++) await gw.send('/failing/x')
  for (let i = 0; i < 4; i++) await gw.send('/ok/x')
  await gw.send('/nowhere')
  await gw.log.waitFor(10)
  const sentAt = Date.now() / 1000

  // Wait for a scrape that started after the last request finished.
  const deadline = Date.now() + 15_000
  for (;;) {
    const up = await prometheus.query('timestamp(up{job="faultline"})')
    if (up.length === 1 && Number(up[0].value[1]) > sentAt) break
    if (Date.now() > deadline) throw new Error(`no scrape of the gateway after the requests: ${JSON.stringify(up)}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.same((await prometheus.query('up{job="faultline"}')).map((r) => r.value[1]), ['1'], 'the target is up')

  const byFlag = await prometheus.query('sum by (response_flag) (faultline_requests_total{job="faultline"})')
  t.same(Object.fromEntries(byFlag.map((r) => [r.metric.response_flag ?? '', Number(r.value[1])])), sent)
  const ucf = await prometheus.query('faultline_requests_total{response_flag="UCF"}')
  t.match(ucf[0].metric, { api: 'Dead', method: 'GET', status_class: '5xx', error_category: 'upstream', error_source: 'UpstreamProxy', response_source: 'gateway' })
  const p99 = await prometheus.query('histogram_quantile(0.99, sum by (le) (faultline_request_duration_seconds_bucket{api="Ok"}))')
  t.ok(Number(p99[0].value[1]) > 0, 'the histogram is a histogram to PromQL')
  const breaker = await prometheus.query('faultline_circuit_breaker_state{api="Ok"} == 1')
  t.same(breaker.map((r) => r.metric.state), ['closed'])

  // The example alert rules load, and every dashboard query is valid PromQL against these series.
  const rules = await prometheus.api('/api/v1/rules') as { groups: Array<{ rules: Array<{ name: string, health: string }> }> }
  const loaded = rules.groups.flatMap((g) => g.rules)
  t.equal(loaded.length, 11)
  t.ok(loaded.every((r) => r.health !== 'err'), 'no rule failed to evaluate')

  const dashboard = JSON.parse(await readFile(`${examples}dashboard.json`, 'utf8')) as { panels: Array<{ title: string, targets?: Array<{ expr: string }> }> }
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((target) => ({ panel: p.title, expr: target.expr })))
  t.ok(exprs.length >= 15)
  // Metric families the exposition declares (a family with no sample yet still has its TYPE line).
  const exposed = new Set([...(await gw.scrapeText()).matchAll(/^# TYPE (\w+) /gm)].map((m) => m[1]))
  for (const { panel, expr } of exprs) {
    const promql = expr.replaceAll('$api', '.*').replaceAll('$__rate_interval', '1m').replaceAll('$__range', '5m')
    await t.resolves(prometheus.query(promql), `${panel}: ${promql}`)
    for (const name of expr.match(/faultline_\w+/g) ?? []) {
      t.ok(exposed.has(name.replace(/_(bucket|sum|count)$/, '')), `${panel}: ${name} is exposed`)
    }
  }
})

t.test('the alert rules pass promtool check rules and their unit tests', async (t) => {
  const check = runTool('promtool', ['check', 'rules', alerts])
  t.equal(check.status, 0, check.output)
  t.match(check.output, /SUCCESS: 11 rules found/)
  const unit = runTool('promtool', ['test', 'rules', `${examples}alerts.test.yml`])
  t.equal(unit.status, 0, unit.output)
  t.match(unit.output, /SUCCESS/)
})
