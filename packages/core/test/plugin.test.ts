import { once } from 'node:events'
import net from 'node:net'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import core, { clientErrorHandler, FaultlineError, frameworkErrors, reportFailure, type FaultlineCoreOptions, type FaultlineRecord } from '@faultline/core'

interface Harness {
  app: FastifyInstance
  records: FaultlineRecord[]
  appLog: string[]
}

async function build (t: Test, options: FaultlineCoreOptions = {}, routes?: (app: FastifyInstance) => void): Promise<Harness> {
  const appLog: string[] = []
  const app = Fastify({
    logger: { level: 'error', stream: { write: (line: string) => { appLog.push(line) } } },
    logController: new LogController({ disableRequestLogging: true })
  })
  const records: FaultlineRecord[] = []
  await app.register(core, options)
  app.faultline.addSink((record) => { records.push(record) })
  routes?.(app)
  t.teardown(() => app.close())
  await app.ready()
  return { app, records, appLog }
}

async function settle (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
}

t.test('a FaultlineError becomes the contract error reply, flag hidden by default', async (t) => {
  const { app, records } = await build(t, {}, (app) => {
    app.get('/x', async () => { throw new FaultlineError('UCF', { target: '10.0.0.1:443', cause: new Error('connect ECONNREFUSED 10.0.0.1:443') }) })
  })
  const res = await app.inject('/x')
  await settle()
  t.equal(res.statusCode, 502)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['error', 'message', 'request_id', 'statusCode'])
  t.equal(body.error, 'Bad Gateway')
  t.equal(body.message, 'Upstream connection refused')
  t.equal(body.request_id, res.headers['x-request-id'])
  t.equal(res.headers['x-faultline-flag'], undefined)
  t.notMatch(res.body, /ECONNREFUSED|10\.0\.0\.1/, 'no internal detail reaches the client')
  t.equal(records.length, 1)
  t.match(records[0], {
    status: 502,
    response_flag: 'UCF',
    response_code_details: 'connection_refused',
    error_category: 'upstream',
    error_source: 'UpstreamProxy',
    error_target: '10.0.0.1:443',
    response_source: 'gateway',
    route: '/x',
    method: 'GET',
    path: '/x'
  })
})

t.test('exposeFlag adds the header and the body code; a route can override it', async (t) => {
  const { app } = await build(t, { exposeFlag: true }, (app) => {
    app.get('/shown', async () => { throw new FaultlineError('URT') })
    app.get('/hidden', { config: { exposeFlag: false } }, async () => { throw new FaultlineError('URT') })
  })
  const shown = await app.inject('/shown')
  t.equal(shown.statusCode, 504)
  t.equal(shown.headers['x-faultline-flag'], 'URT')
  t.equal(shown.json().code, 'URT')
  const hidden = await app.inject('/hidden')
  t.equal(hidden.headers['x-faultline-flag'], undefined)
  t.equal(hidden.json().code, undefined)
})

t.test('an unexpected error is GIE: fixed message for the client, stack in the app log', async (t) => {
  const { app, records, appLog } = await build(t, {}, (app) => {
    app.get('/boom', async function boomHandler () { throw new Error('db password is hunter2') })
  })
  const res = await app.inject('/boom')
  await settle()
  t.equal(res.statusCode, 500)
  t.equal(res.json().message, 'Internal gateway error')
  t.notMatch(res.body, /hunter2|at boomHandler|stack/)
  t.match(records[0], { response_flag: 'GIE', response_code_details: 'gateway_internal_error', error_category: 'gateway', status: 500 })
  const logged = appLog.map((l) => JSON.parse(l)).find((l) => l.msg === 'faultline: unexpected error')
  t.ok(logged, 'the error is logged to the application log')
  t.equal(logged.request_id, records[0].request_id)
  t.match(logged.err.stack, /boomHandler|hunter2/)
})

t.test('an unknown path is NRF from the not-found handler', async (t) => {
  const { app, records } = await build(t)
  const res = await app.inject('/nothing/here?secret=1')
  await settle()
  t.equal(res.statusCode, 404)
  t.equal(res.json().message, 'No API matches this path')
  t.match(records[0], { response_flag: 'NRF', error_source: 'Router', status: 404, path: '/nothing/here' })
})

