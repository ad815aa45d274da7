// `faultline report` input handling: malformed and foreign lines, gzip, stdin, long lines,
// --since/--until, --api, --by, bad options. In-process through main(), with real files.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { main } from '@faultline/gateway'
import {
  createLineParser, LINE_ACCESS, LINE_BLANK, LINE_MALFORMED, LINE_OTHER, LIMITS, MAX_LINE_BYTES, parseTime,
  type ReportSummary
} from '@faultline/gateway/report'
import { errorLine, okLine } from '../../../test/helpers/access-lines.js'

interface Run { code: number, stdout: string, stderr: string }

async function report (args: string[], stdin?: string | Buffer | Buffer[]): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await main(['report', ...args], {
    stdout: { write: (text: string) => { stdout += text } },
    stderr: { write: (text: string) => { stderr += text } },
    stdin: Readable.from(stdin === undefined ? [] : Array.isArray(stdin) ? stdin : [typeof stdin === 'string' ? Buffer.from(stdin) : stdin])
  })
  return { code, stdout, stderr }
}

async function summary (args: string[], stdin?: string | Buffer | Buffer[]): Promise<ReportSummary> {
  const r = await report(['--format', 'json', ...args], stdin)
  if (r.code !== 0) throw new Error(`report exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout) as ReportSummary
}

const T0 = Date.UTC(2026, 10, 23, 10, 0, 0)
const MIN = 60_000

t.test('malformed and foreign lines are counted with their positions, never fatal', async (t) => {
  const input = [
    okLine(T0),
    'not json at all',
    '{"level":30,"time":1795428966235,"msg":"acc',
    '[1,2,3]',
    '{"msg":"access","time":1795428966235}',
    '{"msg":"access","status":200}',
    '{"msg":"access","status":"200","time":1795428966235}',
    '',
    '   ',
    '{"level":30,"time":1795428966235,"msg":"faultline listening on http://127.0.0.1:8080"}',
    errorLine(T0 + 1000, 'UCF') + '\r',
    '{"msg":"access","status":200,"time":99999999999999999}'
  ].join('\n') + '\n'
  const dir = t.testdir({ 'access.log': input })
  const s = await summary([join(dir, 'access.log')])
  t.equal(s.input.lines, 10, 'non-blank lines')
  t.equal(s.input.blank, 2)
  t.equal(s.input.notAccess, 1)
  t.equal(s.input.malformed, 7)
  t.equal(s.input.accessLines, 2)
  t.same(s.input.samples, [
    { input: join(dir, 'access.log'), line: 2, problem: 'not JSON' },
    { input: join(dir, 'access.log'), line: 3, problem: 'not JSON' },
    { input: join(dir, 'access.log'), line: 4, problem: 'not a JSON object' },
    { input: join(dir, 'access.log'), line: 5, problem: 'no valid status' },
    { input: join(dir, 'access.log'), line: 6, problem: 'no valid time' }
  ])
  t.same(s.totals, { requests: 2, errors: 1, errorRate: 0.5, status4xx: 0, status5xx: 1 })
  t.equal(s.flags[0].code, 'UCF', 'the CRLF line was read')

  const text = await report([join(dir, 'access.log')])
  t.equal(text.code, 0)
  t.match(text.stdout, /^Skipped {2}7 malformed, 1 not access lines, 0 outside the filters$/m)
  t.match(text.stdout, /^MALFORMED LINES {2}\(7 in all; the first 5\)$/m)
  t.ok(text.stdout.includes(`${join(dir, 'access.log')}:2  not JSON`))
})

t.test('the line parser: the fast path and JSON.parse give the same fields', async (t) => {
  const parser = createLineParser()
  const line = errorLine(T0, 'URT', { api_name: 'Search', error_target: 'search.internal:443', upstream_latency: 5000.25, gateway_latency: 0.75, latency_total: 5001 })
  t.equal(parser.parse(line), LINE_ACCESS)
  t.equal(parser.fastLines, 1, 'the access log\'s own shape takes the fast path')
  const fast = { ...parser.fields }
  t.same(fast, {
    time: T0,
    status: 504,
    apiName: 'Search',
    responseSource: 'gateway',
    flag: 'URT',
    details: 'response_timeout',
    category: 'upstream',
    errorSource: 'UpstreamProxy',
    target: 'search.internal:443',
    upstreamLatency: 5000.25,
    gatewayLatency: 0.75,
    latencyTotal: 5001
  })
  // The same record with its keys in another order: JSON.parse reads it.
  const o = JSON.parse(line) as Record<string, unknown>
  const reordered = JSON.stringify(Object.fromEntries(Object.entries(o).reverse()))
  t.equal(parser.parse(reordered), LINE_ACCESS)
  t.equal(parser.fastLines, 1, 'another key order takes the slow path')
  t.same({ ...parser.fields }, fast)
  // Escapes in a value: the slow path, unescaped.
  const escaped = '{"level":30,"time":' + String(T0) + ',"request_id":"r","method":"GET","path":"/a","api_name":"Say \\"hi\\" \\u00e9","status":200,"response_source":"upstream","msg":"access"}'
  t.equal(parser.parse(escaped), LINE_ACCESS)
  t.equal(parser.fastLines, 1, 'escapes take the slow path')
  t.equal(parser.fields.apiName, 'Say "hi" é')
  t.ok(Number.isNaN(parser.fields.upstreamLatency), 'a missing latency is NaN')

  t.equal(parser.parse(''), LINE_BLANK)
  t.equal(parser.parse('{"msg":"other"}'), LINE_OTHER)
  t.equal(parser.parse('{"level":30,"time":01,"status":200,"msg":"access"}'), LINE_MALFORMED, 'a leading zero is not JSON')
  t.equal(parser.parse(okLine(T0).replace('"status":200', '"status":200.5')), LINE_MALFORMED)
  t.equal(parser.problem, 'no valid status')
  t.equal(parser.parse(okLine(T0).replace('"msg":"access"', '"msg":"access","msg":"access"')), LINE_ACCESS, 'duplicate keys: as JSON.parse reads them')
})

t.test('lines split across chunks anywhere (inside a UTF-8 character too) read the same', async (t) => {
  const lines: string[] = []
  for (let i = 0; i < 300; i++) {
    const api = ['Zahlungen-Ä', '支付服务', 'Orders'][i % 3]
    lines.push(i % 7 === 0 ? errorLine(T0 + i * 1000, 'UCF', { api_name: api }) : okLine(T0 + i * 1000, api))
    if (i % 50 === 0) lines.push('not json ✗')
  }
  const text = lines.join('\r\n') + '\r\n'
  const whole = await summary(['--by', 'api', '-'], text)
  const bytes = Buffer.from(text)
  let seed = 1
  const chunks: Buffer[] = []
  for (let at = 0; at < bytes.length;) {
    seed = (seed * 48271) % 2147483647
    const size = 1 + (seed % 97)
    chunks.push(bytes.subarray(at, at + size))
    at += size
  }
  const split = await summary(['--by', 'api', '-'], chunks)
  t.ok(chunks.length > 1000, `${chunks.length} chunks`)
  t.same(split, { ...whole, generatedAt: split.generatedAt })
  t.same(whole.breakdown?.rows.map((r) => [r.key, r.requests]), [['Orders', 100], ['Zahlungen-Ä', 100], ['支付服务', 100]])
  t.same(whole.input.samples.map((m) => m.line), [1, 52, 103, 154, 205].map((n) => n + 1))
})

t.test('gzip is detected by its bytes, in files and on stdin, and concatenated members are read whole', async (t) => {
  const part1 = [okLine(T0), errorLine(T0 + 1000, 'UCF')].join('\n') + '\n'
  const part2 = [errorLine(T0 + 2000, 'AKI'), okLine(T0 + 3000)].join('\n') + '\n'
  const dir = t.testdir({})
  writeFileSync(join(dir, 'access.log.gz'), Buffer.concat([gzipSync(part1), gzipSync(part2)]))
  writeFileSync(join(dir, 'rotated-without-extension'), gzipSync(part1 + part2))
  writeFileSync(join(dir, 'plain.log'), part1 + part2)
  const plain = await summary([join(dir, 'plain.log')])
  const gz = await summary([join(dir, 'access.log.gz')])
  const noExt = await summary([join(dir, 'rotated-without-extension')])
  const stdin = await summary(['-'], gzipSync(part1 + part2))
  for (const s of [gz, noExt, stdin]) {
    t.same(s.totals, { requests: 4, errors: 2, errorRate: 0.5, status4xx: 1, status5xx: 1 })
    t.same(s.flags, plain.flags)
    t.same(s.timeline, plain.timeline)
  }
  t.same(stdin.input.inputs, ['stdin'])
})

t.test('a truncated gzip file: the lines before the cut are reported, the error named, exit code 1', async (t) => {
  const lines: string[] = []
  for (let i = 0; i < 2000; i++) lines.push(okLine(T0 + i * 1000, 'Orders', (i % 50) + 1))
  const whole = gzipSync(lines.join('\n') + '\n')
  const dir = t.testdir({})
  writeFileSync(join(dir, 'cut.log.gz'), whole.subarray(0, Math.floor(whole.length * 0.6)))
  const r = await report(['--format', 'json', join(dir, 'cut.log.gz')])
  t.equal(r.code, 1)
  const s = JSON.parse(r.stdout) as ReportSummary
  t.ok(s.totals.requests > 100 && s.totals.requests < 2000, `a part was read (${s.totals.requests})`)
  t.equal(s.input.errors.length, 1)
  t.match(s.input.errors[0], `${join(dir, 'cut.log.gz')}: unexpected end of file`)
})

t.test('stdin: "-" and no file at all read the same; several files add up', async (t) => {
  const text = [okLine(T0), errorLine(T0 + 1000, 'RLT'), okLine(T0 + 2000)].join('\n')
  const dash = await summary(['-'], text)
  const none = await summary([], text)
  t.same(dash.totals, { requests: 3, errors: 1, errorRate: 0.333333, status4xx: 1, status5xx: 0 })
  t.same(none.totals, dash.totals)
  t.same(none.flags, dash.flags)
  const dir = t.testdir({ 'b.log': errorLine(T0 + 5000, 'UCF') + '\n' })
  const both = await summary(['-', join(dir, 'b.log')], text)
  t.equal(both.totals.requests, 4)
  t.same(both.input.inputs, ['stdin', join(dir, 'b.log')])
  const twice = await report(['-', '-'], text)
  t.equal(twice.code, 2)
  t.match(twice.stderr, 'stdin ("-") can be read only once')
})

t.test('a line longer than the limit is skipped and counted; the next line is read', async (t) => {
  const long = '{"msg":"access","pad":"' + 'x'.repeat(MAX_LINE_BYTES + 10) + '"}'
  const s = await summary(['-'], [okLine(T0), long, errorLine(T0 + 1000, 'NRF')].join('\n') + '\n')
  t.equal(s.totals.requests, 2)
  t.equal(s.input.malformed, 1)
  t.same(s.input.samples, [{ input: 'stdin', line: 2, problem: `line longer than ${MAX_LINE_BYTES} bytes` }])
  const unterminated = await summary(['-'], okLine(T0) + '\n' + 'y'.repeat(MAX_LINE_BYTES + 5))
  t.equal(unterminated.totals.requests, 1)
  t.equal(unterminated.input.malformed, 1)
})

t.test('--since is inclusive and --until exclusive; what falls outside is counted as filtered', async (t) => {
  const text = [0, 1, 2, 3, 4].map((m) => errorLine(T0 + m * MIN, 'UCF')).join('\n')
  const since = new Date(T0 + MIN).toISOString()
  const until = new Date(T0 + 3 * MIN).toISOString()
  const s = await summary(['--since', since, '--until', until, '-'], text)
  t.equal(s.totals.requests, 2, 'minutes 1 and 2')
  t.equal(s.input.filtered, 3)
  t.same(s.span, { first: since, last: new Date(T0 + 2 * MIN).toISOString() })
  t.same(s.filters, { since, until })
  // Same filter, other spellings: no zone means UTC; epoch milliseconds.
  const other = await summary(['--since', '2026-11-23T10:01', '--until', String(T0 + 3 * MIN), '-'], text)
  t.equal(other.totals.requests, 2)
  const day = await summary(['--since', '2026-11-24', '-'], text)
  t.equal(day.totals.requests, 0)
  t.equal(day.span, null)
  const month = await summary(['--since', '2026-11', '--until', '2026-12', '-'], text)
  t.equal(month.totals.requests, 5)
  const bad = await report(['--since', 'yesterday', '-'], text)
  t.equal(bad.code, 2)
  t.match(bad.stderr, 'faultline: report: --since: not a time (got "yesterday")')
  const reversed = await report(['--since', '2026-11-24', '--until', '2026-11-23', '-'], text)
  t.equal(reversed.code, 2)
  t.match(reversed.stderr, '--since must be before --until')
})

t.test('parseTime: relative durations count back from now', async (t) => {
  const now = Date.UTC(2026, 10, 23, 12, 0, 0)
  t.equal(parseTime('since', '2h', now), now - 2 * 3_600_000)
  t.equal(parseTime('since', '15m', now), now - 15 * MIN)
  t.equal(parseTime('since', '7d', now), now - 7 * 86_400_000)
  t.equal(parseTime('since', '2026-11-23T10:00+02:00', now), Date.UTC(2026, 10, 23, 8, 0, 0))
  t.equal(parseTime('since', '2026-11-23 10:00:30', now), Date.UTC(2026, 10, 23, 10, 0, 30))
  t.throws(() => parseTime('until', '2026-13', now), /--until: not a time/)
})

t.test('--api keeps only the named APIs (repeatable); lines without an API are left out', async (t) => {
  const text = [
    okLine(T0, 'Orders'), okLine(T0 + 1, 'Payments'), okLine(T0 + 2, 'Search'),
    errorLine(T0 + 3, 'UCF', { api_name: 'Payments' }), errorLine(T0 + 4, 'NRF')
  ].join('\n')
  const one = await summary(['--api', 'Payments', '-'], text)
  t.same(one.totals, { requests: 2, errors: 1, errorRate: 0.5, status4xx: 0, status5xx: 1 })
  t.equal(one.input.filtered, 3)
  t.same(one.filters, { apis: ['Payments'] })
  const two = await summary(['--api', 'Payments', '--api', 'Orders', '-'], text)
  t.same(two.apis.map((a) => [a.api, a.requests]), [['Payments', 2], ['Orders', 1]])
})

t.test('--by groups by each dimension', async (t) => {
  const text = [
    okLine(T0, 'Orders'),
    errorLine(T0 + 1000, 'UCF', { error_target: 'a:1' }),
    errorLine(T0 + 2000, 'UCF', { error_target: 'b:2' }),
    errorLine(T0 + 3000, 'URS', { error_target: 'a:1' }),
    errorLine(T0 + 3_600_000, 'AKI', { api_name: 'Accounts' }),
    errorLine(T0 + 86_400_000, 'EAE', { api_name: 'Accounts', error_target: 'auth.internal:443' })
  ].join('\n')
  const rows = async (by: string): Promise<Array<[string, number, number]>> =>
    (await summary(['--by', by, '-'], text)).breakdown?.rows.map((r) => [r.key, r.requests, r.errors]) ?? []
  t.same(await rows('flag'), [['UCF', 2, 2], ['AKI', 1, 1], ['EAE', 1, 1], ['URS', 1, 1]])
  t.same(await rows('source'), [['UpstreamProxy', 2, 2], ['ApiKeyAuth', 1, 1], ['ExternalAuth', 1, 1], ['Upstream', 1, 1]])
  t.same(await rows('category'), [['upstream', 3, 3], ['auth', 2, 2]])
  t.same(await rows('side'), [['upstream', 3, 3], ['client', 1, 1], ['gateway', 1, 1]], 'EAE (503 from the auth service) is the gateway side')
  t.same(await rows('api'), [['Orders', 4, 3], ['Accounts', 2, 2]])
  t.same(await rows('target'), [['a:1', 2, 2], ['(none)', 1, 1], ['auth.internal:443', 1, 1], ['b:2', 1, 1]])
  t.same(await rows('hour'), [['2026-11-23T10:00Z', 4, 3], ['2026-11-23T11:00Z', 1, 1], ['2026-11-24T10:00Z', 1, 1]])
  t.same(await rows('day'), [['2026-11-23', 5, 4], ['2026-11-24', 1, 1]])

  const table = await report(['--by', 'api', '-'], text)
  t.match(table.stdout, /^ {2}API +REQUESTS +ERRORS +RATE +5XX +FLAGS$/m)
  t.match(table.stdout, /^ {2}Orders +4 +3 +75\.0% +3 +UCF 2, URS 1$/m)
  t.notMatch(table.stdout, /TOP FLAGS/, 'a breakdown replaces the full summary')
  const bad = await report(['--by', 'minute', '-'], text)
  t.equal(bad.code, 2)
  t.match(bad.stderr, '--by must be one of flag, source, category, side, api, target, hour, day (got "minute")')
})

t.test('memory stays bounded: distinct targets past the cap are folded into "(other)"', async (t) => {
  const lines: string[] = []
  const distinct = LIMITS.targets + 50
  for (let i = 0; i < distinct; i++) lines.push(errorLine(T0 + i, 'UCF', { error_target: `10.1.${Math.floor(i / 250)}.${i % 250}:80` }))
  lines.push(errorLine(T0 + distinct, 'UCF', { error_target: '10.1.0.0:80' }))
  const s = await summary(['--top', '3', '-'], lines.join('\n'))
  t.equal(s.totals.errors, distinct + 1)
  t.same(s.targets[0], { ...s.targets[0], target: '10.1.0.0:80', errors: 2 })
  t.same(s.targets.map((x) => x.target).slice(3), ['(other)'], 'the top 3, then the keys past the cap')
  t.equal(s.targets[3].errors, 50)
  t.equal(s.moreTargets, LIMITS.targets - 3, 'targets with a key of their own not listed')
  const all = await summary(['--top', '1000', '--by', 'target', '-'], lines.join('\n'))
  const other = all.breakdown?.rows.find((r) => r.key === '(other)')
  t.equal(other?.errors, 50, 'keys after the first 1000 distinct ones')
  t.equal(all.breakdown?.rows.length, LIMITS.groups + 1)
})

t.test('usage and input errors', async (t) => {
  const missing = await report(['/nonexistent/access.log'])
  t.same(missing, { code: 1, stdout: '', stderr: 'faultline report: cannot read /nonexistent/access.log: no such file\n' })
  const dir = t.testdir({})
  const directory = await report([dir])
  t.equal(directory.code, 1)
  t.match(directory.stderr, 'it is a directory')
  const format = await report(['--format', 'pdf', '-'])
  t.equal(format.code, 2)
  t.match(format.stderr, '--format must be one of table, md, csv, json, html (got "pdf")')
  const top = await report(['--top', '0', '-'])
  t.equal(top.code, 2)
  const unknown = await report(['--verbose'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, 'faultline: report: unknown option --verbose')
  const help = await report(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: faultline report \[options\] \[FILE\.\.\.\]/)
  let stderr = ''
  const tty = Object.assign(Readable.from([]), { isTTY: true })
  const code = await main(['report'], { stdout: { write: () => true }, stderr: { write: (s: string) => { stderr += s } }, stdin: tty })
  t.equal(code, 2, 'no file and a terminal on stdin: nothing to read')
  t.match(stderr, 'faultline: report: no input: give access-log files, or pipe one into stdin')
  const empty = await summary(['-'], '')
  t.same(empty.totals, { requests: 0, errors: 0, errorRate: 0, status4xx: 0, status5xx: 0 })
  t.same(empty.timeline.buckets, [])
})
