// The per-API chain from the config file: auth, rate limit and quota (memory or one shared Redis),
// circuit breaker, proxy; each boundary answers with its own flag. Every API's routes share one
// scope, each with its own hooks.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import faultlineCore from '@faultline/core'
import { buildGateway, registerApi, type GatewayConfigInput } from '@faultline/gateway'
import { httpRequest } from '../../../test/helpers/http-client.js'
import { startRedis } from '../../../test/helpers/redis-server.js'
import { closedPort } from '../../../test/helpers/ports.js'

type Line = Record<string, unknown>

async function startUpstream (t: Test): Promise<{ url: string, hits: () => number }> {
  let hits = 0
  const server = http.createServer((_req, res) => {
    hits++
    res.end('ok')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits }
}

async function start (t: Test, config: GatewayConfigInput): Promise<{ url: string, lines: Line[] }> {
  const lines: Line[] = []
  const destination = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l))
      done()
    }
  })
  const app = await buildGateway({ ...config, server: { port: 0, ...config.server } }, { accessLogDestination: destination, logger: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, lines }
}

async function settle (lines: Line[], count: number): Promise<void> {
  for (let i = 0; i < 100 && lines.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 10))
}

const keys = [{ id: 'acme', key: 'acme-key-0123456789' }, { id: 'globex', key: 'globex-key-0123456789' }]

t.test('auth, then rate limit, then quota, then the upstream: each rejection is its own flag', async (t) => {
  const upstream = await startUpstream(t)
  const { url, lines } = await start(t, {
    apis: [{
      name: 'Orders',
      prefix: '/orders',
      upstream: { targets: [upstream.url] },
      auth: { type: 'apiKey', keys },
      rateLimit: { max: 2, timeWindow: '1 minute' },
      quota: { max: 3, period: 'month' }
    }]
  })
  const as = (key: string | undefined): { path: string, headers: Record<string, string> } =>
    ({ path: '/orders/x', headers: key === undefined ? {} : { 'x-api-key': key } })
  const statuses: number[] = []
  statuses.push((await httpRequest(url, as(undefined))).status) // AMF: never reaches the limits
  for (let i = 0; i < 3; i++) statuses.push((await httpRequest(url, as(keys[0].key))).status)
  const limited = await httpRequest(url, as(keys[0].key))
  t.same(statuses, [401, 200, 200, 429])
  t.equal(limited.status, 429)
  t.equal(limited.headers['x-ratelimit-limit'], '2')
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After on RLT')
  // Another consumer has its own window and quota.
  t.equal((await httpRequest(url, as(keys[1].key))).status, 200)
  t.equal(upstream.hits(), 3, 'rejected requests never reach the upstream')
  await settle(lines, 6)
  t.same(lines.map((l) => [l.response_flag ?? null, l.consumer ?? null]), [
    ['AMF', null], [null, 'acme'], [null, 'acme'], ['RLT', 'acme'], ['RLT', 'acme'], [null, 'globex']
  ])
  t.ok(lines.every((l) => l.api_name === 'Orders'))
})

t.test('quota: QEX once the period is used up, with its headers', async (t) => {
  const upstream = await startUpstream(t)
  const { url, lines } = await start(t, {
    apis: [{ name: 'Q', prefix: '/q', upstream: { targets: [upstream.url] }, quota: { max: 2, period: 'day' } }]
  })
  const answers = []
  for (let i = 0; i < 3; i++) answers.push(await httpRequest(url, { path: '/q/' }))
  t.same(answers.map((a) => a.status), [200, 200, 403])
  t.equal(answers[2].headers['x-quota-limit'], '2')
  t.equal(answers[2].headers['x-quota-remaining'], '0')
  t.ok(answers[2].headers['x-quota-reset'] !== undefined)
  await settle(lines, 3)
  t.equal(lines[2].response_flag, 'QEX')
  t.equal(upstream.hits(), 2)
})

t.test('circuitBreaker: a refused upstream opens it, then CBO without dialling', async (t) => {
  const port = await closedPort()
  const { url, lines } = await start(t, {
    apis: [{
      name: 'Down',
      prefix: '/down',
      upstream: { targets: [`http://127.0.0.1:${port}`], retries: 0 },
      circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 3, resetTimeout: 60_000 }
    }]
  })
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await httpRequest(url, { path: '/down/' })).status)
  t.same(statuses, [502, 502, 502, 503, 503])
  await settle(lines, 5)
  t.same(lines.map((l) => l.response_flag), ['UCF', 'UCF', 'UCF', 'CBO', 'CBO'])
  t.equal(lines[3].circuit_breaker_state, 'open')
  t.equal(lines[3].error_target, `127.0.0.1:${port}`)
  t.equal(lines[3].upstream_attempts, undefined, 'CBO never tried the upstream')
})

