/**
 * One access line per request, with the right flag, when a request ends badly: the client leaves
 * at every stage (mid-head, mid-upload, while the upstream works, mid-download) and the upstream
 * dies mid-response. A real gateway (buildGateway) in front of a real loopback upstream that
 * reports what it saw of each request; clients are raw sockets, so every byte and every close is
 * the test's choice.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import net, { type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { buildGateway } from '@faultline/gateway'
import type { FastifyInstance } from 'fastify'
import { LogCapture, type AccessLine } from './helpers/log-capture.js'

/** What the upstream saw of one request, by the request id the gateway forwarded. */
interface Seen {
  bodyBytes: number
  /** The request body arrived in full. */
  complete: boolean
  /** The upstream's response was closed before it finished: the gateway gave up on the request. */
  cutShort: boolean
  closed: Promise<void>
}

const seen = new Map<string, Seen>()
const log = new LogCapture()
const appLog: Array<Record<string, unknown>> = []
let app: FastifyInstance
let gatewayPort = 0
let upstreamAddr = ''
let nextId = 0

function upstreamHandler (req: IncomingMessage, res: ServerResponse): void {
  const id = String(req.headers['x-request-id'])
  let closed: () => void = () => {}
  const entry: Seen = { bodyBytes: 0, complete: false, cutShort: false, closed: new Promise((resolve) => { closed = resolve }) }
  seen.set(id, entry)
  req.on('data', (chunk: Buffer) => { entry.bodyBytes += chunk.length })
  req.on('end', () => { entry.complete = true })
  res.on('close', () => {
    entry.cutShort = !res.writableFinished
    closed()
  })
  const path = req.url ?? ''
  if (path.startsWith('/base/hang')) return // answers never: the client leaves first
  if (path.startsWith('/base/stream')) {
    // A large body, slowly: 16 KiB at once, then 1 KiB every 20 ms, bounded by a timer.
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    res.write(Buffer.alloc(16 * 1024, 'a'))
    const drip = setInterval(() => res.write(Buffer.alloc(1024, 'b')), 20)
    const stop = setTimeout(() => res.end(), 10_000)
    res.on('close', () => {
      clearInterval(drip)
      clearTimeout(stop)
    })
    return
  }
  if (path.startsWith('/base/die')) {
    // Headers and part of the body, then the upstream process "dies": its socket is destroyed.
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'text/plain' }
    if (path.endsWith('/declared')) headers['content-length'] = 100_000
    res.writeHead(200, headers)
    res.write('x'.repeat(1000))
    setTimeout(() => res.socket?.destroy(), 30)
    return
  }
  req.on('end', () => res.end('ok'))
}

