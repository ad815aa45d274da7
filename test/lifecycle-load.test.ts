/**
 * Log integrity under load: a few thousand concurrent requests against a real gateway
 * (buildGateway) mixing successes with every failure that is cheap to cause on loopback. Every
 * request carries its own id; afterwards the access log must hold exactly one line per request
 * sent, with the flag its kind calls for, and the status its client saw.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Agent, request } from 'undici'
import { buildGateway } from '@faultline/gateway'
import { LogCapture, type AccessLine } from './helpers/log-capture.js'

const TOTAL = 3000
const CONCURRENCY = 150
const RATE_LIMIT = 40

interface Kind {
  name: string
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  headers?: Record<string, string>
  body?: Buffer
  /** Leave once the upstream has the request (CDC). */
  abort?: boolean
  /** The flag and status the line must carry; `undefined` flag: an unflagged success. */
  flag: string | undefined
  status: number
}

const kinds: Kind[] = [
  { name: 'ok', method: 'GET', path: '/api/ok', flag: undefined, status: 200 },
  { name: 'ok post', method: 'POST', path: '/api/ok', body: Buffer.from('{"a":1}'), headers: { 'content-type': 'application/json' }, flag: undefined, status: 200 },
  { name: 'keyed ok', method: 'GET', path: '/keyed/ok', headers: { 'x-api-key': 'alice-key' }, flag: undefined, status: 200 },
  { name: 'unknown path', method: 'GET', path: '/nowhere/x', flag: 'NRF', status: 404 },
  { name: 'wrong method', method: 'DELETE', path: '/api/ok', flag: 'MNA', status: 405 },
  { name: 'refused port', method: 'GET', path: '/down/x', flag: 'UCF', status: 502 },
  { name: 'upstream 503', method: 'GET', path: '/api/s503', flag: 'URS', status: 503 },
  { name: 'response timeout', method: 'GET', path: '/slow/hang', flag: 'URT', status: 504 },
  { name: 'body too large', method: 'POST', path: '/api/ok', body: Buffer.alloc(2048, 'b'), headers: { 'content-type': 'application/octet-stream' }, flag: 'BTL', status: 413 },
  { name: 'missing key', method: 'GET', path: '/keyed/ok', flag: 'AMF', status: 401 },
  { name: 'bad key', method: 'GET', path: '/keyed/ok', headers: { 'x-api-key': 'nobody-key' }, flag: 'AKI', status: 401 },
  { name: 'client abort', method: 'GET', path: '/api/hang', abort: true, flag: 'CDC', status: 499 }
]
// Rate-limited: the first RATE_LIMIT pass (unflagged 200), every later one is RLT 429.
const limited: Kind = { name: 'rate limited', method: 'GET', path: '/limited/ok', headers: { 'x-api-key': 'bob-key' }, flag: 'RLT', status: 429 }

