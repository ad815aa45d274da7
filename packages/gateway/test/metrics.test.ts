// `metrics:` in the config file: the Prometheus exposition on its own port or the gateway's,
// counting every API's requests by flag, with each API's breaker and targets.
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildGateway, serve, type GatewayConfigInput } from '@faultline/gateway'
import { httpRequest } from '../../../test/helpers/http-client.js'
import { closedPort } from '../../../test/helpers/ports.js'

async function start (t: Test, config: GatewayConfigInput): Promise<{ app: FastifyInstance, url: string, lines: Array<Record<string, unknown>> }> {
  const lines: Array<Record<string, unknown>> = []
  const destination = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l))
      done()
    }
  })
  const app = await buildGateway(config, { accessLogDestination: destination, logger: false })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, lines }
}

function count (text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

t.test('metrics on their own port: counts by flag, breaker state and targets; the port closes with the gateway', async (t) => {
  const dead = await closedPort()
  const up = http.createServer((_req, res) => res.end('ok'))
  await new Promise<void>((resolve) => up.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { up.closeAllConnections(); up.close() })
  const okTarget = `127.0.0.1:${(up.address() as AddressInfo).port}`
  const gw = await start(t, {
    server: { port: 0 },
    metrics: { enabled: true, port: 0, path: '/internal/metrics' },
    apis: [
      { name: 'Dead', prefix: '/dead', upstream: { targets: [`http://127.0.0.1:${dead}`] }, circuitBreaker: { volumeThreshold: 2, resetTimeout: 60000 } },
      { name: 'Ok', prefix: '/ok', upstream: { targets: [`http://${okTarget}`] } }
    ]
  })
  const address = gw.app.faultlineMetrics.address
  t.ok(address !== null)
  const metricsUrl = `http://127.0.0.1:${address?.port ?? 0}/internal/metrics`
  for (let i = 0; i < 3; i++) await httpRequest(`${gw.url}/dead/x`)
  await httpRequest(`${gw.url}/ok/x`)
  const res = await httpRequest(metricsUrl)
  t.equal(res.status, 200)
  const text = res.body
  t.equal(count(text, 'faultline_requests_total{api="Dead",method="GET",status_class="5xx",response_flag="UCF",error_category="upstream",error_source="UpstreamProxy",response_source="gateway"}'), 2)
  t.equal(count(text, 'faultline_requests_total{api="Dead",method="GET",status_class="5xx",response_flag="CBO",error_category="upstream",error_source="CircuitBreaker",response_source="gateway"}'), 1)
  t.equal(count(text, 'faultline_requests_total{api="Ok",method="GET",status_class="2xx",response_flag="",error_category="",error_source="",response_source="upstream"}'), 1)
  t.equal(count(text, 'faultline_circuit_breaker_state{api="Dead",state="open"}'), 1)
  t.equal(count(text, 'faultline_upstream_target_healthy{api="Ok",target="' + okTarget + '"}'), 1)
  t.match(text, /^process_cpu_user_seconds_total /m, 'process metrics too')
  t.equal((await httpRequest(`${gw.url}/internal/metrics`)).status, 404, 'not served on the gateway\'s port')

  const port = address?.port as number
  await gw.app.close()
  const refused = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(true))
  })
  t.ok(refused, 'the metrics port is closed with the gateway')
})

t.test('without a port, /metrics is served on the gateway\'s port and scrapes are not logged', async (t) => {
  const dead = await closedPort()
  const gw = await start(t, {
    server: { port: 0 },
    metrics: {},
    apis: [{ name: 'Dead', prefix: '/dead', upstream: { targets: [`http://127.0.0.1:${dead}`] } }]
  })
  await httpRequest(`${gw.url}/dead/x`)
  const res = await httpRequest(`${gw.url}/metrics`)
  t.equal(res.status, 200)
  t.equal(count(res.body, 'faultline_requests_total{api="Dead",method="GET",status_class="5xx",response_flag="UCF",error_category="upstream",error_source="UpstreamProxy",response_source="gateway"}'), 1)
  t.same(gw.lines.map((l) => l.path), ['/dead/x'])
})

t.test('metrics off (absent or enabled: false): no exposition', async (t) => {
  for (const metrics of [undefined, { enabled: false, port: 0 }]) {
    const gw = await start(t, { server: { port: 0 }, metrics, apis: [{ name: 'A', prefix: '/a', upstream: { targets: ['http://127.0.0.1:9'] } }] })
    t.equal((await httpRequest(`${gw.url}/metrics`)).status, 404)
    t.notOk(gw.app.hasDecorator('faultlineMetrics'))
  }
})

t.test('metrics.port equal to server.port is refused before anything starts', async (t) => {
  await t.rejects(buildGateway({ server: { port: 8089 }, metrics: { port: 8089 }, apis: [{ name: 'A', prefix: '/a', upstream: { targets: ['http://127.0.0.1:9'] } }] }, { logger: false }),
    new Error('metrics.port 8089 is the gateway\'s own port (server.port): give the metrics another port, or leave it out to serve them on the gateway\'s port'))
})

t.test('serve prints where the metrics are, once, after the listening line', async (t) => {
  const port = await closedPort()
  const out: string[] = []
  const running = await serve({
    server: { port: 0 },
    metrics: { enabled: true, port, path: '/internal/metrics' },
    apis: [{ name: 'A', prefix: '/a', upstream: { targets: ['http://127.0.0.1:9'] } }]
  }, { stderr: { write: (text: string) => out.push(text) }, logger: false, handleSignals: false, accessLogDestination: new Writable({ write: (_c, _e, done) => done() }) })
  t.teardown(() => running.close())
  t.match(out[0], /^faultline listening on http:\/\/127\.0\.0\.1:\d+\n$/)
  t.equal(out[1], `faultline metrics on http://127.0.0.1:${port}/internal/metrics\n`)
  t.equal((await httpRequest(`http://127.0.0.1:${port}/internal/metrics`)).status, 200)
})
