// End to end: a real gateway (buildGateway, access log to a file) answers requests to failing
// upstreams (refused port, 5xx, timeout), unknown routes, a wrong method and missing or wrong API
// keys; then `faultline report` (the real CLI, as a child process) summarises the file it wrote,
// in every format, with exact counts.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { flags } from '@faultline/core'
import { buildGateway } from '@faultline/gateway'
import { httpRequest } from '../../../test/helpers/http-client.js'
import { closedPort } from '../../../test/helpers/ports.js'

const execFileAsync = promisify(execFile)
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { bin: Record<string, string> }
const bin = fileURLToPath(new URL('../' + pkg.bin.faultline, import.meta.url))

type Line = Record<string, unknown>

async function listen (handler: http.RequestListener): Promise<{ url: string, close: () => void }> {
  const server = http.createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections()
      server.close()
    }
  }
}

const dir = t.testdir({})
const logFile = join(dir, 'access.log')

const ok = await listen((_req, res) => res.end('ok'))
const broken = await listen((_req, res) => {
  res.statusCode = 503
  res.end('down for maintenance')
})
const timers = new Set<NodeJS.Timeout>()
const slow = await listen((_req, res) => {
  const timer = setTimeout(() => res.end('late'), 5000)
  timers.add(timer)
  res.on('close', () => clearTimeout(timer))
})
const refusedPort = await closedPort()
t.teardown(() => {
  ok.close()
  broken.close()
  slow.close()
  for (const timer of timers) clearTimeout(timer)
})

const app = await buildGateway({
  server: { port: 0 },
  accessLog: { destination: logFile },
  apis: [
    { name: 'Orders', prefix: '/orders', methods: ['GET'], upstream: { targets: [ok.url] } },
    // refusedBackoff 0: each refused request dials, so each one has upstream time.
    { name: 'Payments', prefix: '/payments', upstream: { targets: [`http://127.0.0.1:${refusedPort}`], refusedBackoff: 0 } },
    { name: 'Billing', prefix: '/billing', upstream: { targets: [broken.url] } },
    { name: 'Search', prefix: '/search', upstream: { targets: [slow.url], responseTimeout: 150 } },
    { name: 'Accounts', prefix: '/accounts', auth: { type: 'apiKey', keys: [{ id: 'acme', key: 'sk_report_test_1' }] }, upstream: { targets: [ok.url] } }
  ]
}, { logger: false })
await app.listen({ host: '127.0.0.1', port: 0 })
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

// One request at a time, so that the order of the lines is the order below.
const plan: Array<[number, string, string, Record<string, string>?]> = [
  [4, 'GET', '/orders/1'],
  [1, 'POST', '/orders/1'],
  [3, 'GET', '/payments/1'],
  [2, 'GET', '/billing/1'],
  [1, 'GET', '/search/1'],
  [2, 'GET', '/accounts/1'],
  [1, 'GET', '/accounts/1', { 'x-api-key': 'sk_wrong_key_000' }],
  [2, 'GET', '/accounts/1', { 'x-api-key': 'sk_report_test_1' }],
  [2, 'GET', '/nowhere']
]
for (const [n, method, path, headers] of plan) {
  for (let i = 0; i < n; i++) await httpRequest(base + path, { method, headers: headers ?? {} })
}
await app.close()

// app.close() can resolve while the file destination's last asynchronous write is still in flight
// (access-log ends the stream without waiting for it): wait for every line to land.
const expectedLines = plan.reduce((n, [count]) => n + count, 0)
for (let waited = 0; readFileSync(logFile, 'utf8').split('\n').length <= expectedLines && waited < 3000; waited += 20) {
  await new Promise((resolve) => setTimeout(resolve, 20))
}
const lines = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line)
const times = lines.map((l) => l.time as number)
const refusedTarget = `127.0.0.1:${refusedPort}`
const slowTarget = new URL(slow.url).host
const brokenTarget = new URL(broken.url).host

function flagLines (flag: string): Line[] {
  return lines.filter((l) => l.response_flag === flag)
}
function iso (ms: unknown): string {
  return new Date(ms as number).toISOString()
}

interface Run { code: number | null, stdout: string, stderr: string }

