/**
 * `faultline report` throughput: generates an access log (1,000,000 lines by default, a realistic
 * mix: mostly successes, an upstream incident, auth and rate-limit refusals), then measures
 * lines per second of the default summary, in-process (best and median of --runs) and through the
 * real CLI (process start included).
 *
 *   npm run build && node bench/report-throughput.mjs
 *   node bench/report-throughput.mjs --lines 200000 --runs 5
 *   node bench/report-throughput.mjs --keep /tmp/access.log   # keep the generated log (e.g. for a demo report)
 *
 * The machine is shared and noisy: the best run is the closest to what the code can do; the
 * median says how steady it was.
 */
import { spawnSync } from 'node:child_process'
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs'
import { once } from 'node:events'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { recordFields } from '@faultline/core'
import { renderReport, summarise } from '@faultline/gateway/report'
import { seededRandom } from './lib/random.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const bin = path.join(root, 'packages/gateway/bin/faultline.js')

const { values: args } = parseArgs({
  options: {
    lines: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'string' },
    hours: { type: 'string', default: '6' }
  }
})
const total = Number(args.lines)
const runs = Number(args.runs)
const hours = Number(args.hours)

// Seeded: every run reads the same log.
const rnd = seededRandom(42)
const round3 = (ms) => Math.round(ms * 1000) / 1000
/** Roughly log-normal latencies around `median` ms. */
const latency = (median) => round3(median * Math.exp((rnd() + rnd() + rnd() - 1.5) * 0.9))

const apis = [
  { name: 'Payments', prefix: '/api/v1/payments', targets: ['10.0.3.11:8443', '10.0.3.12:8443'], median: 35, share: 0.3 },
  { name: 'Orders', prefix: '/api/v1/orders', targets: ['10.0.4.21:8080', '10.0.4.22:8080'], median: 18, share: 0.35 },
  { name: 'Search', prefix: '/api/v1/search', targets: ['10.0.5.31:9200'], median: 60, share: 0.25 },
  { name: 'Accounts', prefix: '/api/v1/accounts', targets: ['10.0.6.41:8080'], median: 12, share: 0.1 }
]

const flagFacts = {
  UCF: ['connection_refused', 502, 'upstream', 'UpstreamProxy'],
  URT: ['response_timeout', 504, 'upstream', 'UpstreamProxy'],
  URR: ['connection_reset', 502, 'upstream', 'UpstreamProxy'],
  URS: ['upstream_response_status', 503, 'upstream', 'Upstream'],
  AMF: ['auth_field_missing', 401, 'auth', 'ApiKeyAuth'],
  AKI: ['api_key_invalid', 401, 'auth', 'ApiKeyAuth'],
  RLT: ['rate_limited', 429, 'rate_limit', 'RateLimit'],
  NRF: ['no_route', 404, 'client', 'Router'],
  BTL: ['body_too_large', 413, 'client', 'RequestValidation'],
  EAE: ['external_auth_error', 503, 'auth', 'ExternalAuth'],
  GIE: ['gateway_internal_error', 500, 'gateway', 'Gateway']
}

/** The story of the generated log, by fraction of its span. */
function pickFlag (f, api) {
  const r = rnd()
  // Search degrades from 30% to 45% of the span: slower, then timing out.
  if (api.name === 'Search' && f > 0.3 && f < 0.45 && r < (f - 0.3) * 2.5) return 'URT'
  // A bad deploy of one Payments target: refused for a quarter of an hour.
  if (api.name === 'Payments' && f > 0.7 && f < 0.74 && r < 0.5) return 'UCF'
  if (r < 0.006) return 'AKI'
  if (r < 0.010) return 'AMF'
  if (r < 0.016 && f > 0.55 && f < 0.62) return 'RLT'
  if (r < 0.0175) return 'URS'
  if (r < 0.0180) return 'URR'
  if (r < 0.0183) return 'BTL'
  if (r < 0.01833) return 'EAE'
  if (r < 0.018333) return 'GIE'
  return undefined
}

