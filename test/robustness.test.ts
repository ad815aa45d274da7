/**
 * Hostile input against a real gateway (the gateway package's own composition) in front of a real
 * upstream, over raw sockets: malformed request lines, oversized and repeated headers, broken
 * chunked bodies, CL/TE smuggling, invalid UTF-8, path traversal toward the upstream, hop-by-hop
 * tricks and slowloris trickles. Bounded in count and time; loopback only.
 */
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { buildGateway } from '@faultline/gateway'
import type { FastifyInstance } from 'fastify'
import { LogCapture } from './helpers/log-capture.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const seen: string[] = []
let upstreamPort = 0
let gatewayPort = 0
let app: FastifyInstance
const log = new LogCapture()

t.before(async () => {
  const upstream = http.createServer((req, res) => {
    seen.push(req.url ?? '')
    req.resume()
    req.on('end', () => res.end('{"ok":true}'))
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  upstreamPort = (upstream.address() as AddressInfo).port
  t.teardown(() => { upstream.closeAllConnections(); upstream.close() })
  app = await buildGateway({
    server: { port: 0, requestTimeout: 1000, bodyLimit: 64 * 1024 },
    apis: [{ name: 'Fuzzed', prefix: '/api', upstream: { targets: [`http://127.0.0.1:${upstreamPort}/base`], responseTimeout: 2000 } }]
  }, { accessLogDestination: log, logger: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  gatewayPort = (app.server.address() as AddressInfo).port
  t.teardown(() => app.close())
})

interface Exchange {
  /** Everything the gateway wrote back before closing (or before the exchange timed out). */
  answer: string
}

/** Sends `parts` (with `gapMs` between them), then waits for the connection to end (bounded). */
async function exchange (parts: Buffer[], gapMs = 0, waitMs = 3000): Promise<Exchange> {
  const socket = net.connect(gatewayPort, '127.0.0.1')
  socket.on('error', () => {})
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  for (const part of parts) {
    if (socket.destroyed) break
    socket.write(part)
    if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs))
  }
  // Half-close so a gateway that waits for more bytes answers now (Node treats it as the end).
  const timer = setTimeout(() => socket.destroy(), waitMs)
  await closed
  clearTimeout(timer)
  return { answer: Buffer.concat(chunks).toString('latin1') }
}

const b = (text: string): Buffer => Buffer.from(text, 'latin1')
const CRLF = '\r\n'
const close = `Connection: close${CRLF}`

/** Each case: the bytes, in one or more parts, that make up one hostile request. */
function hostileRequests (): Array<{ name: string, parts: Buffer[] }> {
  const cases: Array<{ name: string, parts: Buffer[] }> = []
  const add = (name: string, ...parts: Array<string | Buffer>): void => {
    cases.push({ name, parts: parts.map((p) => typeof p === 'string' ? b(p) : p) })
  }
  const traversals = ['/api/../admin', '/api/%2e%2e/admin', '/api/..%2fadmin', '/api/%2e%2e%2fadmin', '/api/a/../../admin',
    '/api/.%2e/admin', '/api//..//admin', '/api/..\\admin', '/api/%2E%2E/%2E%2E/etc/passwd', '/api/a/%2e%2e/%2e%2e/x',
    '/api/%c0%ae%c0%ae/admin', '/api/..;/admin', '/api/%252e%252e/admin']
  for (const path of traversals) add(`traversal ${path}`, `GET ${path} HTTP/1.1${CRLF}Host: x${CRLF}${close}${CRLF}`)
  add('raw invalid utf-8 in path', Buffer.concat([b('GET /api/'), Buffer.from([0xff, 0xfe, 0xc0, 0xae]), b(` HTTP/1.1${CRLF}Host: x${CRLF}${close}${CRLF}`)]))
  add('CL.TE smuggling', `POST /api/x HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 44${CRLF}Transfer-Encoding: chunked${CRLF}${CRLF}0${CRLF}${CRLF}GET /smuggled HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`)
  add('TE.CL smuggling', `POST /api/x HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: chunked${CRLF}Content-Length: 4${CRLF}${CRLF}5c${CRLF}GET /smuggled HTTP/1.1${CRLF}Content-Length: 15${CRLF}${CRLF}x=1${CRLF}0${CRLF}${CRLF}`)
  add('TE obfuscated', `POST /api/x HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: xchunked${CRLF}${CRLF}0${CRLF}${CRLF}GET /smuggled HTTP/1.1${CRLF}${CRLF}`)
  add('TE with space before colon', `POST /api/x HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding : chunked${CRLF}${CRLF}0${CRLF}${CRLF}GET /smuggled HTTP/1.1${CRLF}${CRLF}`)
  add('duplicate Content-Length', `POST /api/x HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: 3${CRLF}Content-Length: 40${CRLF}${CRLF}abcGET /smuggled HTTP/1.1${CRLF}${CRLF}`)
  add('bad chunk size', `POST /api/x HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: chunked${CRLF}${close}${CRLF}zz${CRLF}hello${CRLF}0${CRLF}${CRLF}`)
  add('negative Content-Length', `POST /api/x HTTP/1.1${CRLF}Host: x${CRLF}Content-Length: -1${CRLF}${CRLF}`)
  add('bad method', `G@T /api/x HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`)
  add('unknown version', `GET /api/x HTTP/9.9${CRLF}Host: x${CRLF}${CRLF}`)
  add('no path', `GET HTTP/1.1${CRLF}${CRLF}`)
  add('binary garbage', randomBytes(200), CRLF + CRLF)
  add('huge header', `GET /api/x HTTP/1.1${CRLF}Host: x${CRLF}X-Big: ${'a'.repeat(20_000)}${CRLF}${CRLF}`)
  add('many headers', `GET /api/x HTTP/1.1${CRLF}Host: x${CRLF}${close}${Array.from({ length: 300 }, (_, i) => `X-H${i}: ${i}${CRLF}`).join('')}${CRLF}`)
  add('header with NUL', `GET /api/x HTTP/1.1${CRLF}Host: x${CRLF}X-A: a\u0000b${CRLF}${CRLF}`)
  add('hop-by-hop strips a header', `GET /api/hop HTTP/1.1${CRLF}Host: x${CRLF}X-Internal: 1${CRLF}Connection: close, x-internal${CRLF}${CRLF}`)
  add('upgrade to websocket', `GET /api/ws HTTP/1.1${CRLF}Host: x${CRLF}Upgrade: websocket${CRLF}Connection: Upgrade, close${CRLF}${CRLF}`)
  add('absolute-form target', `GET http://evil.example/api/x HTTP/1.1${CRLF}Host: x${CRLF}${close}${CRLF}`)
  add('body over the limit, chunked', `POST /api/x HTTP/1.1${CRLF}Host: x${CRLF}Transfer-Encoding: chunked${CRLF}${close}${CRLF}`, `10000${CRLF}${'y'.repeat(0x10000)}${CRLF}`, `10000${CRLF}${'y'.repeat(0x10000)}${CRLF}0${CRLF}${CRLF}`)
  add('well-formed control', `GET /api/ok HTTP/1.1${CRLF}Host: x${CRLF}${close}${CRLF}`)
  return cases
}

const STATUS_LINE = /^HTTP\/1\.1 (\d{3}) /

t.test('thousands of hostile requests: every answer has a status and a logged, flagged line; nothing escapes the prefix', async (t) => {
  const cases = hostileRequests()
  // Warm-up, then the baseline heap.
  for (let i = 0; i < 50; i++) await exchange(cases[cases.length - 1].parts)
  gc()
  const baseline = process.memoryUsage().heapUsed

  const rounds = 80
  const deadline = Date.now() + 90_000
  const answers: Array<{ name: string, answer: string }> = []
  const queue: typeof cases = []
  for (let r = 0; r < rounds; r++) for (const c of cases) queue.push(c)
  let next = 0
  const workers = Array.from({ length: 32 }, async () => {
    while (next < queue.length && Date.now() < deadline) {
      const c = queue[next++]
      const { answer } = await exchange(c.parts)
      answers.push({ name: c.name, answer })
    }
  })
  await Promise.all(workers)
  t.equal(answers.length, queue.length, `all ${queue.length} requests were sent within the time bound`)

  // A few slowloris connections trickle their head slower than requestTimeout allows.
  const trickles = await Promise.all(Array.from({ length: 4 }, async () =>
    await exchange([...`GET /api/slow HTTP/1.1${CRLF}Host: x${CRLF}X-Slow: `].map(b).concat(b(`1${CRLF}${CRLF}`)), 60, 4000)))

  const unanswered = answers.filter((a) => !STATUS_LINE.test(a.answer))
  t.same(unanswered.map((a) => a.name), [], 'every hostile request got an HTTP status')
  for (const trickle of trickles) t.match(trickle.answer, /^HTTP\/1\.1 408 /, 'slowloris gets 408')

  // Every answer names a request id, and the log has that request with that status and a flag.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const byId = new Map(log.lines.map((l) => [l.request_id, l]))
  t.equal(byId.size, log.lines.length, 'one access line per request: no request id logged twice')
  let checked = 0
  for (const { name, answer } of [...answers, ...trickles.map((x) => ({ name: 'slowloris', answer: x.answer }))]) {
    for (const response of answer.split(/(?=HTTP\/1\.1 \d{3} )/)) {
      const status = Number(STATUS_LINE.exec(response)?.[1])
      const id = /\r\nx-request-id: ([^\r\n]+)/i.exec(response)?.[1]
      if (id === undefined) {
        t.fail(`${name}: answer without a request id`)
        continue
      }
      const line = byId.get(id)
      if (line === undefined || line.status !== status) {
        t.fail(`${name}: no access line with request_id ${id} and status ${status}`)
        continue
      }
      if (status >= 400 && typeof line.response_flag !== 'string') t.fail(`${name}: status ${status} logged without a flag`)
      checked++
    }
  }
  t.ok(checked >= answers.length, `${checked} answers matched to their access lines`)
  t.ok(log.lines.filter((l) => l.status >= 400).every((l) => typeof l.response_flag === 'string'), 'no error line without a flag')

  // The upstream only ever saw paths inside the API's base, never a smuggled request.
  t.ok(seen.length > 0, 'well-formed requests reached the upstream')
  const escaped = seen.filter((url) => {
    const path = decodeURIComponent(url.split('?')[0].replace(/%(?![0-9a-f]{2})/gi, '%25'))
    return !(path === '/base' || path.startsWith('/base/')) || path.split('/').includes('..')
  })
  t.same(escaped, [], 'no request reached the upstream outside its prefix')
  t.notOk(seen.some((url) => url.includes('smuggled')), 'no smuggled request reached the upstream')

  // The gateway still serves, and its heap returned to the baseline.
  const after = await exchange(cases[cases.length - 1].parts)
  t.match(after.answer, /^HTTP\/1\.1 200 /)
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const heap = process.memoryUsage().heapUsed
  t.ok(heap < baseline * 1.5 + 8 * 1024 * 1024, `heap back near its baseline (${Math.round(baseline / 1e6)} MB -> ${Math.round(heap / 1e6)} MB)`)
})