t.test('request ids: a safe incoming id is honoured and echoed, an unsafe one replaced', async (t) => {
  const { app, records } = await build(t, {}, (app) => { app.get('/', async () => 'ok') })
  const honoured = await app.inject({ url: '/', headers: { 'x-request-id': 'abc-123' } })
  t.equal(honoured.headers['x-request-id'], 'abc-123')
  const unsafe = await app.inject({ url: '/', headers: { 'x-request-id': 'a b\n{"level":60}' } })
  t.match(unsafe.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  const long = await app.inject({ url: '/', headers: { 'x-request-id': 'x'.repeat(200) } })
  t.match(long.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  await settle()
  t.same(records.map((r) => r.request_id), ['abc-123', unsafe.headers['x-request-id'], long.headers['x-request-id']])
})

t.test('trustRequestId: false ignores the incoming id', async (t) => {
  const { app } = await build(t, { trustRequestId: false }, (app) => { app.get('/', async () => 'ok') })
  const res = await app.inject({ url: '/', headers: { 'x-request-id': 'abc-123' } })
  t.not(res.headers['x-request-id'], 'abc-123')
})

t.test("Fastify's own request errors get their flags", async (t) => {
  const { app, records } = await build(t, {}, (app) => {
    app.post('/json', { bodyLimit: 64 }, async (request) => request.body)
    app.post('/schema', {
      schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } }
    }, async (request) => request.body)
  })
  const bad = await app.inject({ method: 'POST', url: '/json', headers: { 'content-type': 'application/json' }, payload: '{"a":' })
  const big = await app.inject({ method: 'POST', url: '/json', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ a: 'x'.repeat(100) }) })
  const media = await app.inject({ method: 'POST', url: '/json', headers: { 'content-type': 'text/xml' }, payload: '<a/>' })
  const schema = await app.inject({ method: 'POST', url: '/schema', payload: { other: 1 } })
  await settle()
  t.same([bad.statusCode, big.statusCode, media.statusCode, schema.statusCode], [400, 413, 415, 400])
  t.same(records.map((r) => [r.response_flag, r.response_code_details]), [
    ['BIV', 'body_invalid'],
    ['BTL', 'body_too_large'],
    ['UMT', 'unsupported_media_type'],
    ['BIV', 'schema_validation_failed']
  ])
  t.equal(media.json().message, 'Unsupported media type')
})

t.test('an error status sent without an error is still flagged', async (t) => {
  const { app, records } = await build(t, {}, (app) => {
    app.get('/gone', async (_req, reply) => reply.code(404).send({ nope: true }))
    app.get('/teapot', async (_req, reply) => reply.code(418).send('short and stout'))
    app.get('/fine', async (_req, reply) => reply.code(201).send('made'))
  })
  await app.inject('/gone')
  await app.inject('/teapot')
  await app.inject('/fine')
  await settle()
  t.same(records.map((r) => [r.status, r.response_flag, r.response_code_details]), [
    [404, 'NRF', 'no_route'],
    [418, 'GIE', 'unclassified_response'],
    [201, undefined, undefined]
  ])
})

t.test('reportFailure: the first boundary that failed keeps the flag', async (t) => {
  const { app, records } = await build(t, {}, (app) => {
    app.get('/', async (_req, reply) => {
      t.equal(reportFailure(reply, 'RLE', { target: '127.0.0.1:6379', source: 'Quota' }), true)
      t.equal(reportFailure(reply, 'UCF'), false)
      t.throws(() => reportFailure(reply, 'NOPE'), /unknown Faultline flag/)
      throw new FaultlineError('GIE')
    })
  })
  const res = await app.inject('/')
  await settle()
  t.equal(res.statusCode, 503, 'the status of the recorded flag is sent')
  t.match(records[0], { response_flag: 'RLE', error_source: 'Quota', error_target: '127.0.0.1:6379', error_category: 'rate_limit' })
})

t.test('a failing sink never breaks the response, and each record is emitted once', async (t) => {
  const { app, records, appLog } = await build(t, {}, (app) => { app.get('/', async () => 'ok') })
  app.faultline.addSink(() => { throw new Error('sink down') })
  const res = await app.inject('/')
  await settle()
  t.equal(res.statusCode, 200)
  t.equal(records.length, 1)
  t.ok(appLog.some((l) => l.includes('a record sink failed')))
})

