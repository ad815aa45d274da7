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
    ordersKey: 'test-key-0123456789',
    accessLog: { destination: log }
  })
  t.teardown(() => app.close())

  const anonymous = await app.inject('/orders/42')
  t.equal(anonymous.statusCode, 401)
  t.equal(anonymous.headers['x-faultline-flag'], 'AMF')
  const orders = await app.inject({ url: '/orders/42?expand=1', headers: { 'x-api-key': 'test-key-0123456789' } })
  t.equal(orders.statusCode, 200)
  t.equal(orders.headers['x-ratelimit-remaining'], '99')
  t.same(orders.json(), { path: '/42?expand=1' })
  const health = await app.inject('/healthz')
  t.equal(health.statusCode, 200)
  const catalog = await app.inject('/catalog/items')
  t.equal(catalog.statusCode, 502)
  t.equal(catalog.headers['x-faultline-flag'], 'UCF')
  const maintenance = await app.inject('/maintenance')
  t.equal(maintenance.statusCode, 503)

  const lines = await log.waitFor(4)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(lines.length, 4, '/healthz is not logged')
  t.match(lines[0], { api_name: 'Orders', status: 401, response_flag: 'AMF' })
  t.match(lines[1], { api_name: 'Orders', status: 200, upstream_status: 200, response_source: 'upstream', consumer: 'shop' })
  t.notOk(JSON.stringify(lines).includes('test-key-0123456789'), 'the key never reaches the log')
  t.same(Object.keys(lines[2]).sort(), ['error_target', 'latency_total', 'level', 'method', 'msg', 'path', 'request_id', 'response_flag', 'status', 'time'])
  t.match(lines[2], { response_flag: 'UCF', error_target: `127.0.0.1:${closedPort}` })
  t.same(Object.keys(lines[3]).sort(), ['level', 'msg', 'request_id', 'response_flag', 'status', 'time'])
  t.match(lines[3], { status: 503, response_flag: 'SHD' })

  // The catalog's breaker opens after 5 refused connections: then CBO, without dialling.
  const statuses = []
  for (let i = 0; i < 5; i++) statuses.push((await app.inject('/catalog/items')).statusCode)
  const open = await app.inject('/catalog/items')
  t.same(statuses, [502, 502, 502, 502, 503])
  t.equal(open.headers['x-faultline-flag'], 'CBO')
})