function line (time, i) {
  const f = (time - start) / span
  let pick = rnd()
  const api = apis.find((a) => (pick -= a.share) < 0) ?? apis[0]
  const nrf = rnd() < 0.003
  const flag = nrf ? 'NRF' : pickFlag(f, api)
  const target = api.targets[i % api.targets.length]
  const rec = {
    request_id: `7f3c${i.toString(16).padStart(8, '0')}-4b1e-4c2a-9d7e-5a1f0c2b3d4e`,
    method: rnd() < 0.8 ? 'GET' : 'POST',
    path: nrf ? '/api/v2/unknown' : `${api.prefix}/${(i * 7919) % 100000}`,
    route: nrf ? undefined : `${api.prefix}/*`,
    api_name: nrf ? undefined : api.name,
    status: 200,
    response_source: 'upstream'
  }
  // Search slows down before it times out.
  const slowdown = api.name === 'Search' && f > 0.25 && f < 0.45 ? 1 + (f - 0.25) * 40 : 1
  let upstream = latency(api.median * slowdown)
  if (flag !== undefined) {
    const [details, status, category, source] = flagFacts[flag]
    rec.status = status
    rec.response_source = flag === 'URS' ? 'upstream' : 'gateway'
    rec.response_flag = flag
    rec.response_code_details = details
    rec.error_category = category
    rec.error_source = source
    if (category === 'upstream') rec.error_target = target
    if (flag === 'EAE') rec.error_target = 'auth.internal:8443'
    if (flag === 'URS') rec.upstream_status = 503
    if (flag === 'URT') upstream = round3(5000 + rnd() * 4)
    if (flag === 'UCF') upstream = round3(0.4 + rnd())
    if (category !== 'upstream') upstream = undefined
  } else {
    rec.upstream_status = 200
  }
  if (upstream !== undefined) {
    rec.upstream_addr = target
    rec.upstream_attempts = 1
    rec.upstream_latency = upstream
  }
  const gateway = latency(0.6)
  rec.gateway_latency = gateway
  rec.latency_total = round3((upstream ?? 0) + gateway)
  rec.client_ip = `192.0.2.${i % 250}`
  rec.user_agent = 'checkout-service/4.2'
  const out = { level: 30, time }
  for (const field of recordFields) if (rec[field] !== undefined) out[field] = rec[field]
  out.msg = 'access'
  return JSON.stringify(out)
}

const span = hours * 3_600_000
const start = Math.floor((Date.now() - span) / 60_000) * 60_000

async function generate (file) {
  const out = createWriteStream(file)
  let batch = ''
  for (let i = 0; i < total; i++) {
    batch += line(start + Math.floor((i / total) * span), i) + '\n'
    if (batch.length > 1 << 20) {
      if (!out.write(batch)) await once(out, 'drain')
      batch = ''
    }
  }
  out.end(batch)
  await once(out, 'finish')
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-report-bench-'))
const file = args.keep ?? path.join(dir, 'access.log')
try {
  process.stdout.write(`generating ${total.toLocaleString('en')} lines... `)
  await generate(file)
  const bytes = statSync(file).size
  process.stdout.write(`${(bytes / 1e6).toFixed(0)} MB\n`)

  const quiet = { write: () => true }
  const rates = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    const summary = await summarise({ inputs: [file], format: 'table', top: 10 }, { stderr: quiet })
    renderReport(summary, 'table', 100)
    const s = Number(process.hrtime.bigint() - t0) / 1e9
    if (summary.input.lines !== total) throw new Error(`read ${summary.input.lines} lines, expected ${total}`)
    rates.push(total / s)
    process.stdout.write(`  run ${r + 1}: ${s.toFixed(2)} s, ${Math.round(total / s).toLocaleString('en')} lines/s\n`)
  }
  rates.sort((a, b) => b - a)
  const rss = process.resourceUsage().maxRSS / 1024

  const t0 = process.hrtime.bigint()
  const cli = spawnSync(process.execPath, [bin, 'report', file], { encoding: 'utf8', maxBuffer: 1 << 24 })
  const cliSeconds = Number(process.hrtime.bigint() - t0) / 1e9
  if (cli.status !== 0) throw new Error(`faultline report exited ${cli.status}: ${cli.stderr}`)

  const fmt = (n) => Math.round(n).toLocaleString('en')
  console.log(`\nfaultline report, default summary, ${total.toLocaleString('en')} lines (${(bytes / 1e6).toFixed(0)} MB), Node ${process.version}, ${os.cpus().length} CPUs, load average ${os.loadavg()[0].toFixed(1)}`)
  console.log(`  in-process: best ${fmt(rates[0])} lines/s, median ${fmt(rates[Math.floor(rates.length / 2)])} lines/s (${runs} runs)`)
  console.log(`  CLI (process start included): ${cliSeconds.toFixed(2)} s, ${fmt(total / cliSeconds)} lines/s`)
  console.log(`  peak RSS of this process: ${rss.toFixed(0)} MB (the file is streamed: it does not grow with the input)`)
  if (args.keep !== undefined) console.log(`  log kept in ${file}`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
