import { mkdtemp, readFile, rename } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import core, { FaultlineError, recordFields } from '@faultline/core'
import accessLog, { type AccessLogOptions } from '@faultline/access-log'
import { LogCapture } from '../../../test/helpers/log-capture.js'

async function build (t: Test, options: AccessLogOptions = {}, routes?: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, log: LogCapture }> {
  const log = new LogCapture()
  const app = Fastify()
  await app.register(core)
  await app.register(accessLog, { destination: log, ...options })
  routes?.(app)
  t.teardown(() => app.close())
  await app.ready()
  return { app, log }
}

t.test('one lean JSON line per request, with the contract fields', async (t) => {
  const { app, log } = await build(t, {}, (app) => {
    app.get('/items/:id', async () => ({ ok: true }))
  })
  await app.inject({ url: '/items/7?token=abc', headers: { 'user-agent': 'curl/8', 'x-request-id': 'req-1' } })
  const [line] = await log.waitFor(1)
  t.same(Object.keys(line).sort(), [
    'client_ip', 'gateway_latency', 'latency_total', 'level', 'method', 'msg', 'path', 'request_id',
    'response_source', 'route', 'status', 'time', 'user_agent'
  ].sort(), 'fields without a value are omitted, not null; no pid or hostname')
  t.match(line, {
    msg: 'access',
    level: 30,
    request_id: 'req-1',
    method: 'GET',
    path: '/items/7',
    route: '/items/:id',
    status: 200,
    response_source: 'gateway',
    user_agent: 'curl/8'
  })
  t.type(line.time, 'number')
  t.type(line.latency_total, 'number')
  t.equal(line.gateway_latency, line.latency_total)
  t.ok((String(line.latency_total).split('.')[1] ?? '').length <= 3, 'at most 3 decimals')
})

t.test('a flagged reply carries the classification fields', async (t) => {
  const { app, log } = await build(t, {}, (app) => {
    app.get('/', async () => { throw new FaultlineError('CBO', { target: 'pay:443', fields: { circuit_breaker_state: 'open' } }) })
  })
  await app.inject('/')
  const [line] = await log.waitFor(1)
  t.match(line, {
    status: 503,
    response_flag: 'CBO',
    response_code_details: 'circuit_breaker_open',
    error_category: 'upstream',
    error_source: 'CircuitBreaker',
    error_target: 'pay:443',
    circuit_breaker_state: 'open'
  })
})

t.test('the fields allow-list keeps time, level, msg and request_id', async (t) => {
  const { app, log } = await build(t, { fields: ['status', 'response_flag'] }, (app) => {
    app.get('/', async () => 'ok')
  })
  await app.inject('/')
  const [line] = await log.waitFor(1)
  t.same(Object.keys(line).sort(), ['level', 'msg', 'request_id', 'status', 'time'])
})

t.test("pino's own fields may be listed (as in a copied template) and are always written", async (t) => {
  const { app, log } = await build(t, { fields: ['time', 'level', 'msg', 'status'] }, (app) => {
    app.get('/', async () => 'ok')
  })
  await app.inject('/')
  const [line] = await log.waitFor(1)
  t.same(Object.keys(line).sort(), ['level', 'msg', 'request_id', 'status', 'time'])
})

t.test('routes switch logging off, or choose their own fields', async (t) => {
  const { app, log } = await build(t, {}, (app) => {
    app.get('/health', { config: { accessLog: false } }, async () => 'ok')
    app.get('/lean', { config: { accessLog: { fields: ['status'] } } }, async () => 'ok')
    app.get('/full', async () => 'ok')
  })
  await app.inject('/health')
  await app.inject('/lean')
  await app.inject('/full')
  const lines = await log.waitFor(2)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(lines.length, 2, 'no line for /health')
  t.same(Object.keys(lines[0]).sort(), ['level', 'msg', 'request_id', 'status', 'time'])
  t.equal(lines[1].path, '/full')
})

t.test('disabled globally, a route can switch it back on', async (t) => {
  const { app, log } = await build(t, { enabled: false }, (app) => {
    app.get('/quiet', async () => 'ok')
    app.get('/loud', { config: { accessLog: true } }, async () => 'ok')
  })
  await app.inject('/quiet')
  await app.inject('/loud')
  const lines = await log.waitFor(1)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(lines.length, 1)
  t.equal(lines[0].path, '/loud')
})

t.test('bad options fail at registration with the option and the value', async (t) => {
  await t.rejects(build(t, { fields: ['status', 'password'] }), /unknown field "password"/)
  await t.rejects(build(t, { enabled: 'yes' as unknown as boolean }), /option "enabled" must be a boolean, got "yes"/)
  await t.rejects(build(t, { sync: 1 as unknown as boolean }), /option "sync" must be a boolean, got 1/)
  await t.rejects(build(t, {}, (app) => { app.get('/', { config: { accessLog: 'on' as unknown as boolean } }, async () => 'ok') }), /config.accessLog must be a boolean or \{ fields \}/)
  t.ok(recordFields.includes('consumer'))
})

t.test('secrets never reach the line', async (t) => {
  const { app, log } = await build(t, {}, (app) => {
    app.get('/', async () => { throw new Error('failed for key sk_live_123') })
  })
  await app.inject({
    url: '/?api_key=sk_live_123',
    headers: { authorization: 'Bearer eyJsecret', cookie: 'session=s3cr3t', 'x-api-key': 'sk_live_123' }
  })
  await log.waitFor(1)
  const text = JSON.stringify(log.lines)
  t.notMatch(text, /eyJsecret|s3cr3t|sk_live_123/)
})

t.test('a file destination is appended to, reopened on SIGHUP, and flushed on close', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'faultline-log-'))
  const file = join(dir, 'access.log')
  const sighupListeners = process.listenerCount('SIGHUP')
  const app = Fastify()
  await app.register(core)
  await app.register(accessLog, { destination: file })
  app.get('/', async () => 'ok')
  await app.ready()
  await app.inject('/?n=1')
  await new Promise((resolve) => setTimeout(resolve, 100))
  await rename(file, file + '.1')
  process.kill(process.pid, 'SIGHUP')
  await new Promise((resolve) => setTimeout(resolve, 100))
  await app.inject('/?n=2')
  await app.inject('/?n=3')
  await app.close()
  const rotated = (await readFile(file + '.1', 'utf8')).trim().split('\n')
  const current = (await readFile(file, 'utf8')).trim().split('\n')
  t.equal(rotated.length, 1, 'the first line went to the rotated file')
  t.equal(current.length, 2, 'lines after SIGHUP go to the reopened file, flushed by close')
  t.equal(JSON.parse(current[0]).msg, 'access')
  t.equal(process.listenerCount('SIGHUP'), sighupListeners, 'the SIGHUP handler is removed on close')
})

t.test('close resolves with every line on disk, also while an asynchronous write is under way', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'faultline-log-'))
  const file = join(dir, 'access.log')
  const app = Fastify()
  await app.register(core)
  await app.register(accessLog, { destination: file })
  app.get('/', async () => 'ok')
  await app.ready()
  // Enough lines that SonicBoom is mid-write when close starts.
  const n = 3000
  await Promise.all(Array.from({ length: n }, async (_, i) => await app.inject(`/?n=${i}`)))
  await app.close()
  const lines = (await readFile(file, 'utf8')).trim().split('\n')
  t.equal(lines.length, n, 'no line lost at close')
})