t.test('redis: two gateways enforce one shared limit; failMode closed answers RLE when it dies', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const upstream = await startUpstream(t)
  const api = (failMode: 'open' | 'closed'): GatewayConfigInput['apis'][number] => ({
    name: 'Shared',
    prefix: '/s',
    upstream: { targets: [upstream.url] },
    rateLimit: { max: 4, timeWindow: '1 minute', key: 'ip' },
    failMode
  })
  const redisConfig = { url: redis.url, commandTimeout: 200 }
  const a = await start(t, { redis: redisConfig, apis: [api('closed')] })
  const b = await start(t, { redis: redisConfig, apis: [api('open')] })
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) {
    statuses.push((await httpRequest(a.url, { path: '/s/' })).status)
    statuses.push((await httpRequest(b.url, { path: '/s/' })).status)
  }
  t.same(statuses, [200, 200, 200, 200, 429, 429], 'four requests in all, whichever gateway took them')

  await redis.stop()
  const closed = await httpRequest(a.url, { path: '/s/' })
  const open = await httpRequest(b.url, { path: '/s/' })
  t.equal(closed.status, 503, 'failMode closed refuses')
  t.equal(open.status, 200, 'failMode open lets it through')
  await settle(a.lines, 4)
  await settle(b.lines, 4)
  t.match(a.lines.at(-1), { response_flag: 'RLE', error_target: `127.0.0.1:${redis.port}` })
  t.equal(b.lines.at(-1)?.rate_limit_degraded, true)

  await redis.restart()
  let back = 0
  for (let i = 0; i < 50 && back !== 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    back = (await httpRequest(a.url, { path: '/s/' })).status
  }
  t.equal(back, 200, 'enforcement resumes without a restart (the new Redis starts empty)')
})

t.test('APIs share one scope and keep their own boundaries: auth, limits, body rules, breaker, prefix', async (t) => {
  const upstream = await startUpstream(t)
  const dead = await closedPort()
  const { url, lines } = await start(t, {
    apis: [
      {
        name: 'A',
        prefix: '/a',
        upstream: { targets: [upstream.url] },
        auth: { type: 'apiKey', keys },
        rateLimit: { max: 1, timeWindow: '1 minute' },
        contentTypes: ['application/json'],
        circuitBreaker: { volumeThreshold: 2, resetTimeout: 60_000 }
      },
      // Its prefix starts with A's: /ab/... is B's, never A's.
      { name: 'B', prefix: '/ab', upstream: { targets: [upstream.url] } },
      { name: 'C', prefix: '/c', upstream: { targets: [`http://127.0.0.1:${dead}`], retries: 0, refusedBackoff: 0 }, circuitBreaker: { volumeThreshold: 2, resetTimeout: 60_000 } }
    ]
  })
  const text = { 'content-type': 'text/plain' }
  const answers: Array<[string, number]> = []
  const send = async (path: string, headers: Record<string, string> = {}, body?: string): Promise<void> => {
    const res = await httpRequest(url, { path, headers, method: body === undefined ? 'GET' : 'POST', body })
    answers.push([path, res.status])
  }
  await send('/ab/x') // B: no key needed
  await send('/ab/x') // B: A's limit of 1 does not apply
  await send('/ab/x', text, 'plain') // B: A's content types do not apply
  await send('/a/x') // A: AMF
  await send('/a/x', { 'x-api-key': keys[0].key }) // A: 200
  await send('/a/x', { 'x-api-key': keys[0].key }) // A: RLT
  await send('/a/x', { 'x-api-key': keys[1].key, ...text }, 'plain') // A: UMT, before the limit
  for (let i = 0; i < 3; i++) await send('/c/x') // C: UCF, UCF, then its breaker opens
  await send('/a/x', { 'x-api-key': keys[1].key }) // A's breaker is still closed
  t.same(answers.map(([, status]) => status), [200, 200, 200, 401, 200, 429, 415, 502, 502, 503, 200])
  await settle(lines, answers.length)
  t.same(lines.map((l) => [l.api_name, l.response_flag ?? null]), [
    ['B', null], ['B', null], ['B', null],
    ['A', 'AMF'], ['A', null], ['A', 'RLT'], ['A', 'UMT'],
    ['C', 'UCF'], ['C', 'UCF'], ['C', 'CBO'],
    ['A', null]
  ])
  t.equal(lines[9].error_target, `127.0.0.1:${dead}`, 'C\'s breaker names C\'s target')
  t.equal(upstream.hits(), 5)
})

t.test('registerApi: APIs added to one scope answer with one request and reply shape', async (t) => {
  const upstream = await startUpstream(t)
  const app = Fastify({ logger: false })
  await app.register(faultlineCore)
  const seen = new Map<string, { request: object, reply: object }>()
  await app.register(async (scope) => {
    scope.addHook('onRequest', async (request, reply) => {
      seen.set(request.url, { request: Object.getPrototypeOf(request), reply: Object.getPrototypeOf(reply) })
    })
    await registerApi(scope, { name: 'One', prefix: '/one', upstream: { targets: [upstream.url] }, auth: { type: 'apiKey', keys } })
    await registerApi(scope, { name: 'Two', prefix: '/two', upstream: { targets: [upstream.url] }, rateLimit: { max: 5, timeWindow: 1000 }, circuitBreaker: {} })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  t.equal((await httpRequest(base, { path: '/one/x', headers: { 'x-api-key': keys[0].key } })).status, 200)
  t.equal((await httpRequest(base, { path: '/two/x' })).status, 200)
  t.equal((await httpRequest(base, { path: '/one/x' })).status, 401, 'One keeps its auth')
  const one = seen.get('/one/x')
  const two = seen.get('/two/x')
  t.ok(one !== undefined && two !== undefined)
  t.equal(one?.request, two?.request, 'one Request class for both APIs')
  t.equal(one?.reply, two?.reply, 'one Reply class for both APIs')
})