t.before(async () => {
  const upstream = http.createServer(upstreamHandler)
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const upstreamPort = (upstream.address() as AddressInfo).port
  upstreamAddr = `127.0.0.1:${upstreamPort}`
  t.teardown(() => {
    upstream.closeAllConnections()
    upstream.close()
  })
  app = await buildGateway({
    server: { port: 0 },
    apis: [
      { name: 'Life', prefix: '/api', upstream: { targets: [`http://127.0.0.1:${upstreamPort}/base`], responseTimeout: 10_000 } },
      // A schema makes the gateway read the whole body before it picks an upstream.
      {
        name: 'Checked',
        prefix: '/checked',
        contentTypes: ['application/json'],
        schema: { type: 'object' },
        upstream: { targets: [`http://127.0.0.1:${upstreamPort}/base`] }
      }
    ]
  }, {
    accessLogDestination: log,
    logger: { level: 'warn', stream: { write: (line: string) => { appLog.push(JSON.parse(line) as Record<string, unknown>) } } }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  gatewayPort = (app.server.address() as AddressInfo).port
  t.teardown(() => app.close())
})

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

async function until (what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

interface RawClient {
  socket: net.Socket
  /** Everything the gateway sent back. */
  received: () => Buffer
  closed: Promise<void>
}

function rawClient (): RawClient {
  const socket = net.connect(gatewayPort, '127.0.0.1')
  socket.on('error', () => {}) // a reset is part of the test, not a failure
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  return { socket, received: () => Buffer.concat(chunks), closed }
}

function newId (): string {
  return `lifecycle-${++nextId}`
}

/** The one line of request `id`: waits for it, then a little longer, to see that no second one follows. */
async function oneLine (t: Test, id: string): Promise<AccessLine> {
  await until(`the access line of ${id}`, () => log.lines.some((l) => l.request_id === id))
  await sleep(100)
  const lines = log.lines.filter((l) => l.request_id === id)
  t.equal(lines.length, 1, `exactly one access line for ${id}`)
  return lines[0]
}

/** Fields that must be absent from a line (a field with no value is omitted, never null). */
function absent (t: Test, line: AccessLine, fields: string[]): void {
  for (const field of fields) t.notOk(field in line, `no ${field} in the line`)
}

const CDC = { status: 499, response_flag: 'CDC', response_code_details: 'client_disconnected', error_category: 'client', error_source: 'Client' }

t.test('(a) before the head is complete', async (t) => {
  for (const [how, leave] of [['closes (FIN)', (s: net.Socket) => s.destroy()], ['half-closes', (s: net.Socket) => s.end()]] as const) {
    t.test(`a client that sends half a head and ${how} gets one CDC 499 line and no answer`, async (t) => {
      const before = log.lines.length
      const seenBefore = seen.size
      const client = rawClient()
      client.socket.write(`GET /api/hang HTTP/1.1\r\nHost: x\r\nx-request-id: ${newId()}\r\nX-Half: `)
      await sleep(50)
      leave(client.socket)
      await client.closed
      await until('a line', () => log.lines.length > before)
      await sleep(100)
      const lines = log.lines.slice(before)
      t.equal(lines.length, 1, 'one line')
      // No request exists yet (the head was never complete): method and path are unknown, the
      // id is a new one, and no upstream was involved.
      t.match(lines[0], { ...CDC, method: '-', path: '-', route: '-', response_source: 'gateway' })
      absent(t, lines[0], ['upstream_addr', 'upstream_attempts', 'upstream_latency', 'upstream_status', 'response_truncated'])
      t.equal(client.received().length, 0, 'nothing was sent to the client')
      t.equal(seen.size, seenBefore, 'the upstream saw nothing')
    })
  }

  t.test('a client that resets (RST) in the middle of its head leaves no line: Node reports no request, only ECONNRESET', async (t) => {
    const before = log.lines.length
    const client = rawClient()
    client.socket.write(`GET /api/hang HTTP/1.1\r\nHost: x\r\nx-request-id: ${newId()}\r\nX-Half: `)
    await sleep(50)
    client.socket.resetAndDestroy()
    await client.closed
    // A reset mid-head looks exactly like a reset of an idle keep-alive connection: no request
    // object, no parser error. Give the gateway time to have logged something if it were going to.
    await sleep(300)
    t.equal(log.lines.length, before, 'no line')
    // The gateway still serves.
    const control = rawClient()
    const id = newId()
    control.socket.write(`GET /api/ok HTTP/1.1\r\nHost: x\r\nx-request-id: ${id}\r\nConnection: close\r\n\r\n`)
    await control.closed
    t.match(control.received().toString('latin1'), /^HTTP\/1\.1 200 /)
    t.match(await oneLine(t, id), { status: 200, request_id: id })
  })
})

t.test('(b) mid-upload', async (t) => {
  const leaves = [['closes (FIN)', (s: net.Socket) => s.destroy()], ['resets (RST)', (s: net.Socket) => s.resetAndDestroy()]] as const
  for (const [how, leave] of leaves) {
    t.test(`a client that ${how} halfway through a 100000-byte upload: one CDC 499 line, and the upstream upload is aborted`, async (t) => {
      const id = newId()
      const client = rawClient()
      client.socket.write(`POST /api/hang HTTP/1.1\r\nHost: x\r\nx-request-id: ${id}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`)
      client.socket.write(Buffer.alloc(50_000, 'u'))
      // The body streams through: the upstream is already receiving it.
      await until('the upstream to receive body bytes', () => (seen.get(id)?.bodyBytes ?? 0) > 0)
      leave(client.socket)
      const line = await oneLine(t, id)
      // An upstream was chosen and dialled, but never answered.
      t.match(line, { ...CDC, method: 'POST', path: '/api/hang', api_name: 'Life', response_source: 'gateway', upstream_addr: upstreamAddr, upstream_attempts: 1 })
      t.type(line.upstream_latency, 'number', 'upstream_latency: the upstream was tried')
      absent(t, line, ['upstream_status', 'response_truncated'])
      const upstream = seen.get(id) as Seen
      await upstream.closed
      t.equal(upstream.complete, false, 'the upstream never got the whole body')
      t.ok(upstream.bodyBytes < 100_000, `the upstream got ${upstream.bodyBytes} of 100000 bytes`)
      t.equal(upstream.cutShort, true, 'the upstream request was aborted')
    })
  }

  t.test('a client that leaves while the gateway reads the body to validate it: CDC 499, no upstream fields (none was chosen)', async (t) => {
    const id = newId()
    const client = rawClient()
    client.socket.write(`POST /checked/x HTTP/1.1\r\nHost: x\r\nx-request-id: ${id}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"a":"`)
    client.socket.write('v'.repeat(50_000))
    await sleep(100)
    client.socket.destroy()
    const line = await oneLine(t, id)
    t.match(line, { ...CDC, method: 'POST', api_name: 'Checked', response_source: 'gateway' })
    absent(t, line, ['upstream_addr', 'upstream_attempts', 'upstream_latency', 'upstream_status', 'response_truncated'])
    t.notOk(seen.has(id), 'the upstream saw nothing')
  })
})

t.test('(c) while the upstream works', async (t) => {
  for (const method of ['GET', 'POST']) {
    t.test(`a ${method} client that leaves while waiting for the upstream: one CDC 499 line, and the upstream request is aborted`, async (t) => {
      const id = newId()
      const client = rawClient()
      const body = method === 'POST' ? '{"order":1}' : ''
      client.socket.write(`${method} /api/hang HTTP/1.1\r\nHost: x\r\nx-request-id: ${id}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
      await until('the upstream to get the request', () => seen.get(id)?.complete === true)
      await sleep(100)
      client.socket.destroy()
      const line = await oneLine(t, id)
      t.match(line, { ...CDC, method, response_source: 'gateway', upstream_addr: upstreamAddr, upstream_attempts: 1 })
      t.ok((line.upstream_latency as number) >= 90, `upstream_latency is the time waited (${String(line.upstream_latency)} ms)`)
      absent(t, line, ['upstream_status', 'response_truncated'])
      const upstream = seen.get(id) as Seen
      await upstream.closed
      t.equal(upstream.cutShort, true, 'the upstream saw its request closed before it answered: the gateway aborted it')
      t.equal(upstream.bodyBytes, body.length, 'the whole body had reached the upstream')
    })
  }
})

t.test('(d) mid-download', async (t) => {
  t.test('a client that leaves after the first bytes of a large slow body: one CDC 499 line that says the upstream had answered', async (t) => {
    const id = newId()
    const client = rawClient()
    client.socket.write(`GET /api/stream HTTP/1.1\r\nHost: x\r\nx-request-id: ${id}\r\n\r\n`)
    await until('the first body bytes', () => client.received().length > 4096)
    t.match(client.received().toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/, 'the client had the status line')
    client.socket.destroy()
    const line = await oneLine(t, id)
    // The status went out, the body was cut: status stays 499 (the client did not get the
    // response), upstream_status says what the upstream answered, response_truncated that it was cut.
    t.match(line, { ...CDC, response_source: 'upstream', upstream_status: 200, upstream_addr: upstreamAddr, upstream_attempts: 1, response_truncated: true })
    t.type(line.upstream_latency, 'number')
    const upstream = seen.get(id) as Seen
    await upstream.closed
    t.equal(upstream.cutShort, true, 'the upstream stream was stopped, not read to its end')
  })
})

t.test('the upstream dies mid-response: one URR line with the status already sent, response_truncated, not CDC', async (t) => {
  for (const framing of ['declared', 'chunked']) {
    t.test(`${framing} body`, async (t) => {
      const id = newId()
      const outcome = await new Promise<{ status: number, bytes: number, end: string }>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: gatewayPort, path: `/api/die/${framing}`, agent: false, headers: { 'x-request-id': id } }, (res) => {
          let bytes = 0
          res.on('data', (chunk: Buffer) => { bytes += chunk.length })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, end: 'end' }))
          res.on('aborted', () => resolve({ status: res.statusCode ?? 0, bytes, end: 'aborted' }))
          res.on('error', () => resolve({ status: res.statusCode ?? 0, bytes, end: 'aborted' }))
        })
        req.on('error', () => resolve({ status: 0, bytes: 0, end: 'request error' }))
      })
      t.equal(outcome.status, 200, 'the client got the upstream status')
      t.equal(outcome.end, 'aborted', 'the client sees a cut response, never a clean end')
      t.equal(outcome.bytes, 1000, 'and exactly the bytes the upstream sent')
      const line = await oneLine(t, id)
      t.match(line, {
        status: 200,
        response_source: 'upstream',
        response_flag: 'URR',
        response_code_details: 'upstream_closed_connection',
        error_category: 'upstream',
        error_source: 'UpstreamProxy',
        error_target: upstreamAddr,
        upstream_status: 200,
        upstream_addr: upstreamAddr,
        upstream_attempts: 1,
        response_truncated: true
      })
      t.type(line.upstream_latency, 'number')
    })
  }
})

t.test('every request above has exactly one line, and none was an unexpected error', async (t) => {
  const ids = log.lines.map((l) => l.request_id)
  t.equal(new Set(ids).size, ids.length, 'no request id logged twice')
  // Lines without our ids are the two half-head requests, which have no id of their own.
  const ours = log.lines.filter((l) => l.request_id.startsWith('lifecycle-'))
  t.equal(ours.length, log.lines.length - 2, 'every other line is one of ours')
  t.notOk(log.lines.some((l) => l.response_flag === 'GIE'), 'no GIE')
  t.same(appLog.filter((l) => l.msg === 'faultline: unexpected error'), [], 'no unexpected error in the application log')
})
