/**
 * How the upstream's response reaches the client (upstream-exchange.ts): a small declared body is
 * held until complete and sent in one write, anything else streams. Both must look the same to the
 * client, in success and when the upstream fails part way: the status that came, the bytes that
 * came, then the cut, and one classified line. The upstream here is a raw TCP server, so that each
 * byte and each cut is where the test puts it.
 */
import net, { type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { startGateway, type TestGateway } from '../../../test/helpers/gateway.js'
import { BUFFERED_BODY_LIMIT } from '../src/upstream-exchange.js'

type Scenario = (socket: Socket, head: string) => void

interface RawUpstream {
  url: string
  address: string
  /** Sockets the gateway opened, and whether each was closed. */
  sockets: Socket[]
}

/** A raw HTTP/1.1 upstream: each request head (GET/HEAD, no body) is answered by `scenario`. */
async function rawUpstream (t: Test, scenario: Scenario): Promise<RawUpstream> {
  const state: RawUpstream = { url: '', address: '', sockets: [] }
  const server = net.createServer((socket) => {
    state.sockets.push(socket)
    let pending = ''
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1')
      let end: number
      while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
        const head = pending.slice(0, end)
        pending = pending.slice(end + 4)
        scenario(socket, head)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  state.url = `http://127.0.0.1:${port}`
  state.address = `127.0.0.1:${port}`
  t.teardown(async () => {
    for (const socket of state.sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return state
}

async function gatewayFor (t: Test, target: string, responseTimeout = 2000): Promise<TestGateway> {
  const gw = await startGateway([{ name: 'raw', prefix: '/raw', upstream: { targets: [target], responseTimeout } }])
  t.teardown(() => gw.app.close())
  return gw
}

interface RawAnswer {
  status: number
  headers: string[]
  body: Buffer
  /** How the response ended: complete (by its Content-Length or chunked framing), or cut. */
  cut: boolean
}

/**
 * One request on a raw client socket, read until the response's framing says it is complete or the
 * gateway closes the connection (a response without Content-Length is chunked on this hop).
 */
async function rawGet (gw: TestGateway, path: string, method = 'GET', leaveAfterMs?: number): Promise<RawAnswer> {
  const { port } = new URL(gw.url)
  const socket = net.connect(Number(port), '127.0.0.1')
  socket.write(`${method} ${path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n`)
  if (leaveAfterMs !== undefined) setTimeout(() => socket.destroy(), leaveAfterMs)
  const chunks: Buffer[] = []
  await new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('close', () => resolve())
    socket.on('error', () => {})
  })
  const raw = Buffer.concat(chunks)
  const split = raw.indexOf('\r\n\r\n')
  if (split === -1) return { status: 0, headers: [], body: Buffer.alloc(0), cut: true }
  const lines = raw.subarray(0, split).toString('latin1').split('\r\n')
  const status = Number(lines[0].split(' ')[1])
  const headers = lines.slice(1)
  let body = raw.subarray(split + 4)
  const length = headers.find((h) => h.toLowerCase().startsWith('content-length:'))
  let cut: boolean
  if (method === 'HEAD') cut = false
  else if (length !== undefined) cut = body.length < Number(length.split(':')[1])
  else {
    // De-chunk.
    const parts: Buffer[] = []
    let rest = body
    cut = true
    for (;;) {
      const eol = rest.indexOf('\r\n')
      if (eol === -1) break
      const size = parseInt(rest.subarray(0, eol).toString('latin1'), 16)
      if (size === 0) { cut = false; break }
      if (rest.length < eol + 2 + size) { parts.push(rest.subarray(eol + 2)); break }
      parts.push(rest.subarray(eol + 2, eol + 2 + size))
      rest = rest.subarray(eol + 4 + size)
    }
    body = Buffer.concat(parts)
  }
  return { status, headers, body, cut }
}

function header (answer: RawAnswer, name: string): string[] {
  return answer.headers.filter((h) => h.toLowerCase().startsWith(name + ':')).map((h) => h.slice(name.length + 1).trim())
}

function bodyOf (size: number): Buffer {
  const body = Buffer.alloc(size)
  for (let i = 0; i < size; i++) body[i] = 97 + (i % 26)
  return body
}

const SMALL = bodyOf(300)
const LARGE = bodyOf(BUFFERED_BODY_LIMIT * 4)

const headLines = [
  'content-type: application/json',
  'set-cookie: a=1',
  'set-cookie: b=2',
  'x-custom: kept',
  'connection: keep-alive, x-hop',
  'x-hop: for this hop only',
  'keep-alive: timeout=5'
]

t.test('held, streamed or chunked, the client gets the same bytes and headers', async (t) => {
  const shapes: Record<string, (socket: Socket, method: string) => void> = {
    'small, declared (held)': (socket, method) => {
      socket.write(['HTTP/1.1 200 OK', ...headLines, `content-length: ${SMALL.length}`, '', ''].join('\r\n'))
      if (method !== 'HEAD') socket.write(SMALL)
    },
    'large, declared (streamed)': (socket, method) => {
      socket.write(['HTTP/1.1 200 OK', ...headLines, `content-length: ${LARGE.length}`, '', ''].join('\r\n'))
      if (method !== 'HEAD') socket.write(LARGE)
    },
    'small, chunked (streamed)': (socket, method) => {
      socket.write(['HTTP/1.1 200 OK', ...headLines, 'transfer-encoding: chunked', '', ''].join('\r\n'))
      if (method !== 'HEAD') socket.write(`${SMALL.length.toString(16)}\r\n${SMALL.toString('latin1')}\r\n0\r\n\r\n`)
      else socket.write('0\r\n\r\n')
    }
  }
  for (const [name, shape] of Object.entries(shapes)) {
    const up = await rawUpstream(t, (socket, head) => shape(socket, head.split(' ')[0]))
    const gw = await gatewayFor(t, up.url)
    const answer = await rawGet(gw, '/raw/x')
    const expected = name.startsWith('large') ? LARGE : SMALL
    t.equal(answer.status, 200, name)
    t.notOk(answer.cut, `${name}: complete`)
    t.ok(answer.body.equals(expected), `${name}: the same ${expected.length} bytes`)
    t.same(header(answer, 'set-cookie'), ['a=1', 'b=2'], `${name}: repeated headers stay repeated`)
    t.same(header(answer, 'x-custom'), ['kept'], name)
    t.same(header(answer, 'content-type'), ['application/json'], name)
    t.same([...header(answer, 'x-hop'), ...header(answer, 'keep-alive')], [], `${name}: the upstream hop's headers stay there`)
    const head = await rawGet(gw, '/raw/x', 'HEAD')
    t.equal(head.status, 200, `${name}: HEAD`)
    if (!name.includes('chunked')) t.same(header(head, 'content-length'), [String(expected.length)], `${name}: HEAD keeps the declared length`)
    const lines = await gw.log.waitFor(2)
    t.match(lines[0], { status: 200, upstream_status: 200, response_source: 'upstream' }, name)
    t.equal(lines[0].response_flag, undefined, name)
    t.equal(lines[0].response_truncated, undefined, name)
  }
})

t.test('an upstream that fails part way through a body: the status and bytes that came, then the cut, held or streamed', async (t) => {
  const cases = [
    { name: 'held body, reset', length: `content-length: ${SMALL.length}`, end: (s: Socket) => s.resetAndDestroy(), flag: 'URR' },
    { name: 'held body, closed', length: `content-length: ${SMALL.length}`, end: (s: Socket) => s.end(), flag: 'URR' },
    { name: 'streamed body, reset', length: `content-length: ${LARGE.length}`, end: (s: Socket) => s.resetAndDestroy(), flag: 'URR' }
  ]
  for (const c of cases) {
    const up = await rawUpstream(t, (socket) => {
      socket.write(['HTTP/1.1 200 OK', 'content-type: text/plain', c.length, '', ''].join('\r\n'))
      socket.write(SMALL.subarray(0, 100))
      setTimeout(() => c.end(socket), 100)
    })
    const gw = await gatewayFor(t, up.url)
    const answer = await rawGet(gw, '/raw/x')
    t.equal(answer.status, 200, `${c.name}: the upstream's status`)
    t.ok(answer.cut, `${c.name}: the client sees a cut body`)
    t.ok(answer.body.equals(SMALL.subarray(0, 100)), `${c.name}: with the 100 bytes that came`)
    const [line] = await gw.log.waitFor(1)
    t.match(line, { status: 200, response_flag: c.flag, response_truncated: true, upstream_status: 200, error_target: up.address }, c.name)
  }
})

t.test('a held response whose upstream stops after the head: 502, as before any byte of body', async (t) => {
  const up = await rawUpstream(t, (socket) => {
    socket.write(['HTTP/1.1 200 OK', 'content-type: text/plain', `content-length: ${SMALL.length}`, '', ''].join('\r\n'))
    setTimeout(() => socket.resetAndDestroy(), 100)
  })
  const gw = await gatewayFor(t, up.url)
  const answer = await rawGet(gw, '/raw/x')
  t.equal(answer.status, 502)
  t.match(JSON.parse(answer.body.toString()), { statusCode: 502, error: 'Bad Gateway' }, "the gateway's own error body")
  const [line] = await gw.log.waitFor(1)
  t.match(line, { status: 502, response_flag: 'URR', upstream_status: 200, error_target: up.address })
  t.equal(line.response_truncated, undefined)
})

t.test('a held body that stalls is URT body_timeout after the status', async (t) => {
  const up = await rawUpstream(t, (socket) => {
    socket.write(['HTTP/1.1 200 OK', 'content-type: text/plain', `content-length: ${SMALL.length}`, '', ''].join('\r\n'))
    socket.write(SMALL.subarray(0, 10))
  })
  const gw = await gatewayFor(t, up.url, 300)
  const answer = await rawGet(gw, '/raw/x')
  t.equal(answer.status, 200)
  t.ok(answer.cut)
  t.ok(answer.body.equals(SMALL.subarray(0, 10)))
  const [line] = await gw.log.waitFor(1)
  t.match(line, { status: 200, response_flag: 'URT', response_code_details: 'body_timeout', response_truncated: true, upstream_status: 200 })
})

t.test('a client that leaves while its response is held: CDC, and the upstream request is stopped', async (t) => {
  const upstream = { closed: false }
  const up = await rawUpstream(t, (socket) => {
    socket.write(['HTTP/1.1 200 OK', 'content-type: text/plain', `content-length: ${SMALL.length}`, '', ''].join('\r\n'))
    socket.write(SMALL.subarray(0, 10))
    socket.on('close', () => { upstream.closed = true })
  })
  const gw = await gatewayFor(t, up.url)
  const answer = await rawGet(gw, '/raw/x', 'GET', 150)
  t.equal(answer.status, 0, 'nothing reached the client: the response was held')
  const [line] = await gw.log.waitFor(1)
  t.match(line, { status: 499, response_flag: 'CDC' })
  for (let i = 0; i < 50 && !upstream.closed; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.ok(upstream.closed, "the gateway closed the upstream's connection instead of waiting for the rest")
})

t.test('a large body streams with backpressure: a slow client still gets every byte', async (t) => {
  const big = bodyOf(8 * 1024 * 1024)
  const up = await rawUpstream(t, (socket) => {
    socket.write(['HTTP/1.1 200 OK', 'content-type: application/octet-stream', `content-length: ${big.length}`, '', ''].join('\r\n'))
    socket.write(big)
  })
  const gw = await gatewayFor(t, up.url)
  const { port } = new URL(gw.url)
  const socket = net.connect(Number(port), '127.0.0.1')
  socket.write('GET /raw/big HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n')
  socket.pause()
  // The client reads nothing for a while: the gateway's writes back up and it stops reading the
  // upstream, then resumes it when the client reads again.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.resume()
  await new Promise((resolve) => socket.on('close', resolve))
  const raw = Buffer.concat(chunks)
  const body = raw.subarray(raw.indexOf('\r\n\r\n') + 4)
  t.ok(body.equals(big), 'all 8 MiB, in order')
})

t.test('a proxied response is not awaited as a thenable: no more listeners on it than on a plain route', async (t) => {
  // A route handler that returns the reply has Fastify await it (reply.then), which hangs
  // end-of-stream listeners on every response: ~7% of the proxy's CPU per request (BENCHMARKS.md).
  const upstream = await rawUpstream(t, (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${SMALL.length}\r\n\r\n`)
    socket.write(SMALL)
  })
  const { default: Fastify } = await import('fastify')
  const { default: core } = await import('@faultline/core')
  const { default: proxy } = await import('@faultline/proxy')
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(core)
  await app.register(proxy, { name: 'raw', prefix: '/raw', upstream: { targets: [upstream.url] } })
  app.get('/plain', (_request, reply) => { reply.type('text/plain').send(SMALL) })
  const listeners: Record<string, number[]> = {}
  app.addHook('onSend', async (request, reply) => {
    const res = reply.raw
    const counts = ['finish', 'close', 'error', 'prefinish', 'end'].map((event) => res.listenerCount(event))
    // Counted once the response is under way: the handler has returned by then.
    setImmediate(() => { listeners[request.url] = counts })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  for (const path of ['/plain', '/raw/x']) {
    const res = await fetch(base + path)
    t.equal(res.status, 200, path)
    t.same(Buffer.from(await res.arrayBuffer()), SMALL, path)
  }
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(listeners['/plain'] !== undefined && listeners['/raw/x'] !== undefined, 'both responses were counted')
  // The core listens for 'close' on proxied responses (CDC); the rest must match a plain route.
  t.same(listeners['/raw/x'].slice(0, 1).concat(listeners['/raw/x'].slice(2)), listeners['/plain'].slice(0, 1).concat(listeners['/plain'].slice(2)), 'finish, error, prefinish and end listeners as on a plain route')
})