t.test('options are validated at registration', async (t) => {
  await t.rejects(async () => { await Fastify().register(core, { exposeFlag: 'yes' as unknown as boolean }).ready() }, /option "exposeFlag" must be a boolean, got "yes"/)
  await t.rejects(async () => { await Fastify().register(core, { requestIdHeader: 'x y' }).ready() }, /option "requestIdHeader" must be a header name/)
})

async function listen (t: Test, app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as net.AddressInfo).port
}

/** Sends raw bytes; returns what came back when the server closed, or after `waitMs` if given. */
async function rawExchange (port: number, data: string, waitMs?: number): Promise<string> {
  const socket = net.connect(port, '127.0.0.1')
  socket.write(data)
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  const timer = waitMs === undefined ? undefined : setTimeout(() => socket.destroy(), waitMs)
  await once(socket, 'close')
  clearTimeout(timer)
  return Buffer.concat(chunks).toString('latin1')
}

t.test('a client that goes away before the response is CDC 499', async (t) => {
  let release: () => void = () => {}
  const { app, records } = await build(t, {}, (app) => {
    app.get('/slow', async () => {
      await new Promise<void>((resolve) => { release = resolve })
      return 'late'
    })
  })
  const port = await listen(t, app)
  const socket = net.connect(port, '127.0.0.1')
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  while (records.length === 0 && socket.readyState !== 'open') await once(socket, 'connect')
  await new Promise((resolve) => setTimeout(resolve, 50))
  socket.destroy()
  for (let i = 0; i < 100 && records.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  release()
  t.equal(records.length, 1)
  t.match(records[0], { response_flag: 'CDC', response_code_details: 'client_disconnected', error_source: 'Client', status: 499 })
})

t.test('HTTP-parser errors never reach a hook but are classified and emitted', async (t) => {
  const { app, records } = await build(t, {}, (app) => { app.post('/', async () => 'ok') })
  const port = await listen(t, app)
  const cases: Array<[string, string, string, number]> = [
    ['POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 'IHD', 'invalid_content_length', 400],
    ['POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc', 'IHD', 'duplicate_content_length', 400],
    ['POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'IHD', 'content_length_with_transfer_encoding', 400],
    ['G@T /d HTTP/1.1\r\nHost: x\r\n\r\n', 'IHD', 'invalid_method', 400],
    [`GET /e HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`, 'HTL', 'headers_too_large', 431]
  ]
  for (const [request, flag, details, status] of cases) {
    const before = records.length
    const answer = await rawExchange(port, request)
    t.match(answer, new RegExp(`^HTTP/1.1 ${status} `), `${details}: client gets ${status}`)
    for (let i = 0; i < 50 && records.length === before; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    t.match(records[before], { response_flag: flag, response_code_details: details, status }, details)
    t.match(records[before].request_id, /^[0-9a-f-]{36}$/)
  }
  t.equal(records[0].path, '/a', 'the request line is kept when readable')
})

t.test("with the core's clientErrorHandler, parser errors get the contract body and the logged request id", async (t) => {
  const records: FaultlineRecord[] = []
  const app = Fastify({ clientErrorHandler })
  await app.register(core)
  app.faultline.addSink((record) => { records.push(record) })
  app.post('/', async () => 'ok')
  t.teardown(() => app.close())
  const port = await listen(t, app)
  const answer = await rawExchange(port, 'POST /pay HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
  for (let i = 0; i < 50 && records.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const [head, body] = answer.split('\r\n\r\n')
  t.match(head, /^HTTP\/1.1 400 Bad Request\r\n/)
  t.match(head, /\r\nConnection: close/i)
  const parsed = JSON.parse(body)
  t.same(Object.keys(parsed).sort(), ['error', 'message', 'request_id', 'statusCode'])
  t.equal(parsed.message, 'The request is malformed')
  t.equal(parsed.request_id, records[0].request_id, 'the client can quote the id of the logged line')
  t.match(head, new RegExp(`x-request-id: ${parsed.request_id}`))
  t.match(records[0], { response_flag: 'IHD', response_code_details: 'content_length_with_transfer_encoding', status: 400, path: '/pay' })
  const overflow = await rawExchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`)
  t.match(overflow, /^HTTP\/1.1 431 Request Header Fields Too Large\r\n/)
  t.match(JSON.parse(overflow.split('\r\n\r\n')[1]), { statusCode: 431, message: 'Request header fields too large' })
})

t.test('a client trickling on after its 408 is answered and logged once', async (t) => {
  const records: FaultlineRecord[] = []
  const app = Fastify({ clientErrorHandler, http: { requestTimeout: 300, connectionsCheckingInterval: 50 } })
  await app.register(core)
  app.faultline.addSink((record) => { records.push(record) })
  t.teardown(() => app.close())
  const port = await listen(t, app)
  const socket = net.connect(port, '127.0.0.1')
  let answer = ''
  socket.on('data', (chunk) => { answer += String(chunk) })
  socket.on('error', () => {})
  for (const ch of 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: abcdefghij') {
    if (socket.destroyed) break
    socket.write(ch)
    await new Promise((resolve) => setTimeout(resolve, 60))
  }
  socket.destroy()
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(answer, /^HTTP\/1.1 408 Request Timeout\r\n/)
  t.equal(answer.match(/HTTP\/1\.1/g)?.length, 1, 'one answer')
  t.equal(records.length, 1, 'one record')
  t.match(records[0], { response_flag: 'RTO', status: 408 })
})

t.test('a client that closes its side mid-head or mid-body is CDC 499 and gets no answer, not IHD', async (t) => {
  const records: FaultlineRecord[] = []
  const app = Fastify({ clientErrorHandler })
  await app.register(core)
  app.faultline.addSink((record) => { records.push(record) })
  app.post('/up', async () => 'ok')
  t.teardown(() => app.close())
  const port = await listen(t, app)
  const cases = [
    ['mid-head', 'GET /x HTTP/1.1\r\nHost: x\r\nX-Half', '-'],
    ['mid-body', 'POST /up HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly ten..', '/up']
  ]
  for (const [name, partial, path] of cases) {
    const before = records.length
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    let answer = ''
    socket.on('data', (chunk) => { answer += String(chunk) })
    await once(socket, 'connect')
    socket.write(partial)
    await new Promise((resolve) => setTimeout(resolve, 50))
    socket.end() // Node's parser reports the early end as HPE_INVALID_EOF_STATE
    await once(socket, 'close')
    for (let i = 0; i < 50 && records.length === before; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    await new Promise((resolve) => setTimeout(resolve, 50))
    t.equal(answer, '', `${name}: nothing is sent (the socket could still read)`)
    t.equal(records.length, before + 1, `${name}: one record`)
    t.match(records[before], { response_flag: 'CDC', response_code_details: 'client_disconnected', error_source: 'Client', status: 499, path }, name)
  }
})

t.test('frameworkErrors: a URL Fastify cannot decode is IHD invalid_path with a record, not an echo', async (t) => {
  const records: FaultlineRecord[] = []
  const app = Fastify({ frameworkErrors })
  await app.register(core)
  app.faultline.addSink((record) => { records.push(record) })
  app.get('/api/*', async () => 'ok')
  t.teardown(() => app.close())
  const port = await listen(t, app)
  const answer = await rawExchange(port, 'GET /api/%c0%ae%c0%ae/admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  for (let i = 0; i < 50 && records.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const [head, body] = answer.split('\r\n\r\n')
  t.match(head, /^HTTP\/1.1 400 Bad Request\r\n/)
  t.notMatch(body, /%c0|admin/, 'the path is not echoed back')
  const parsed = JSON.parse(body)
  t.same(parsed, { statusCode: 400, error: 'Bad Request', message: 'The request is malformed', request_id: parsed.request_id })
  t.match(head, new RegExp(`x-request-id: ${parsed.request_id}`, 'i'))
  t.equal(records.length, 1)
  t.match(records[0], { request_id: parsed.request_id, response_flag: 'IHD', response_code_details: 'invalid_path', status: 400 })
})

t.test('a rejection before the body is read closes the connection only when a body was declared', async (t) => {
  const app = Fastify()
  await app.register(core)
  app.addHook('onRequest', async () => { throw new FaultlineError('AMF') })
  app.all('/', async () => 'ok')
  t.teardown(() => app.close())
  const port = await listen(t, app)
  const bodiless = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 300)
  t.match(bodiless, /^HTTP\/1.1 401 /)
  t.notMatch(bodiless, /\r\nconnection: close/i, 'a bodiless request keeps its connection')
  const withBody = await rawExchange(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n', 300)
  t.match(withBody, /^HTTP\/1.1 401 /)
  t.match(withBody, /\r\nconnection: close/i, 'an unread body closes it')
})
