import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildGateway } from '../examples/programmatic-gateway/gateway.js'
import { LogCapture } from './helpers/log-capture.js'

t.test('the programmatic example proxies, classifies and honours per-route log settings', async (t) => {
  const upstream = http.createServer((req, res) => { res.end(JSON.stringify({ path: req.url })) })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => upstream.close())
  const closed = http.createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const closedPort = (closed.address() as AddressInfo).port
  await new Promise<void>((resolve) => closed.close(() => resolve()))

  const log = new LogCapture()
  const app = await buildGateway({
    ordersUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    catalogUrl: `http://127.0.0.1:${closedPort}`,
    accessLog: { destination: log }
  })
  t.teardown(() => app.close())

  const orders = await app.inject('/orders/42?expand=1')
  t.equal(orders.statusCode, 200)
  t.same(orders.json(), { path: '/42?expand=1' })
  const health = await app.inject('/healthz')
  t.equal(health.statusCode, 200)
  const catalog = await app.inject('/catalog/items')
  t.equal(catalog.statusCode, 502)
  t.equal(catalog.headers['x-faultline-flag'], 'UCF')
  const maintenance = await app.inject('/maintenance')
  t.equal(maintenance.statusCode, 503)

  const lines = await log.waitFor(3)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(lines.length, 3, '/healthz is not logged')
  t.match(lines[0], { api_name: 'Orders', status: 200, upstream_status: 200, response_source: 'upstream' })
  t.same(Object.keys(lines[1]).sort(), ['error_target', 'latency_total', 'level', 'method', 'msg', 'path', 'request_id', 'response_flag', 'status', 'time'])
  t.match(lines[1], { response_flag: 'UCF', error_target: `127.0.0.1:${closedPort}` })
  t.same(Object.keys(lines[2]).sort(), ['level', 'msg', 'request_id', 'response_flag', 'status', 'time'])
  t.match(lines[2], { status: 503, response_flag: 'SHD' })
})
