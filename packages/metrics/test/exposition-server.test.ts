/**
 * Where the exposition is served: the app's own port (a route kept out of the metrics and the
 * access log) or a port of its own, opened when the app is ready and closed with it.
 */
import net from 'node:net'
import t from 'tap'
import Fastify from 'fastify'
import core from '@faultline/core'
import metrics from '@faultline/metrics'
import { Registry } from 'prom-client'
import { httpRequest } from '../../../test/helpers/http-client.js'
import { startMetricsGateway, upstream } from './fixtures/metrics-gateway.js'
import { parseExposition, sumBy, total } from './fixtures/exposition.js'

async function refused (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
  })
}

t.test('on the app\'s port, scrapes are neither counted nor logged', async (t) => {
  const ok = await upstream(t)
  const gw = await startMetricsGateway(t, [{ prefix: '/ok', proxy: { name: 'Ok', upstream: { targets: [ok.url] } } }], { path: '/internal/metrics' })
  await gw.send('/ok/a')
  const first = await gw.send('/internal/metrics')
  t.equal(first.status, 200)
  t.equal(first.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  await gw.send('/internal/metrics')
  const samples = parseExposition((await gw.send('/internal/metrics')).body)
  t.same(sumBy(samples, 'faultline_requests_total', 'api'), { Ok: 1 }, 'three scrapes, not counted')
  await gw.log.waitFor(1)
  t.same(gw.log.lines.map((l) => l.path), ['/ok/a'], 'and not logged')
  t.equal(gw.app.faultlineMetrics.address, null)
})

t.test('on a port of its own: only the path is served, and the port closes with the app', async (t) => {
  const ok = await upstream(t)
  const gw = await startMetricsGateway(t, [{ prefix: '/ok', proxy: { name: 'Ok', upstream: { targets: [ok.url] } } }], { port: 0 })
  const address = gw.app.faultlineMetrics.address
  t.ok(address !== null && address.port > 0)
  t.equal(address?.host, '127.0.0.1')
  const port = address?.port as number

  t.equal((await gw.send('/metrics')).status, 404, 'not on the gateway\'s port')
  await gw.send('/ok/a')
  const res = await httpRequest(`http://127.0.0.1:${port}/metrics?x=1`)
  t.equal(res.status, 200)
  t.same(sumBy(parseExposition(res.body), 'faultline_requests_total', 'response_flag'), { NRF: 1, '': 1 })
  t.equal((await httpRequest(`http://127.0.0.1:${port}/other`)).status, 404)
  t.equal((await httpRequest(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 405)
  const head = await httpRequest(`http://127.0.0.1:${port}/metrics`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body, '')

  await gw.app.close()
  t.ok(await refused(port), 'the metrics port is closed with the app')
  t.equal(gw.app.faultlineMetrics.address, null)
})

t.test('a metrics port already in use fails the boot with EADDRINUSE', async (t) => {
  const blocker = net.createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const port = (blocker.address() as net.AddressInfo).port
  const app = Fastify()
  await app.register(core)
  await app.register(metrics, { port })
  await t.rejects(async () => { await app.ready() }, { code: 'EADDRINUSE' })
  await app.close()
})

t.test('a registry of the app\'s own, shared with its other metrics, and process metrics on request', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(core)
  await app.register(metrics, { registry, processMetrics: true })
  app.get('/x', { config: { apiName: 'X' } }, async () => 'x')
  await app.ready()
  await app.inject('/x')
  const samples = parseExposition(await registry.metrics())
  t.equal(total(samples, 'faultline_requests_total', { api: 'X', status_class: '2xx' }), 1)
  t.ok(samples.some((s) => s.name === 'process_cpu_user_seconds_total'), 'process metrics')
  t.equal(app.faultlineMetrics.registry, registry)
})

t.test('two apps in one process keep separate registries by default', async (t) => {
  const apps = await Promise.all([0, 1].map(async () => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(core)
    await app.register(metrics)
    app.get('/x', { config: { apiName: 'X' } }, async () => 'x')
    return app
  }))
  await apps[0].inject('/x')
  await apps[0].inject('/x')
  await apps[1].inject('/x')
  t.equal(total(parseExposition(await apps[0].faultlineMetrics.metrics()), 'faultline_requests_total'), 2)
  t.equal(total(parseExposition(await apps[1].faultlineMetrics.metrics()), 'faultline_requests_total'), 1)
})