t.test(`${TOTAL} concurrent requests of every kind: exactly one access line each, with the right flag`, async (t) => {
  // The upstream: /ok answers, /s503 fails, /hang never answers (and says when it has the request).
  const arrived = new Map<string, () => void>()
  const upstream = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    const path = req.url ?? ''
    if (path.endsWith('/hang')) {
      arrived.get(String(req.headers['x-request-id']))?.()
      return
    }
    req.on('end', () => {
      if (path.endsWith('/s503')) res.writeHead(503).end('down')
      else res.end('ok')
    })
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    upstream.closeAllConnections()
    upstream.close()
  })
  const base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`

  // A port nothing listens on: bound, then released.
  const closed = http.createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const refusedPort = (closed.address() as AddressInfo).port
  await new Promise((resolve) => closed.close(resolve))

  const log = new LogCapture()
  const app = await buildGateway({
    server: { port: 0 },
    apis: [
      { name: 'Main', prefix: '/api', methods: ['GET', 'POST'], bodyLimit: 1024, upstream: { targets: [base], responseTimeout: 10_000 } },
      { name: 'Slow', prefix: '/slow', upstream: { targets: [base], responseTimeout: 250 } },
      { name: 'Down', prefix: '/down', upstream: { targets: [`http://127.0.0.1:${refusedPort}`] } },
      { name: 'Keyed', prefix: '/keyed', auth: { type: 'apiKey', keys: [{ id: 'alice', key: 'alice-key' }] }, upstream: { targets: [base] } },
      {
        name: 'Limited',
        prefix: '/limited',
        auth: { type: 'apiKey', keys: [{ id: 'bob', key: 'bob-key' }] },
        rateLimit: { max: RATE_LIMIT, timeWindow: '1 hour' },
        upstream: { targets: [base] }
      }
    ]
  }, { accessLogDestination: log, logger: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  // The plan: kinds in rotation, the rate-limited API as one more kind.
  const rotation = [...kinds, limited]
  const plan = Array.from({ length: TOTAL }, (_, i) => rotation[i % rotation.length])
  const seenByClient = new Map<string, number | string>()
  const dispatcher = new Agent({ keepAliveTimeout: 10_000 })
  t.teardown(() => dispatcher.close())

  async function send (i: number): Promise<void> {
    const kind = plan[i]
    const id = `load-${i}`
    const controller = new AbortController()
    if (kind.abort === true) {
      arrived.set(id, () => {
        arrived.delete(id)
        controller.abort()
      })
    }
    try {
      const res = await request(origin + kind.path, {
        dispatcher,
        method: kind.method,
        headers: { 'x-request-id': id, ...kind.headers },
        body: kind.body,
        signal: controller.signal
      })
      await res.body.dump()
      seenByClient.set(id, res.statusCode)
    } catch (err) {
      const e = err as Error & { code?: unknown }
      seenByClient.set(id, e.name === 'AbortError' ? e.name : String(e.code ?? e.name))
    }
  }

  let next = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < TOTAL) await send(next++)
  }))
  t.equal(seenByClient.size, TOTAL, `all ${TOTAL} requests were sent`)

  await log.waitFor(TOTAL, 15_000)
  await new Promise((resolve) => setTimeout(resolve, 200))
  const lines = log.lines
  t.equal(lines.length, TOTAL, 'as many access lines as requests sent')

  const byId = new Map<string, AccessLine[]>()
  for (const line of lines) byId.set(line.request_id, [...(byId.get(line.request_id) ?? []), line])
  const missing: string[] = []
  const doubled: string[] = []
  const wrong: string[] = []
  const expected = new Map<string, number>()
  const logged = new Map<string, number>()
  const count = (m: Map<string, number>, key: string): void => { m.set(key, (m.get(key) ?? 0) + 1) }
  let limitedPassed = 0
  for (let i = 0; i < TOTAL; i++) {
    const id = `load-${i}`
    const kind = plan[i]
    const mine = byId.get(id) ?? []
    if (mine.length === 0) { missing.push(id); continue }
    if (mine.length > 1) doubled.push(id)
    const line = mine[0]
    count(logged, (line.response_flag as string | undefined) ?? 'none')
    let flag = kind.flag
    let status = kind.status
    if (kind === limited && line.status === 200 && limitedPassed < RATE_LIMIT) {
      limitedPassed++
      flag = undefined
      status = 200
    }
    count(expected, flag ?? 'none')
    if (line.response_flag !== flag || line.status !== status) {
      wrong.push(`${id} (${kind.name}): logged ${String(line.response_flag)} ${line.status}, expected ${String(flag)} ${status}`)
    }
    // What the client saw is what the line says (an aborted client saw no status).
    const client = seenByClient.get(id)
    if (kind.abort === true ? client !== 'AbortError' : client !== line.status) {
      wrong.push(`${id} (${kind.name}): the client saw ${String(client)}, the line says ${line.status}`)
    }
  }
  t.same(missing, [], 'no request without a line')
  t.same(doubled, [], 'no request with two lines')
  t.same(wrong, [], 'every line has the flag and status its request calls for')
  t.equal(limitedPassed, RATE_LIMIT, `the rate limit let exactly ${RATE_LIMIT} through`)
  t.same(Object.fromEntries([...logged].sort()), Object.fromEntries([...expected].sort()), 'per-flag counts match the plan')
  t.equal(expected.size, kinds.length - 3 + 2, 'every failure kind of the plan occurred, plus successes')
})
