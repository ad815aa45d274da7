import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { mkdtemp, readFile, rename, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import pino from 'pino'
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

/** What pino's own `logger.info(fields, 'access')` writes for these fields, at this time. */
function pinoLine (fields: Record<string, unknown>, time: number): string {
  const out = new LogCapture()
  pino({ base: null, timestamp: () => `,"time":${time}` }, out).info(fields, 'access')
  return out.text
}

t.test("each line is byte for byte the line pino's logger writes for the same fields", async (t) => {
  const odd = 'quote " backslash \\ tab \t nul \u0000 del \u007f é ü 漢字 😀 \u2028 ' + 'x'.repeat(60)
  const out = new LogCapture()
  const app = Fastify()
  await app.register(core)
  await app.register(accessLog, { destination: out })
  app.get('/odd', { config: { apiName: 'a "quoted" api' } }, async (request, reply) => {
    const record = reply.faultline!
    record.consumer = odd
    record.upstream_latency = Number.NaN
    record.upstream_attempts = 2
    record.rate_limit_degraded = true
    return 'ok'
  })
  app.get('/lean', { config: { accessLog: { fields: ['status', 'consumer'] } } }, async (request) => {
    request.faultline!.consumer = 'short "q"'
    return 'ok'
  })
  app.get('/fail', async () => { throw new FaultlineError('TLE', { target: 'pay:443', fields: { tls_cert_expiry: '2026-01-01T00:00:00.000Z' } }) })
  t.teardown(() => app.close())
  await app.inject({ url: '/odd?x=1', headers: { 'user-agent': 'agent "x" \\ \u00e9' } })
  await app.inject('/lean')
  await app.inject({ method: 'POST', url: '/fail' })
  await app.inject('/missing/path')
  await app.close()
  const lines = out.text.split('\n').slice(0, -1)
  t.equal(lines.length, 4, 'one line per request, each ending in a newline')
  for (const text of lines) {
    const parsed = JSON.parse(text) as Record<string, unknown>
    const { level, time, msg, ...fields } = parsed
    t.equal(level, 30)
    t.equal(msg, 'access')
    t.equal(text + '\n', pinoLine(fields, time as number), `${fields.path as string}: same bytes as pino`)
  }
  const first = JSON.parse(lines[0]) as Record<string, unknown>
  t.equal(first.consumer, odd, 'strings survive escaping')
  t.equal(first.upstream_latency, null, 'a number JSON cannot hold is null, as pino writes it')
  t.equal(first.api_name, 'a "quoted" api')
  t.same(Object.keys(JSON.parse(lines[1]) as object), ['level', 'time', 'request_id', 'status', 'consumer', 'msg'], 'a route field list, in record order')
})

t.test('a field whose value changes from line to line is written anew each time (the serializer keeps only the previous one)', async (t) => {
  const { app, log } = await build(t, {}, (app) => {
    app.get('/c', async (request) => {
      const query = request.query as { who?: string, n?: string }
      if (query.who !== undefined) request.faultline!.consumer = query.who
      if (query.n !== undefined) request.faultline!.upstream_attempts = Number(query.n)
      return 'ok'
    })
  })
  const sequence = ['alice', 'alice', 'b "quoted"', 'alice', undefined, 'b "quoted"', '']
  for (const [i, who] of sequence.entries()) {
    const query = new URLSearchParams(who === undefined ? { n: String(i) } : { who, n: String(i) })
    await app.inject(`/c?${query.toString()}`)
  }
  const lines = await log.waitFor(sequence.length)
  t.same(lines.map((line) => line.consumer), sequence, 'each line has its own request\'s consumer, escaped where it must be')
  t.same(lines.map((line) => line.upstream_attempts), sequence.map((_, i) => i))
})

t.test('a destination that needs pino\'s metadata (pino.multistream) still gets every line', async (t) => {
  const debug = new LogCapture()
  const info = new LogCapture()
  const streams = pino.multistream([{ level: 'info', stream: info }, { level: 'error', stream: debug }])
  const { app } = await build(t, { destination: streams as unknown as AccessLogOptions['destination'], fields: ['status'] }, (app) => {
    app.get('/', async () => 'ok')
  })
  await app.inject('/')
  const [line] = await info.waitFor(1)
  t.same(Object.keys(line).sort(), ['level', 'msg', 'request_id', 'status', 'time'])
  t.equal(debug.lines.length, 0, 'multistream routed the line by its level')
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

/** Resolves with the file's lines once it holds `n` of them (lines are written within the flush interval). */
async function waitForLines (file: string, n: number, timeoutMs = 3000): Promise<string[]> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '')
    const lines = text.split('\n').filter((line) => line !== '')
    if (lines.length >= n || Date.now() > until) return lines
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

t.test('lines written just before the process exits reach the file, also on an uncaught exception', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'faultline-log-'))
  for (const how of ['exit', 'throw']) {
    const file = join(dir, `${how}.log`)
    const child = spawnSync(process.execPath, [fileURLToPath(new URL('./fixtures/exit-after-requests.mjs', import.meta.url)), file, how], { encoding: 'utf8', timeout: 20_000 })
    t.equal(child.status, how === 'exit' ? 0 : 1, `${how}: the process ended as it meant to`)
    const lines = (await readFile(file, 'utf8')).trim().split('\n')
    t.same(lines.map((line) => (JSON.parse(line) as { path: string, status: number }).status), [200, 200, 200], `${how}: all three lines written`)
  }
})

t.test('a file that cannot be opened fails the registration with the path and the reason', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'faultline-log-'))
  const notADir = join(dir, 'plain-file')
  await writeFile(notADir, 'x')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(core)
  await t.rejects(async () => { await app.register(accessLog, { destination: join(notADir, 'access.log') }) }, /cannot open the access-log file ".*plain-file\/access\.log": .*(ENOTDIR|EEXIST)/)
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
  await waitForLines(file, 1)
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

t.test('lines to a file are gathered into few writes, and reach it within milliseconds once traffic stops', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'faultline-log-'))
  const file = join(dir, 'access.log')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(core)
  await app.register(accessLog, { destination: file })
  app.get('/', async () => 'ok')
  await app.ready()
  // sonic-boom calls fs.write through the module object: count its writes to the file.
  const original = fs.write
  let writes = 0
  ;(fs as unknown as { write: (...args: unknown[]) => void }).write = function (this: unknown, ...args: unknown[]) {
    writes++
    return (original as (...a: unknown[]) => void).apply(this, args)
  }
  t.teardown(() => { fs.write = original })
  // One request every 2 ms: each line alone would find no write in flight and be written on its own.
  const n = 30
  for (let i = 0; i < n; i++) {
    await app.inject(`/?n=${i}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  const lines = await waitForLines(file, n, 1000)
  t.same(lines.map((line) => (JSON.parse(line) as { path: string, status: number }).status), Array(n).fill(200), 'every line whole, none lost')
  t.ok(writes <= n / 2, `${writes} writes for ${n} lines`)
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
