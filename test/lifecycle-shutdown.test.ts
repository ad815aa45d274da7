/**
 * SIGTERM under load, through the real command line (`faultline serve`): requests in flight when
 * the signal arrives finish and are logged with their status; requests that arrive afterwards are
 * either answered SHD (on a connection that was already open) or refused (new connections: the
 * listener is closed); the log file holds exactly one line per request that got an answer, and
 * the process exits 0 without having to cut anything.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http, { type ServerResponse } from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { Agent, request } from 'undici'

const bin = fileURLToPath(new URL('../packages/gateway/bin/faultline.js', import.meta.url))

const HELD = 170 // plain requests the upstream holds until the test lets them go
const STREAMED = 20 // responses whose headers went out before the signal, body after it
const PIPELINED = 10 // connections that send a second request after the signal
const REFUSED = 20 // new connections after the signal

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

async function until (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** Splits what a raw socket received into responses: status, headers (lower-cased), body. */
function parseResponses (raw: string): Array<{ status: number, headers: Record<string, string>, body: string }> {
  const out: Array<{ status: number, headers: Record<string, string>, body: string }> = []
  let rest = raw
  while (rest.startsWith('HTTP/1.1 ')) {
    const headEnd = rest.indexOf('\r\n\r\n')
    if (headEnd === -1) break
    const [statusLine, ...fields] = rest.slice(0, headEnd).split('\r\n')
    const headers: Record<string, string> = {}
    for (const field of fields) {
      const colon = field.indexOf(':')
      headers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim()
    }
    const length = Number(headers['content-length'] ?? 0)
    out.push({ status: Number(statusLine.split(' ')[1]), headers, body: rest.slice(headEnd + 4, headEnd + 4 + length) })
    rest = rest.slice(headEnd + 4 + length)
  }
  return out
}