async function report (...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [bin, 'report', ...args], { maxBuffer: 32 * 1024 * 1024 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number | null, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

t.test('the gateway wrote the lines the report is checked against', async (t) => {
  t.equal(lines.length, 18)
  const byFlag: Record<string, number> = {}
  for (const l of lines) {
    const flag = (l.response_flag as string | undefined) ?? '-'
    byFlag[flag] = (byFlag[flag] ?? 0) + 1
  }
  t.same(byFlag, { '-': 6, MNA: 1, UCF: 3, URS: 2, URT: 1, AMF: 2, AKI: 1, NRF: 2 })
  t.match(flagLines('UCF')[0], { api_name: 'Payments', error_target: refusedTarget, status: 502 })
  t.match(flagLines('URS')[0], { api_name: 'Billing', response_source: 'upstream', status: 503 })
  t.match(flagLines('URT')[0], { api_name: 'Search', error_target: slowTarget, status: 504 })
})

t.test('json: exact counts for every section', async (t) => {
  const r = await report('--format', 'json', logFile)
  t.equal(r.code, 0)
  t.equal(r.stderr, '', 'stderr is not a terminal: no progress bar')
  const s = JSON.parse(r.stdout)
  t.same(s.input, {
    inputs: [logFile], lines: 18, blank: 0, notAccess: 0, malformed: 0, samples: [], errors: [], accessLines: 18, filtered: 0
  })
  t.same(s.totals, { requests: 18, errors: 12, errorRate: 0.666667, status4xx: 6, status5xx: 6 })
  t.same(s.span, { first: iso(Math.min(...times)), last: iso(Math.max(...times)) })
  t.same(s.sides, [
    { side: 'upstream', errors: 6, share: 0.5 },
    { side: 'gateway', errors: 0, share: 0 },
    { side: 'client', errors: 6, share: 0.5 }
  ])
  t.same(s.categories, [
    { category: 'upstream', errors: 6, share: 0.5 },
    { category: 'auth', errors: 3, share: 0.25 },
    { category: 'client', errors: 3, share: 0.25 }
  ])
  t.same(s.responseSources, [
    { source: 'gateway', requests: 10, errors: 10 },
    { source: 'upstream', requests: 8, errors: 2 }
  ])
  t.same(s.errorSources.map((x: { source: string, errors: number }) => [x.source, x.errors]), [
    ['UpstreamProxy', 4], ['ApiKeyAuth', 3], ['Router', 3], ['Upstream', 2]
  ])

  t.same(s.flags.map((f: { code: string, count: number }) => [f.code, f.count]), [
    ['UCF', 3], ['AMF', 2], ['NRF', 2], ['URS', 2], ['AKI', 1], ['MNA', 1], ['URT', 1]
  ])
  const ucf = s.flags[0]
  t.match(ucf, {
    code: 'UCF',
    known: true,
    category: 'upstream',
    side: 'upstream',
    status: '502',
    errorSource: 'UpstreamProxy',
    firstSeen: iso(Math.min(...flagLines('UCF').map((l) => l.time as number))),
    lastSeen: iso(Math.max(...flagLines('UCF').map((l) => l.time as number))),
    apis: [{ key: 'Payments', count: 3 }],
    targets: [{ key: refusedTarget, count: 3 }],
    details: [{ key: 'connection_refused', count: 3 }],
    message: flags.UCF.message,
    check: flags.UCF.check
  })
  t.equal(ucf.latency.upstream.count, 3)
  const nrf = s.flags.find((f: { code: string }) => f.code === 'NRF')
  t.same(nrf.apis, [{ key: '(none)', count: 2 }], 'no API matched')
  t.equal(nrf.side, 'client')
  const urt = s.flags.find((f: { code: string }) => f.code === 'URT')
  t.ok(urt.latency.upstream.p50 >= 140, `URT waited on the upstream for the response timeout (${urt.latency.upstream.p50} ms)`)
  t.ok(urt.latency.gateway.p50 < urt.latency.upstream.p50)
  const amf = s.flags.find((f: { code: string }) => f.code === 'AMF')
  t.equal(amf.latency.upstream, null, 'refused at the gateway: no upstream time')

  t.same(s.targets.map((x: { target: string, errors: number }) => [x.target, x.errors]), [[refusedTarget, 3], [brokenTarget, 2], [slowTarget, 1]]
    .filter(([target]) => lines.some((l) => l.error_target === target)))
  t.same(s.apis.map((a: { api: string, requests: number, errors: number }) => [a.api, a.requests, a.errors]), [
    ['Accounts', 5, 3], ['Orders', 5, 1], ['Payments', 3, 3], ['(none)', 2, 2], ['Billing', 2, 2], ['Search', 1, 1]
  ])
  t.equal(s.okLatency.upstream.count, 6)

  const sum = (xs: number[]): number => xs.reduce((a, v) => a + v, 0)
  t.equal(sum(s.timeline.buckets.map((b: { requests: number }) => b.requests)), 18)
  t.same(s.timeline.categories, ['upstream', 'gateway', 'auth', 'rate_limit', 'client', 'other'])
  const perCategory = s.timeline.categories.map((_: string, i: number) => sum(s.timeline.buckets.map((b: { errors: number[] }) => b.errors[i])))
  t.same(perCategory, [6, 0, 3, 0, 3, 0])
  const month = iso(Math.min(...times)).slice(0, 7)
  t.same(s.months, [{
    month,
    requests: 18,
    errors: 12,
    errorRate: 0.666667,
    sides: { upstream: 6, gateway: 0, client: 6 },
    errorSources: s.errorSources.map((x: { source: string, errors: number }) => ({ key: x.source, count: x.errors })),
    categories: [{ key: 'upstream', count: 6 }, { key: 'auth', count: 3 }, { key: 'client', count: 3 }]
  }].filter(() => iso(Math.max(...times)).slice(0, 7) === month))
  t.equal(s.breakdown, null)
})

t.test('table: totals, who to page, flags with their first check, targets, latency, timeline', async (t) => {
  const r = await report(logFile)
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  const out = r.stdout
  t.match(out, /^Requests 18 {3}errors 12 \(66\.7%\) {3}5xx 6 {3}4xx 6$/m)
  t.match(out, /^Skipped {2}0 malformed, 0 not access lines, 0 outside the filters$/m)
  t.match(out, /^ {2}upstream +6 +50\.0% +█+$/m)
  t.match(out, /^ {2}gateway +0 +0\.0%$/m)
  t.match(out, /^ {2}client +6 +50\.0% +█+$/m)
  t.match(out, /^ {2}UCF +3 +25\.0% +upstream +502 /m)
  t.match(out, /^ {2}URS +2 +16\.7% +upstream +503 /m)
  t.match(out, /^ {2}AMF +2 +16\.7% +client +401 /m)
  t.match(out, /^ {2}NRF +2 +16\.7% +client +404 /m)
  t.match(out, /^ {2}URT +1 +8\.3% +upstream +504 /m)
  for (const code of ['UCF', 'URS', 'URT', 'AMF', 'AKI', 'NRF', 'MNA']) {
    t.ok(out.includes(`check: ${flags[code].check}`), `${code}'s first check`)
  }
  t.ok(out.includes(`apis: Payments 3   targets: ${refusedTarget} 3`))
  t.match(out, new RegExp(`^ {2}${refusedTarget.replace(/\./g, '\\.')} +3 +25\\.0% +UCF 3 `, 'm'))
  t.match(out, /^ {2}not errors \(6\) /m)
  t.match(out, /^ {2}URT \(1\) +\d/m)
  t.match(out, /^ERRORS PER MINUTE BY CATEGORY|^ERRORS PER 2 MINUTES BY CATEGORY/m)
  t.match(out, /^ {2}upstream {6}[▁▂▃▄▅▆▇█ ]+$/m)
  t.match(out, /^ {2}all errors {4}[▁▂▃▄▅▆▇█ ]+$/m)
  t.match(out, /^ {2}upstream ms {3}[▁▂▃▄▅▆▇█ ]+ {2}mean, highest [\d,.]+$/m)
})

t.test('md: the same counts as Markdown tables', async (t) => {
  const r = await report('--format', 'md', logFile)
  t.equal(r.code, 0)
  const out = r.stdout
  t.match(out, /^# Faultline report$/m)
  t.match(out, /^- Requests: \*\*18\*\*, errors: \*\*12\*\* \(66\.7%\), 5xx: 6, 4xx: 6$/m)
  t.match(out, /^\| upstream \| 6 \| 50\.0% \|$/m)
  t.match(out, /^\| client \| 6 \| 50\.0% \|$/m)
  t.match(out, /^\| \*\*UCF\*\* \| 3 \| 25\.0% \| upstream \| 502 \| /m)
  t.match(out, /^\| \*\*AKI\*\* \| 1 \| 8\.3% \| client \| 401 \| /m)
  t.ok(out.includes(`| Payments 3 | ${refusedTarget} 3 |`), 'APIs and targets of UCF')
  t.match(out, /^\| gateway \| 10 \| 10 \|$/m)
  t.match(out, /^\| upstream \| 8 \| 2 \|$/m)
})

/** RFC 4180 rows (quoted cells may hold commas and doubled quotes). */
function parseCsv (text: string): string[][] {
  const rows: string[][] = []
  for (const line of text.split('\r\n')) {
    if (line === '') continue
    const cells: string[] = []
    const re = /("(?:[^"]|"")*"|[^,]*)(,|$)/g
    let m
    while ((m = re.exec(line)) !== null) {
      const cell = m[1]
      cells.push(cell.startsWith('"') ? cell.slice(1, -1).replace(/""/g, '"') : cell)
      if (m[2] === '') break
    }
    rows.push(cells)
  }
  return rows
}

t.test('csv: one row per flag by default, and per API with --by api', async (t) => {
  const r = await report('--format', 'csv', logFile)
  t.equal(r.code, 0)
  const rows = parseCsv(r.stdout)
  t.same(rows[0], ['flag', 'requests', 'errors', 'error_rate', 'share_of_errors', 'status_5xx', 'first_seen', 'last_seen', 'flags', 'category', 'side', 'first_check'])
  t.same(rows.slice(1).map((row) => [row[0], row[2], row[5], row[9], row[10]]), [
    ['UCF', '3', '3', 'upstream', 'upstream'],
    ['AMF', '2', '0', 'auth', 'client'],
    ['NRF', '2', '0', 'client', 'client'],
    ['URS', '2', '2', 'upstream', 'upstream'],
    ['AKI', '1', '0', 'auth', 'client'],
    ['MNA', '1', '0', 'client', 'client'],
    ['URT', '1', '1', 'upstream', 'upstream']
  ])
  t.equal(rows[1][11], flags.UCF.check)
  t.equal(rows[1][6], iso(Math.min(...flagLines('UCF').map((l) => l.time as number))))

  const byApi = parseCsv((await report('--format', 'csv', '--by', 'api', logFile)).stdout)
  t.same(byApi.map((row) => row.slice(0, 4)), [
    ['api', 'requests', 'errors', 'error_rate'],
    ['Accounts', '5', '3', '0.6'],
    ['Orders', '5', '1', '0.2'],
    ['Payments', '3', '3', '1'],
    ['(none)', '2', '2', '1'],
    ['Billing', '2', '2', '1'],
    ['Search', '1', '1', '1']
  ])
})

t.test('html: one file with the KPIs, charts, flag table with hints; --out picks the format', async (t) => {
  const out = join(dir, 'report.html')
  const r = await report('--out', out, logFile)
  t.equal(r.code, 0)
  t.equal(r.stdout, '')
  const page = readFileSync(out, 'utf8')
  t.match(page, /^<!DOCTYPE html>/)
  t.match(page, /<div class="kpi" id="kpi-requests"><span>Requests<\/span><b>18<\/b><\/div>/)
  t.match(page, /<div class="kpi" id="kpi-errors"><span>Errors<\/span><b>12<\/b><\/div>/)
  t.match(page, /<div class="kpi" id="kpi-5xx"><span>5xx sent<\/span><b>6<\/b><\/div>/)
  t.equal(page.match(/<tr data-flag="/g)?.length, 7)
  t.match(page, /<tr data-flag="UCF">\s*<td class="nw"><span class="flag"[^>]*>UCF<\/span><\/td><td class="n">3<\/td><td class="n">25\.0%<\/td><td class="nw">upstream<\/td><td class="nw">502<\/td>/)
  t.ok(page.includes(flags.UCF.check.replace(/'/g, '&#39;').replace(/\(/g, '(')), 'the first check, escaped')
  t.ok((page.match(/<svg /g)?.length ?? 0) >= 3, 'timeline and breakdown charts')
  t.match(page, /<section id="timeline">/)
  t.notMatch(page, /<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'no script, nothing fetched')
  t.match(page, /<tr><td>gateway<\/td><td class="n">10<\/td><td class="n">10<\/td><\/tr>/)
})
