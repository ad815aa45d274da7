/**
 * The benchmark harness's smoke mode (`node bench/run.mjs --smoke`): a few seconds, four
 * configurations, one short round and a small memory run, in child processes like the full run.
 * Checks that the harness still works end to end and writes well-formed results; it asserts
 * nothing about speed (the figures of a smoke run mean little).
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

interface Row {
  id: string
  label: string
  expect: number
  valid: boolean
  ratio: number
  p99Ratio: number
  rounds: Array<{ answered: number, rps: number, statusCodes: Record<string, number> }>
  median: { rps: number, p50: number, p99: number, cpuUsPerRequest: number }
  scrapes?: { sent: number, failed: number, counted: number, answered: number }
}
interface Results {
  commit?: string
  mode: string
  machine: { cores: number, node: string }
  versions: Record<string, string>
  settings: { rounds: number, connections: number, nodeFlags: string[] }
  systemFlags: Record<string, string[]>
  rows: Row[]
  targets: Array<{
    text: string
    value: number
    goal: number
    met: boolean
    paired?: number
    pairedInterval?: { low: number, high: number, confidence: number }
    pairedVerdict?: string
  }>
  paired: Array<{
    a: string
    b: string
    valid: boolean
    rounds: Array<Record<'a' | 'b', { rps: number, cpuUsPerRequest: number }>>
    rpsRatio: { median: number }
    cpuRatio: { median: number }
  }>
  memory: { mixedRequests: number, samples: Array<{ rss: number, heapUsed: number, requests: number }>, rssRatio: number, statusCodes: Record<string, number> }
}

t.test('bench/run.mjs --smoke measures four configurations and writes JSON, markdown and SVG', async (t) => {
  const out = mkdtempSync(path.join(tmpdir(), 'faultline-bench-test-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))

  const stdout = await new Promise<string>((resolve, reject) => {
    // --node-flags with a flag that changes nothing measured here: it must reach every system under test.
    execFile(process.execPath, ['bench/run.mjs', '--smoke', '--out', out, '--node-flags=--stack-trace-limit=12'], { cwd: root, timeout: 90_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${stderr}`))
      else resolve(stdout)
    })
  })
  const summary = JSON.parse(stdout.trim().split('\n').at(-1) as string) as { json: string, markdown: string, svg: string }
  t.same(readdirSync(out).sort(), [path.basename(summary.json), path.basename(summary.markdown), path.basename(summary.svg)].sort())

  const results = JSON.parse(readFileSync(summary.json, 'utf8')) as Results
  t.equal(results.mode, 'smoke')
  // The commit measured (this checkout's), so that runs of the same code can be pooled.
  t.match(results.commit, /^[0-9a-f]{12}(\+dirty)?$/)
  t.equal(results.machine.node, process.version)
  t.ok(results.machine.cores >= 1)
  t.match(results.versions.autocannon, /^\d+\.\d+\.\d+$/)
  t.match(results.versions.fastify, /^\d+\.\d+\.\d+$/)
  t.same(results.rows.map((r) => r.id).sort(), ['direct', 'fl-log', 'fl-metrics', 'reply-from'])
  // As each process reported its own process.execArgv: the systems under test, the mixed run's
  // included, got the flag; the upstream (which the direct row measures) and the load generators
  // are not systems under test.
  t.same(results.settings.nodeFlags, ['--stack-trace-limit=12'])
  t.same(Object.keys(results.systemFlags).sort(), ['fl-log', 'fl-metrics', 'fl-mixed', 'reply-from'])
  for (const [name, flags] of Object.entries(results.systemFlags)) t.ok(flags.includes('--stack-trace-limit=12'), `${name} runs with the flag`)

  for (const row of results.rows) {
    t.equal(row.rounds.length, results.settings.rounds, `${row.id}: one result per round`)
    t.ok(row.rounds[0].answered > 0, `${row.id}: requests were answered`)
    t.equal(row.expect, 200)
    t.ok(row.valid, `${row.id}: (nearly) every answer had the expected status`)
    for (const value of [row.median.rps, row.median.p50, row.median.p99, row.median.cpuUsPerRequest, row.ratio, row.p99Ratio]) {
      t.ok(typeof value === 'number' && Number.isFinite(value) && value >= 0, `${row.id}: ${value} is a number`)
    }
  }
  const baseline = results.rows.find((r) => r.id === 'reply-from') as Row
  t.equal(baseline.ratio, 1, 'ratios are taken against bare reply-from')
  const faultline = results.rows.find((r) => r.id === 'fl-log') as Row
  t.equal(faultline.ratio, faultline.rounds[0].rps / baseline.rounds[0].rps)

  const logTarget = results.targets.find((x) => x.text.startsWith('proxy + access log'))
  t.ok(logTarget !== undefined && Number.isFinite(logTarget.value) && logTarget.goal === 0.95)
  t.equal(logTarget?.met, (logTarget?.value ?? 0) >= 0.95)

  // Metrics on vs off: the same round's fl-metrics over fl-log, and the metrics counted every answer.
  const withMetrics = results.rows.find((r) => r.id === 'fl-metrics') as Row
  const metricsTarget = results.targets.find((x) => x.text.startsWith('metrics on / off'))
  t.equal(metricsTarget?.value, withMetrics.rounds[0].rps / faultline.rounds[0].rps)
  t.equal(metricsTarget?.goal, 0.97)
  t.equal(faultline.scrapes, undefined, 'fl-log has no metrics to scrape')
  t.ok(withMetrics.scrapes !== undefined && withMetrics.scrapes.sent >= 1 && withMetrics.scrapes.failed === 0, 'scraped while loaded')
  t.ok((withMetrics.scrapes?.counted ?? 0) >= (withMetrics.scrapes?.answered ?? Infinity), 'every answered request was counted')

  // The smoke run's pair: fl-metrics and fl-log loaded at the same time, each by its own load generator.
  t.equal(results.paired.length, 1)
  const pair = results.paired[0]
  t.match(pair, { a: 'fl-metrics', b: 'fl-log', valid: true })
  t.equal(pair.rounds.length, results.settings.rounds)
  const [both] = pair.rounds
  t.ok(both.a.rps > 0 && both.b.rps > 0 && both.a.cpuUsPerRequest > 0 && both.b.cpuUsPerRequest > 0, 'both sides answered and used CPU')
  t.equal(pair.rpsRatio.median, both.a.rps / both.b.rps)
  t.equal(pair.cpuRatio.median, both.b.cpuUsPerRequest / both.a.cpuUsPerRequest)
  t.equal(metricsTarget?.paired, pair.rpsRatio.median, 'the metrics target shows the paired ratio too')
  // One paired round: its interval is that round alone, with no confidence to speak of.
  t.same(metricsTarget?.pairedInterval, { low: pair.rpsRatio.median, high: pair.rpsRatio.median, confidence: 0 })
  t.equal(metricsTarget?.pairedVerdict, pair.rpsRatio.median >= 0.97 ? 'met' : 'missed')

  t.equal(results.memory.samples.length, 2, 'after the warm-up and after the mixed requests')
  for (const s of results.memory.samples) t.ok(s.rss > 0 && s.heapUsed > 0 && s.heapUsed < s.rss)
  t.ok(Number.isFinite(results.memory.rssRatio))
  // The mix holds successes and each kind of failure.
  for (const code of ['200', '401', '404', '429']) t.ok((results.memory.statusCodes[code] ?? 0) > 0, `mixed run answered ${code}`)

  const markdown = readFileSync(summary.markdown, 'utf8')
  t.match(markdown, /\| bare @fastify\/reply-from \| [\d,]+ \| 1\.00 \|/)
  t.match(markdown, /\| Faultline: proxy \+ access log \| [\d,]+ \| \d+\.\d\d \|/)
  t.match(markdown, /\| Faultline: proxy \+ access log \+ metrics \| Faultline: proxy \+ access log \| \d+\.\d\d \(\d+\.\d\d to \d+\.\d\d\) \|/)
  t.match(markdown, /\| metrics on \/ off \(proxy \+ access log, throughput\) \| \d+\.\d\d \| \d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \| >= 0\.97 \| (yes|\*\*no\*\*); paired: (met|\*\*missed\*\*) \|/)
  t.match(markdown, 'Node flags of every Node system under test (`--node-flags`): `--stack-trace-limit=12`.')
  const svg = readFileSync(summary.svg, 'utf8')
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  t.equal((svg.match(/<rect x=/g) ?? []).length, 4, 'one bar per row')
})

t.test('bench/run.mjs refuses --node-flags that are not flags, before starting anything', async (t) => {
  const r = await new Promise<{ code: number, stderr: string }>((resolve) => {
    execFile(process.execPath, ['bench/run.mjs', '--smoke', '--node-flags=--expose-gc max-semi-space-size=1'], { cwd: root, timeout: 20_000 }, (err, _stdout, stderr) => {
      resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, stderr })
    })
  })
  t.not(r.code, 0)
  t.match(r.stderr, 'bench: --node-flags takes flags that start with --, got "max-semi-space-size=1"')
  t.notMatch(r.stderr, /systems up/)
})

t.test('bench/access-line.mjs checks the compiled line against pino and prints both costs', async (t) => {
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    execFile(process.execPath, [path.join(root, 'bench', 'access-line.mjs'), '--lines', '2000', '--rounds', '1'], { cwd: root, timeout: 60_000 }, (err, stdout) => {
      if (err !== null) reject(err)
      else resolve({ stdout })
    })
  })
  t.match(stdout, /pino logger\.info +\d+\.\d\d µs CPU per line/)
  t.match(stdout, /compiled line +\d+\.\d\d µs CPU per line/)
  t.match(stdout, /compiled \/ pino: \d+\.\d\dx the CPU \(2000 lines x 1 rounds/)
})