t.test('SIGTERM with 200 requests in flight: they finish, late ones get SHD or are refused, one line each, exit 0', async (t) => {
  // The upstream holds every request until released; /stream sends its headers and a first chunk at once.
  const held = new Map<string, ServerResponse>()
  const upstream = http.createServer((req, res) => {
    req.resume()
    const id = String(req.headers['x-request-id'])
    if ((req.url ?? '').endsWith('/stream')) {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write(`first ${id};`)
    }
    held.set(id, res)
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    upstream.closeAllConnections()
    upstream.close()
  })

  const dir = mkdtempSync(join(tmpdir(), 'faultline-shutdown-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const logFile = join(dir, 'access.log')
  const configFile = join(dir, 'gateway.yaml')
  writeFileSync(configFile, [
    'server: { port: 0 }',
    `accessLog: { destination: ${JSON.stringify(logFile)} }`,
    'apis:',
    '  - name: Held',
    '    prefix: /api',
    `    upstream: { targets: ["http://127.0.0.1:${(upstream.address() as AddressInfo).port}"] }`,
    ''
  ].join('\n'))

  const child = spawn(process.execPath, [bin, 'serve', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => { stderr += chunk })
  await until('the listening line', () => /listening on http:\/\/127\.0\.0\.1:\d+\n/.test(stderr))
  const origin = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)?.[1] as string
  const port = Number(new URL(origin).port)

  // In flight: plain and streamed requests over keep-alive connections, and raw connections that
  // will pipeline a second request after the signal.
  const dispatcher = new Agent({ keepAliveTimeout: 30_000 })
  t.teardown(() => dispatcher.destroy())
  const streamedHeaders = new Set<string>()
  const inFlight = new Map<string, Promise<{ status: number, body: string } | Error>>()
  for (let i = 0; i < HELD + STREAMED; i++) {
    const id = i < HELD ? `held-${i}` : `streamed-${i}`
    const path = i < HELD ? '/api/hold' : '/api/stream'
    inFlight.set(id, request(origin + path, { dispatcher, headers: { 'x-request-id': id } }).then(async (res) => {
      streamedHeaders.add(id)
      return { status: res.statusCode, body: await res.body.text() }
    }, (err: Error) => err))
  }
  const pipelined = Array.from({ length: PIPELINED }, (_, i) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    let raw = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { raw += chunk })
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
    socket.write(`GET /api/hold HTTP/1.1\r\nHost: x\r\nx-request-id: piped-${i}\r\n\r\n`)
    return { socket, closed, raw: () => raw }
  })
  await until('the upstream to hold every request', () => held.size === HELD + STREAMED + PIPELINED)
  await until('the streamed headers to reach their clients', () => [...streamedHeaders].filter((id) => id.startsWith('streamed-')).length === STREAMED)

  child.kill('SIGTERM')
  await until('the drain to start', () => stderr.includes('SIGTERM received, draining'))
  // Once a bare connection is refused, the listener is closed for good. (A probe that still gets
  // in sends nothing: no request, no line.)
  let refusedProbe = false
  for (let i = 0; i < 200 && !refusedProbe; i++) {
    refusedProbe = await new Promise<boolean>((resolve) => {
      const probe = net.connect(port, '127.0.0.1')
      probe.on('connect', () => { probe.destroy(); resolve(false) })
      probe.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
    })
    if (!refusedProbe) await sleep(10)
  }
  t.ok(refusedProbe, 'the listener closed after the signal')

  // After the signal: a second request on each open connection, and brand-new connections.
  for (const [i, p] of pipelined.entries()) p.socket.write(`GET /api/late HTTP/1.1\r\nHost: x\r\nx-request-id: late-${i}\r\n\r\n`)
  const fresh = await Promise.all(Array.from({ length: REFUSED }, async (_, i) => {
    const agent = new Agent()
    try {
      const res = await request(origin + '/api/hold', { dispatcher: agent, headers: { 'x-request-id': `fresh-${i}` } })
      await res.body.dump()
      return String(res.statusCode)
    } catch (err) {
      return String((err as { code?: unknown }).code)
    } finally {
      await agent.close()
    }
  }))
  t.same(fresh, Array.from({ length: REFUSED }, () => 'ECONNREFUSED'), 'new connections after the signal are refused')

  // The upstream answers the held requests, a batch every 20 ms over about 300 ms.
  const releasing = setInterval(() => {
    let n = 0
    for (const [id, res] of held) {
      if (n++ === 15) break
      held.delete(id)
      res.end(`done ${id}`)
    }
  }, 20)
  t.teardown(() => clearInterval(releasing))

  const results = new Map<string, { status: number, body: string } | Error>()
  for (const [id, pending] of inFlight) results.set(id, await pending)
  const bad = [...results].filter(([id, r]) => r instanceof Error || r.status !== 200 ||
    r.body !== (id.startsWith('streamed-') ? `first ${id};done ${id}` : `done ${id}`))
  t.same(bad.map(([id, r]) => `${id}: ${r instanceof Error ? r.message : `${r.status} ${r.body}`}`), [], 'every in-flight request got its full 200 answer')

  for (const [i, p] of pipelined.entries()) {
    await p.closed
    const responses = parseResponses(p.raw())
    t.equal(responses.length, 2, `connection ${i}: two answers, then the gateway closed it`)
    t.match(responses[0], { status: 200, body: `done piped-${i}` }, 'first: the request in flight, answered in full')
    t.match(responses[1], { status: 503, headers: { connection: 'close', 'x-request-id': `late-${i}` } }, 'second: SHD 503 with Connection: close')
    t.match(JSON.parse(responses[1].body), { statusCode: 503, message: 'The gateway is shutting down', request_id: `late-${i}` }, 'with the contract\'s error body')
  }

  t.equal(await exited, 0, 'the gateway exits 0')
  t.notMatch(stderr, /still in flight/, 'the drain finished by itself: nothing had to be cut')

  const lines = readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
  const answered = HELD + STREAMED + PIPELINED * 2
  t.equal(lines.length, answered, `one line per answered request (${answered}), none for the refused ones`)
  const byId = new Map(lines.map((l) => [l.request_id as string, l]))
  t.equal(byId.size, lines.length, 'no request id logged twice')
  const wrong: string[] = []
  for (const id of [...inFlight.keys(), ...pipelined.map((_, i) => `piped-${i}`)]) {
    const line = byId.get(id)
    if (line?.status !== 200 || line.response_flag !== undefined || line.response_truncated !== undefined || line.upstream_status !== 200) {
      wrong.push(`${id}: ${JSON.stringify(line)}`)
    }
  }
  t.same(wrong, [], 'every in-flight request is logged 200, unflagged and whole')
  for (let i = 0; i < PIPELINED; i++) {
    t.match(byId.get(`late-${i}`), { status: 503, response_flag: 'SHD', response_code_details: 'gateway_shutting_down', error_source: 'Gateway', path: '/api/late' }, `late-${i} is logged SHD`)
    t.notOk('upstream_addr' in (byId.get(`late-${i}`) ?? {}), 'a late request never reaches the upstream')
  }
  t.notOk([...byId.keys()].some((id) => id.startsWith('fresh-')), 'refused requests have no line')
})
