/**
 * Faultline's benchmark harness: Faultline side by side with its peers, in one run, on one machine.
 *
 *   npm run bench                       # builds, then the full run (about 9 minutes)
 *   node bench/run.mjs --smoke          # a few seconds: 4 configurations, 1 short round
 *
 * Options: --duration S (per round, default 3), --rounds N (5), --warmup S (2), --settle S (unmeasured load
 * before each row's round, 0.5; 0 for none), --connections N (50),
 * --mixed N (requests of the memory run), --only id,id (rows to run; their baselines are added),
 * --out DIR (default bench/results; smoke: a temporary directory), --no-docs (leave BENCHMARKS.md),
 * --cpu-prof id,id (write V8 CPU profiles of those systems to DIR/profiles),
 * --node-flags "--flag --flag=v" (more Node and V8 flags for every Node system under test, peers
 * included, not for the upstream (the direct row) or the load generators; recorded in the results;
 * write it as --node-flags=--flag, or parseArgs takes the flag for an option of its own),
 * --paired a:b,c:d (after the interleaved rounds, run each pair of rows at the same time, each
 * with half the connections and a load generator of its own; see pairedRounds), --paired-rounds N
 * (rounds of each pair, default --rounds), or --paired targets (the pairs of the targets a run cannot settle otherwise; `npm run bench:paired`).
 * --only parts --paired parts: the 1,000-API row taken apart, each per-API feature alone (rows
 * part-*, run only when asked for); scale-apis-ten, also on demand: the 1,000 APIs with traffic
 * over 10 of them.
 * The smoke run pairs fl-metrics with fl-log.
 *
 * The machine is shared and noisy, so the harness reports ratios measured in the same run: every
 * configuration runs once per round, rounds interleave the configurations (in a shuffled order, seeded per round), and
 * each ratio is the median of its per-round ratios against bare @fastify/reply-from.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { KEY, PATH, apiRequest, fullChain, keyTraffic, manyApis, spread } from './lib/chains.mjs'
import { startChildProcess } from './lib/children.mjs'
import { codeVersion } from './lib/commit.mjs'
import { seededRandom } from './lib/random.mjs'
import { chartSvg, markdown } from './lib/report.mjs'
import { median, summariseRatios, verdict } from './lib/stats.mjs'
import { cpuMs, freePort, probe, rssBytes, startNginx, startRedis } from './lib/system-procs.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.dirname(here)

const { values: args } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    warmup: { type: 'string' },
    settle: { type: 'string' },
    connections: { type: 'string' },
    mixed: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
    'no-docs': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    paired: { type: 'string' },
    'paired-rounds': { type: 'string' },
    'node-flags': { type: 'string' }
  }
})

const smoke = args.smoke
const settings = {
  duration: Number(args.duration ?? (smoke ? 1 : 3)),
  // Five short rounds rather than three long ones: on this shared machine a single round can be
  // off by 30%, and the median of five shrugs off two such rounds.
  rounds: Number(args.rounds ?? (smoke ? 1 : 5)),
  // A paired round's ratio still moves by ±0.1 here in a noisy hour: `npm run bench:paired` takes
  // the median of nine.
  pairedRounds: Number(args['paired-rounds'] ?? args.rounds ?? (smoke ? 1 : 5)),
  warmup: Number(args.warmup ?? (smoke ? 0.5 : 2)),
  // Each row's load before each of its measured rounds, unmeasured (0: none).
  settle: Number(args.settle ?? (smoke ? 0 : 0.5)),
  connections: Number(args.connections ?? (smoke ? 10 : 50)),
  // 1,000,000 mixed requests took under 3 minutes here on their own (2026-12-03), about 2 more
  // than the 300,000 below: more than the 10-minute budget leaves once the comparison rows have
  // run (about 8.7 minutes). --mixed 1000000 runs them all (--only memory: that run alone).
  mixedRequests: Number(args.mixed ?? (smoke ? 2000 : 300_000)),
  mixedWarmup: smoke ? 1000 : 50_000,
  mixedChunks: smoke ? 1 : 4
}
for (const [name, value] of Object.entries(settings)) {
  // Only the settle load may be left out (0).
  if (!Number.isFinite(value) || value < 0 || (value === 0 && name !== 'settle')) {
    throw new TypeError(`bench: --${name} must be a ${name === 'settle' ? 'non-negative' : 'positive'} number, got ${value}`)
  }
}
const outDir = path.resolve(args.out ?? (smoke ? mkdtempSync(path.join(os.tmpdir(), 'faultline-bench-smoke-')) : path.join(here, 'results')))
const workDir = mkdtempSync(path.join(os.tmpdir(), 'faultline-bench-'))
const profiled = new Set((args['cpu-prof'] ?? '').split(',').filter(Boolean))
const nodeFlags = (args['node-flags'] ?? '').split(/\s+/).filter(Boolean)
for (const flag of nodeFlags) {
  if (!flag.startsWith('--')) throw new TypeError(`bench: --node-flags takes flags that start with --, got "${flag}"`)
}
/** The children that are not systems under test. */
const harnessChildren = new Set(['load', 'load-2', 'upstream'])
/** Each Node system under test's flags, as the process itself reports them (results.systemFlags). */
const systemFlags = {}
const started = performance.now()

function log (line) {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(3)}s] ${line}\n`)
}

// ---------------------------------------------------------------------------------------------
// Child processes (upstream, systems under test, load generator), driven over IPC (lib/child.mjs)

/** A child process of lib/ (upstream, system under test, load generator), with the run's V8 flags. */
async function startChild (script, config, { name, timeout } = {}) {
  const execArgv = ['--expose-gc']
  if (!harnessChildren.has(name)) execArgv.push(...nodeFlags)
  if (profiled.has(name)) execArgv.push('--cpu-prof', `--cpu-prof-dir=${path.join(outDir, 'profiles')}`, `--cpu-prof-name=${name}.cpuprofile`)
  const child = await startChildProcess(path.join(here, 'lib', script), config, { name, timeout, execArgv })
  if (!harnessChildren.has(name)) systemFlags[name] = child.execArgv
  return child
}

// ---------------------------------------------------------------------------------------------
// Machine and versions

const require = createRequire(import.meta.url)

/** Version of a package as resolved from a directory (walks up from its entry point). */
function versionOf (name, from = root) {
  try {
    const req = createRequire(path.join(from, 'package.json'))
    let dir = path.dirname(req.resolve(name))
    for (;;) {
      const file = path.join(dir, 'package.json')
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, 'utf8'))
        if (pkg.name === name) return pkg.version
      }
      const parent = path.dirname(dir)
      if (parent === dir) return 'unknown'
      dir = parent
    }
  } catch {
    return 'unknown'
  }
}

function machineInfo () {
  let osName = `${os.type()} ${os.release()}`
  try {
    const match = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))
    if (match !== null) osName = match[1]
  } catch {}
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model?.trim() ?? 'unknown',
    memoryBytes: os.totalmem(),
    os: osName,
    kernel: os.release(),
    node: process.version
  }
}

const proxyDir = path.dirname(path.dirname(require.resolve('@faultline/proxy')))
const nginxProbe = probe('nginx', ['-v'], /nginx\/([\d.]+)/)
const redisProbe = probe('redis-server', ['--version'], /v=([\d.]+)/)
// Read before the run: the code the child processes load is the code of this moment.
const commit = codeVersion(root)

const versions = {
  fastify: versionOf('fastify'),
  '@fastify/reply-from': versionOf('@fastify/reply-from'),
  'undici (reply-from)': versionOf('undici', path.dirname(path.dirname(require.resolve('@fastify/reply-from')))),
  'undici (@faultline/proxy)': versionOf('undici', proxyDir),
  '@fastify/http-proxy': versionOf('@fastify/http-proxy'),
  express: versionOf('express'),
  'http-proxy-middleware': versionOf('http-proxy-middleware'),
  nginx: nginxProbe.version ?? 'not installed',
  'redis-server': redisProbe.version ?? 'not installed',
  autocannon: versionOf('autocannon')
}

// ---------------------------------------------------------------------------------------------
// What is measured

/** The full chain's per-API features one at a time (on top of proxy + access log), for the part-* rows. */
function featureParts () {
  const { keys, rateLimit, quota, breaker } = fullChain('')
  return { proxy: {}, auth: { keys }, breaker: { breaker }, limits: { keys, rateLimit, quota } }
}
const accessLogFile = (name) => path.join(workDir, `${name}.access.log`)

/**
 * Systems under test: each one process. `config(ctx)` builds its start config from the run's
 * context (upstream URL, a refused port, the Redis URL).
 */
const systems = {
  upstream: { script: 'upstream.mjs' },
  nginx: { external: 'nginx' },
  'reply-from': { script: 'sut.mjs', config: (c) => ({ kind: 'reply-from', upstream: c.upstream }) },
  'http-proxy': { script: 'sut.mjs', config: (c) => ({ kind: 'http-proxy', upstream: c.upstream }) },
  'express-hpm': { script: 'sut.mjs', config: (c) => ({ kind: 'express-hpm', upstream: c.upstream }) },
  'fl-proxy': { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', apis: [{ name: 'bench', prefix: '/api', target: c.upstream }] }) },
  'fl-log': { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile('fl-log'), apis: [{ name: 'bench', prefix: '/api', target: c.upstream }] }) },
  // fl-log plus @faultline/metrics on its own port, scraped over HTTP while it is loaded.
  'fl-metrics': { scrape: true, script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile('fl-metrics'), metrics: true, apis: [{ name: 'bench', prefix: '/api', target: c.upstream }] }) },
  'fl-full': { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile('fl-full'), apis: [fullChain(c.upstream)] }) },
  'fl-redis': { needs: 'redis', script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile('fl-redis'), redis: c.redis, apis: [fullChain(c.upstream)] }) },
  'fl-ucf': { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile('fl-ucf'), apis: [{ name: 'bench', prefix: '/api', target: c.refused }] }) },
  // The same with the refusal backoff off: every request dials the refused port.
  'fl-ucf-dial': { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile('fl-ucf-dial'), apis: [{ name: 'bench', prefix: '/api', target: c.refused, refusedBackoff: 0 }] }) },
  // One refused request opens it (volumeThreshold 1), and it stays open for the whole run.
  'fl-cbo': { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile('fl-cbo'), apis: [{ name: 'bench', prefix: '/api', target: c.refused, breaker: { volumeThreshold: 1, resetTimeout: 3_600_000 } }] }) },
  // The full chain with a limit of 1 request an hour: from the warm-up on, every request is RLT.
  'fl-rlt': { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile('fl-rlt'), apis: [fullChain(c.upstream, { rateLimit: { max: 1, timeWindow: '1 hour' } })] }) },
  'fl-1000-apis': {
    script: 'sut.mjs',
    config: (c) => ({
      kind: 'faultline',
      accessLog: accessLogFile('fl-1000-apis'),
      apis: manyApis(c.upstream, 1000)
    })
  },
  // The 1,000-API row taken apart (rows part-*): each per-API feature of the full chain alone.
  ...Object.fromEntries(Object.entries(featureParts()).flatMap(([part, extra]) => {
    const api = (c, name, prefix) => ({ name, prefix, target: c.upstream, ...extra })
    return [
      [`fl-part-${part}-1`, { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile(`fl-part-${part}-1`), apis: [api(c, 'bench', '/api')] }) }],
      [`fl-part-${part}-1000`, { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile(`fl-part-${part}-1000`), apis: Array.from({ length: 1000 }, (_, i) => api(c, `api-${i}`, `/api-${i}`)) }) }]
    ]
  })),
  'fl-1m-keys': { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile('fl-1m-keys'), apis: [fullChain(c.upstream, { keys: 1_000_000 })] }) },
  'fl-1k-keys': { script: 'sut.mjs', config: (c) => ({ kind: 'faultline', accessLog: accessLogFile('fl-1k-keys'), apis: [fullChain(c.upstream, { keys: 1_000 })] }) }
}

/** Rows of the table. `base` is the row a ratio is taken against (default: bare reply-from). */
const allRows = [
  { id: 'direct', group: 'ceiling', label: 'direct upstream (ceiling)', system: 'upstream', expect: 200 },
  { id: 'nginx', group: 'peer', label: 'nginx (1 worker, keepalive)', system: 'nginx', expect: 200 },
  { id: 'reply-from', group: 'peer', label: 'bare @fastify/reply-from', system: 'reply-from', expect: 200 },
  { id: 'http-proxy', group: 'peer', label: '@fastify/http-proxy', system: 'http-proxy', expect: 200 },
  { id: 'express-hpm', group: 'peer', label: 'Express + http-proxy-middleware', system: 'express-hpm', expect: 200 },
  { id: 'fl-proxy', group: 'faultline', label: 'Faultline: proxy only', system: 'fl-proxy', expect: 200 },
  { id: 'fl-log', group: 'faultline', label: 'Faultline: proxy + access log', system: 'fl-log', expect: 200 },
  { id: 'fl-metrics', group: 'faultline', label: 'Faultline: proxy + access log + metrics', system: 'fl-metrics', expect: 200 },
  { id: 'fl-full', group: 'faultline', label: 'Faultline: full chain (memory)', system: 'fl-full', expect: 200, headers: KEY },
  { id: 'fl-redis', group: 'faultline', label: 'Faultline: full chain (Redis)', system: 'fl-redis', expect: 200, headers: KEY },
  { id: 'fl-ucf', group: 'error', label: 'error path: upstream refused (UCF)', system: 'fl-ucf', expect: 502 },
  { id: 'fl-ucf-dial', group: 'error', label: 'error path: upstream refused, dialled every time (UCF, refusedBackoff 0)', system: 'fl-ucf-dial', expect: 502 },
  { id: 'fl-cbo', group: 'error', label: 'error path: breaker open (CBO)', system: 'fl-cbo', expect: 503 },
  { id: 'fl-rlt', group: 'error', label: 'error path: rate-limited (RLT)', system: 'fl-rlt', expect: 429, headers: KEY },
  // The scale rows pick a request at random per call; so does their own baseline (same load generator cost).
  { id: 'scale-base', group: 'faultline', label: 'scale: full chain, 1 API, 1 key', system: 'fl-full', expect: 200, pick: 'random', requests: [{ path: PATH, headers: KEY }] },
  { id: 'scale-apis-one', group: 'faultline', label: 'scale: 1,000 APIs, traffic to one', system: 'fl-1000-apis', expect: 200, pick: 'random', requests: [apiRequest(500)] },
  // A longer warm-up, so that every API has met requests (its counters, its matched key, its breaker's buckets).
  { id: 'scale-apis', group: 'faultline', label: 'scale: 1,000 APIs, traffic spread', system: 'fl-1000-apis', expect: 200, pick: 'random', warmupFactor: 4, requests: spread(1000, 1000).map(apiRequest) },
  // On demand: the same 1,000 APIs with traffic alternating over 10 of them (api-0, api-100, ...):
  // what alternating between APIs costs when their data is few enough to stay in the caches.
  { id: 'scale-apis-ten', onDemand: true, group: 'faultline', label: 'scale: 1,000 APIs, traffic spread over 10', system: 'fl-1000-apis', expect: 200, pick: 'random', requests: spread(10, 10).map((i) => apiRequest(i * 100)) },
  // On demand (`--only parts --paired parts`): for each feature, 1,000 APIs with traffic spread
  // over them against 1 API, both with that feature alone. Not part of a full run.
  ...Object.keys(featureParts()).flatMap((part) => [
    { id: `part-${part}-one`, onDemand: true, group: 'faultline', label: `parts: ${part}, 1 API`, system: `fl-part-${part}-1`, expect: 200, pick: 'random', requests: [{ path: PATH, headers: KEY }] },
    { id: `part-${part}-spread`, onDemand: true, group: 'faultline', label: `parts: ${part}, 1,000 APIs, traffic spread`, system: `fl-part-${part}-1000`, expect: 200, pick: 'random', warmupFactor: 4, requests: spread(1000, 1000).map(apiRequest) }
  ]),
  // 1,000,000 keys held, traffic from 1,000 of them (spread over the table), against 1,000 keys held
  // and all of them used: the same traffic (1,000 consumers, each with its own counters and its own
  // name on the line), so the ratio is what holding a million keys costs the lookup. Against the
  // 1-key base it would also count what 1,000 consumers cost over one (reported apart: extra).
  { id: 'scale-keys', group: 'faultline', label: 'scale: 1,000,000 keys (1,000 used)', system: 'fl-1m-keys', expect: 200, pick: 'random', requests: keyTraffic(1_000_000) },
  { id: 'scale-keys-1k', group: 'faultline', label: 'scale: 1,000 keys (all used)', system: 'fl-1k-keys', expect: 200, pick: 'random', requests: keyTraffic(1_000) }
]

const smokeRows = ['direct', 'reply-from', 'fl-log', 'fl-metrics']
const onlyList = args.only?.split(',')
const runMemory = onlyList === undefined || onlyList.includes('memory')
const partRows = allRows.filter((r) => r.id.startsWith('part-')).map((r) => r.id)
let wanted = smoke ? smokeRows : (onlyList?.filter((id) => id !== 'memory').flatMap((id) => id === 'parts' ? partRows : [id]) ?? allRows.filter((r) => r.onDemand !== true).map((r) => r.id))
wanted = [...new Set(['reply-from', ...wanted, ...(wanted.some((id) => id.startsWith('fl-ucf')) || wanted.includes('fl-metrics') ? ['fl-log'] : []), ...(wanted.some((id) => id.startsWith('scale-')) ? ['scale-base'] : []), ...(wanted.includes('scale-keys') ? ['scale-keys-1k'] : [])])]
/** The targets' pairs for --paired targets: those within the interleaved rounds' noise of their goal. */
const targetPairs = ['fl-log:reply-from', 'fl-metrics:fl-log', 'fl-full:reply-from', 'fl-redis:reply-from', 'scale-apis:scale-base', 'scale-apis-one:scale-base', 'scale-keys:scale-keys-1k']
/** --paired: [a, b] row ids, each pair measured at the same time (see pairedRounds). */
const partPairs = Object.keys(featureParts()).map((part) => `part-${part}-spread:part-${part}-one`)
const pairedArg = args.paired === 'targets' ? targetPairs.join(',') : args.paired === 'parts' ? partPairs.join(',') : (args.paired ?? (smoke ? 'fl-metrics:fl-log' : ''))
const pairs = pairedArg.split(',').filter(Boolean).map((pair) => {
  const ids = pair.split(':')
  if (ids.length !== 2 || ids[0] === ids[1]) throw new TypeError(`bench: --paired takes pairs of two different rows as a:b, got "${pair}"`)
  return ids
})
for (const [a, b] of pairs) {
  for (const id of [a, b]) if (!wanted.includes(id)) wanted.push(id)
  const systemOf = (id) => allRows.find((r) => r.id === id)?.system
  if (systemOf(a) !== undefined && systemOf(a) === systemOf(b)) throw new TypeError(`bench: --paired ${a}:${b}: both rows run on one system (${systemOf(a)}); a pair needs two`)
}
const unknown = wanted.filter((id) => !allRows.some((r) => r.id === id))
if (unknown.length > 0) throw new TypeError(`bench: unknown row(s) ${unknown.join(', ')}; rows: ${allRows.map((r) => r.id).join(', ')}`)

/** The memory run: the full chain, with APIs that fail, under a mix of successes and failures. */
const mixedSystem = (c) => ({
  kind: 'faultline',
  accessLog: accessLogFile('fl-mixed'),
  apis: [
    fullChain(c.upstream),
    fullChain(c.refused, { name: 'down', prefix: '/down', breaker: { volumeThreshold: 10, resetTimeout: 1000 } }),
    fullChain(c.upstream, { name: 'limited', prefix: '/limited', rateLimit: { max: 1, timeWindow: '1 hour' } })
  ]
})
const mixedRequests = [
  ...Array.from({ length: 6 }, (_, i) => ({ path: `/api/items/${i}`, headers: KEY })),
  { path: '/api/items/7', headers: { 'x-api-key': 'not-a-known-key' } }, // AKI 401
  { path: '/limited/items/1', headers: KEY }, // RLT 429
  { path: '/down/items/1', headers: KEY }, // UCF 502, CBO 503 once its breaker opens
  { path: '/nowhere', headers: KEY } // NRF 404
]
const MIX = '6 of 10 proxied 200, then AKI 401, RLT 429, UCF 502 / CBO 503 (breaker cycling every second), NRF 404'

// ---------------------------------------------------------------------------------------------

/**
 * Scrapes of a system with metrics: every 2 s while it is loaded (half a round if rounds are
 * shorter), harsher than Prometheus's usual 15 to 60 s, so that every round pays for at least one.
 */
const scrapeEveryMs = Math.min(2000, settings.duration * 500)

async function scrape (url) {
  const res = await fetch(url)
  const text = await res.text()
  if (res.status !== 200) throw new Error(`scrape of ${url} answered ${res.status}`)
  return text
}

/** Requests the exposition counted: the sum of every faultline_requests_total series. */
function countedRequests (exposition) {
  let sum = 0
  for (const line of exposition.split('\n')) {
    if (line.startsWith('faultline_requests_total{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

/**
 * The rows in an order of their own for each round. A rotation would keep neighbours together (a
 * row would always run right after the same other row, and inherit its after-effects: the kernel
 * writing back its access log, its GC), so each round is a shuffle, seeded by the round number so
 * that runs are comparable.
 */
function shuffled (items, seed) {
  const next = seededRandom(seed * 0x9e3779b9)
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    const swap = out[i]
    out[i] = out[j]
    out[j] = swap
  }
  return out
}

/**
 * Rows whose target is a ratio between them run next to each other in every round (in a shuffled
 * order among themselves): the machine drifts less over a few seconds than over a whole round.
 */
const adjacentGroups = [
  ['fl-log', 'fl-metrics', 'fl-ucf', 'fl-ucf-dial'],
  ['scale-base', 'scale-apis-one', 'scale-apis', 'scale-apis-ten', 'scale-keys', 'scale-keys-1k']
]

/** A round's order: the groups above kept together, everything shuffled (seeded per round). */
function roundOrder (rows, seed) {
  const units = []
  const grouped = new Set()
  for (const ids of adjacentGroups) {
    const members = rows.filter((r) => ids.includes(r.id))
    if (members.length < 2) continue
    units.push(members)
    for (const m of members) grouped.add(m)
  }
  for (const r of rows) if (!grouped.has(r)) units.push([r])
  return shuffled(units, seed).flatMap((unit, i) => unit.length > 1 ? shuffled(unit, seed * 31 + i) : unit)
}

async function main () {
  const skipped = []
  const running = new Map()
  let redis
  let nginx
  const stopAll = async () => {
    for (const s of running.values()) await s.stop().catch(() => {})
    await nginx?.stop().catch(() => {})
    await redis?.stop().catch(() => {})
  }
  process.once('SIGINT', () => { stopAll().finally(() => process.exit(130)) })

  try {
    log(`${smoke ? 'smoke' : 'full'} run, rows: ${wanted.join(', ')}`)
    const load = await startChild('load.mjs', {}, { name: 'load' })
    running.set('load', load)
    const upstream = await startChild('upstream.mjs', {}, { name: 'upstream' })
    running.set('upstream', upstream)
    const refused = `http://127.0.0.1:${await freePort()}`
    const ctx = { upstream: upstream.url, refused }

    const rows = []
    for (const id of wanted) {
      const row = { ...allRows.find((r) => r.id === id), rounds: [] }
      const system = systems[row.system]
      if (system.external === 'nginx' && nginxProbe.missing !== undefined) {
        skipped.push({ id, label: row.label, reason: `${nginxProbe.missing}; as root: apt-get install -y nginx` })
        continue
      }
      if (system.needs === 'redis' && redisProbe.missing !== undefined) {
        skipped.push({ id, label: row.label, reason: `${redisProbe.missing}; as root: apt-get install -y redis-server` })
        continue
      }
      rows.push(row)
    }

    // Start every system once; they stay up (and warm) across rounds.
    if (rows.some((r) => systems[r.system].needs === 'redis')) {
      redis = await startRedis()
      ctx.redis = redis.url
    }
    const starting = []
    for (const name of new Set(rows.map((r) => r.system))) {
      if (running.has(name)) continue
      const system = systems[name]
      if (system.external === 'nginx') {
        nginx = await startNginx(upstream.url, workDir)
        running.set(name, { name, url: nginx.url, pids: nginx.pids, stop: nginx.stop })
        continue
      }
      starting.push(startChild(system.script, system.config(ctx), { name }).then(async (s) => {
        if (system.scrape) s.metricsUrl = await s.call({ type: 'metrics-url' })
        running.set(name, s)
      }))
    }
    await Promise.all(starting)
    log(`systems up: ${[...running.keys()].join(', ')}`)

    const specOf = (row, extra) => ({
      url: running.get(row.system).url,
      connections: settings.connections,
      pick: row.pick ?? 'cycle',
      requests: row.requests ?? [{ path: PATH, headers: row.headers }],
      ...extra
    })

    for (const row of rows) {
      await load.call({ type: 'run', spec: specOf(row, { duration: settings.warmup * (row.warmupFactor ?? 1) }) })
    }
    log('warm-up done')

    for (let round = 0; round < settings.rounds; round++) {
      const order = roundOrder(rows, round + 1)
      for (const row of order) {
        // Unmeasured: a system idle since its last round (about a minute in a full run) starts
        // slower, and not all systems alike (see BENCHMARKS.md, "How it measures").
        if (settings.settle > 0) await load.call({ type: 'run', spec: specOf(row, { duration: settings.settle }) })
        const system = running.get(row.system)
        const pids = system.pids()
        const cpu0 = pids.reduce((sum, pid) => sum + cpuMs(pid), 0)
        const scrapes = []
        const scraper = system.metricsUrl === undefined
          ? undefined
          : setInterval(() => { scrapes.push(scrape(system.metricsUrl).then(() => true, () => false)) }, scrapeEveryMs)
        let result
        try {
          result = await load.call({ type: 'run', spec: specOf(row, { duration: settings.duration }) })
        } finally {
          if (scraper !== undefined) clearInterval(scraper)
        }
        const cpu1 = system.pids().reduce((sum, pid) => sum + cpuMs(pid), 0)
        result.cpuUsPerRequest = result.answered > 0 ? (cpu1 - cpu0) * 1000 / result.answered : undefined
        if (scraper !== undefined) {
          const ok = await Promise.all(scrapes)
          result.scrapes = { sent: ok.length, failed: ok.filter((x) => !x).length }
        }
        row.rounds.push(result)
        log(`round ${round + 1}/${settings.rounds} ${row.id.padEnd(12)} ${Math.round(result.rps).toString().padStart(6)} req/s  p99 ${result.latency.p99} ms  ${JSON.stringify(result.statusCodes)}`)
      }
    }

    for (const row of rows) {
      const system = running.get(row.system)
      row.rssBytes = system.pids().reduce((sum, pid) => sum + rssBytes(pid), 0)
      // The metrics must have counted every request the load generator saw answered (warm-up included).
      if (system.metricsUrl !== undefined) row.metricsCounted = countedRequests(await scrape(system.metricsUrl))
    }

    let paired
    if (pairs.length > 0) {
      const load2 = await startChild('load.mjs', {}, { name: 'load-2' })
      running.set('load-2', load2)
      paired = await pairedRounds([load, load2], rows, running, specOf)
    }

    let memory
    if (runMemory) memory = await memoryRun(load, ctx, running)

    return { rows, skipped, memory, paired }
  } finally {
    await stopAll()
    rmSync(workDir, { recursive: true, force: true })
  }
}

/**
 * Paired rounds: both rows of a pair loaded at the same time, each by its own load generator with
 * half the connections, for `duration` seconds. Whatever else the machine is doing at that moment
 * slows both alike, so their per-round ratio is far steadier than that of two rows run one after
 * the other. The two processes compete for the same two cores, so the ratio of their throughputs
 * follows the ratio of their CPU cost per request; both are reported.
 */
async function pairedRounds (loads, rows, running, specOf) {
  const byId = new Map(rows.map((r) => [r.id, r]))
  const measured = pairs.filter(([a, b]) => byId.has(a) && byId.has(b)).map(([a, b]) => ({ a, b, rounds: [] }))
  const half = Math.max(1, Math.floor(settings.connections / 2))
  const both = async (pair, extra) => await Promise.all([pair.a, pair.b].map(async (id, i) =>
    await loads[i].call({ type: 'run', spec: specOf(byId.get(id), { connections: half, ...extra }) })))
  for (let round = 0; round < settings.pairedRounds; round++) {
    for (const pair of shuffled(measured, round + 101)) {
      if (settings.settle > 0) await both(pair, { duration: settings.settle })
      const systems = [pair.a, pair.b].map((id) => running.get(byId.get(id).system))
      const cpu0 = systems.map((s) => s.pids().reduce((sum, pid) => sum + cpuMs(pid), 0))
      // A system with metrics is scraped as in the interleaved rounds.
      const scrapers = systems.filter((s) => s.metricsUrl !== undefined)
        .map((s) => setInterval(() => { scrape(s.metricsUrl).catch(() => {}) }, scrapeEveryMs))
      let results
      try {
        results = await both(pair, { duration: settings.duration })
      } finally {
        for (const scraper of scrapers) clearInterval(scraper)
      }
      const cpuUs = systems.map((s, i) => (s.pids().reduce((sum, pid) => sum + cpuMs(pid), 0) - cpu0[i]) * 1000 / Math.max(1, results[i].answered))
      const [ra, rb] = results
      const expected = (r, id) => (r.statusCodes[byId.get(id).expect] ?? 0) / Math.max(1, r.answered)
      pair.rounds.push({
        a: { rps: ra.rps, cpuUsPerRequest: cpuUs[0], p99: ra.latency.p99, expectedShare: expected(ra, pair.a) },
        b: { rps: rb.rps, cpuUsPerRequest: cpuUs[1], p99: rb.latency.p99, expectedShare: expected(rb, pair.b) }
      })
      log(`paired ${round + 1}/${settings.pairedRounds} ${pair.a} ${Math.round(ra.rps)} req/s ${Math.round(cpuUs[0])} µs/req | ${pair.b} ${Math.round(rb.rps)} req/s ${Math.round(cpuUs[1])} µs/req`)
    }
  }
  return measured
}

async function memoryRun (load, ctx, running) {
  const system = await startChild('sut.mjs', mixedSystem(ctx), { name: 'fl-mixed' })
  running.set('fl-mixed', system)
  const spec = { url: system.url, connections: settings.connections, pick: 'cycle', requests: mixedRequests }
  const samples = []
  const statusCodes = {}
  const warm = await load.call({ type: 'run', spec: { ...spec, amount: settings.mixedWarmup } })
  let requests = warm.answered
  const m0 = await system.call({ type: 'memory' })
  samples.push({ label: 'warm-up', requests, rss: m0.rss, heapUsed: m0.heapUsed, rps: warm.rps })
  log(`memory after warm-up (${requests} requests): rss ${(m0.rss / 1048576).toFixed(1)} MiB`)
  const chunk = Math.ceil(settings.mixedRequests / settings.mixedChunks)
  let sent = 0
  while (sent < settings.mixedRequests) {
    const amount = Math.min(chunk, settings.mixedRequests - sent)
    const r = await load.call({ type: 'run', spec: { ...spec, amount } })
    sent += amount
    requests += r.answered
    for (const [code, n] of Object.entries(r.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + n
    const m = await system.call({ type: 'memory' })
    samples.push({ label: `+${sent.toLocaleString('en-US')} mixed`, requests, rss: m.rss, heapUsed: m.heapUsed, rps: r.rps })
    log(`memory after ${sent} mixed requests: rss ${(m.rss / 1048576).toFixed(1)} MiB, ${Math.round(r.rps)} req/s`)
  }
  await system.stop()
  running.delete('fl-mixed')
  const last = samples[samples.length - 1]
  return { mix: MIX, mixedRequests: settings.mixedRequests, samples, statusCodes, rssRatio: last.rss / m0.rss, heapRatio: last.heapUsed / m0.heapUsed }
}

function summarise ({ rows, skipped, memory, paired }) {
  const byId = new Map(rows.map((r) => [r.id, r]))
  const baseline = byId.get('reply-from')
  for (const row of rows) {
    const rs = row.rounds
    row.median = {
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.latency.p50)),
      p99: median(rs.map((r) => r.latency.p99)),
      cpuUsPerRequest: median(rs.map((r) => r.cpuUsPerRequest))
    }
    const answered = rs.reduce((s, r) => s + r.answered, 0)
    const expected = rs.reduce((s, r) => s + (r.statusCodes[row.expect] ?? 0), 0)
    row.expectedShare = answered === 0 ? 0 : expected / answered
    row.valid = row.expectedShare >= 0.99
    if (row.metricsCounted !== undefined) {
      row.scrapes = {
        everyMs: scrapeEveryMs,
        sent: rs.reduce((s, r) => s + (r.scrapes?.sent ?? 0), 0),
        failed: rs.reduce((s, r) => s + (r.scrapes?.failed ?? 0), 0),
        counted: row.metricsCounted,
        answered
      }
      if (row.scrapes.failed > 0 || row.metricsCounted < answered) row.valid = false
    }
    row.ratio = median(rs.map((r, i) => r.rps / baseline.rounds[i].rps))
    row.p99Ratio = median(rs.map((r, i) => r.latency.p99 / baseline.rounds[i].latency.p99))
  }
  /** Median of per-round throughput ratios between two rows of this run. */
  const ratio = (a, b) => {
    const ra = byId.get(a)
    const rb = byId.get(b)
    if (ra === undefined || rb === undefined) return undefined
    return median(ra.rounds.map((r, i) => r.rps / rb.rounds[i].rps))
  }
  for (const pair of paired ?? []) {
    const rs = pair.rounds
    pair.label = { a: byId.get(pair.a).label, b: byId.get(pair.b).label }
    // Throughput of a over b, and b's CPU per request over a's: both above 1 when a is the cheaper.
    // Each with its median's 95% interval (lib/stats.mjs), which the targets' verdicts come from.
    pair.rpsRatio = summariseRatios(rs.map((r) => r.a.rps / r.b.rps))
    pair.cpuRatio = summariseRatios(rs.map((r) => r.b.cpuUsPerRequest / r.a.cpuUsPerRequest))
    pair.valid = rs.every((r) => r.a.expectedShare >= 0.99 && r.b.expectedShare >= 0.99)
  }
  const pairedRatio = (a, b) => paired?.find((p) => p.a === a && p.b === b && p.valid)?.rpsRatio
  const targets = []
  const target = (text, value, op, goal, pair) => {
    if (value === undefined) return
    const entry = { text, value, op, goal, met: op === '>=' ? value >= goal : value <= goal }
    // The rows whose paired rounds settle it (bench/pool.mjs pools them over several runs).
    if (pair !== undefined) entry.pair = pair
    const concurrent = pair === undefined ? undefined : pairedRatio(...pair)
    if (concurrent !== undefined) {
      entry.paired = concurrent.median
      // Met or missed only when the whole 95% interval of the paired median is on one side of the goal.
      entry.pairedInterval = { low: concurrent.low, high: concurrent.high, confidence: concurrent.confidence }
      entry.pairedVerdict = verdict(entry.pairedInterval, op, goal)
    }
    targets.push(entry)
  }
  target('proxy + access log vs bare reply-from (throughput)', byId.get('fl-log')?.ratio, '>=', 0.95, ['fl-log', 'reply-from'])
  target('full chain (memory) vs bare reply-from (throughput)', byId.get('fl-full')?.ratio, '>=', 0.85, ['fl-full', 'reply-from'])
  target('full chain (Redis) vs bare reply-from (throughput)', byId.get('fl-redis')?.ratio, '>=', 0.6, ['fl-redis', 'reply-from'])
  target('UCF error path vs success path (proxy + access log)', ratio('fl-ucf', 'fl-log'), '>=', 1.0, ['fl-ucf', 'fl-log'])
  target('metrics on / off (proxy + access log, throughput)', ratio('fl-metrics', 'fl-log'), '>=', 0.97, ['fl-metrics', 'fl-log'])
  target('CBO fast-fail vs bare reply-from (throughput)', byId.get('fl-cbo')?.ratio, '>=', 2.0, ['fl-cbo', 'reply-from'])
  target('1,000 APIs vs 1 API (full chain, traffic spread over all)', ratio('scale-apis', 'scale-base'), '>=', 0.95, ['scale-apis', 'scale-base'])
  target('1,000 APIs vs 1 API (full chain, traffic to one)', ratio('scale-apis-one', 'scale-base'), '>=', 0.95, ['scale-apis-one', 'scale-base'])
  target('1,000,000 keys vs 1,000 (full chain, the same traffic from 1,000 keys): lookup flat', ratio('scale-keys', 'scale-keys-1k'), '>=', 0.95, ['scale-keys', 'scale-keys-1k'])
  if (memory !== undefined) target(`RSS after ${memory.mixedRequests.toLocaleString('en-US')} mixed requests vs after warm-up`, memory.rssRatio, '<=', 1.1)
  target('p99 latency, full chain vs bare reply-from (50 connections)', byId.get('fl-full')?.p99Ratio, '<=', 1.5)
  const extra = {
    cboVsUcf: ratio('fl-cbo', 'fl-ucf'),
    ucfDialVsSuccess: ratio('fl-ucf-dial', 'fl-log'),
    rltVsFull: ratio('fl-rlt', 'fl-full'),
    // What traffic from 1,000 consumers costs over traffic from one (each its counters, its line).
    consumersVsOne: ratio('scale-keys-1k', 'scale-base'),
    millionKeysVsOne: ratio('scale-keys', 'scale-base')
  }
  return { rows, skipped, memory, paired, targets, extra }
}

const measured = await main()
const summary = summarise(measured)
const now = new Date()
const stamp = now.toISOString().slice(0, 16).replace(':', '')
const results = {
  date: now.toISOString(),
  commit,
  mode: smoke ? 'smoke' : 'full',
  elapsedSeconds: (performance.now() - started) / 1000,
  machine: machineInfo(),
  versions,
  settings: { ...settings, nodeFlags, upstreamBodyBytes: 70, command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim() },
  systemFlags,
  ...summary
}
mkdirSync(outDir, { recursive: true })
const base = path.join(outDir, stamp)
writeFileSync(`${base}.json`, JSON.stringify(results, null, 2) + '\n')
const md = markdown(results)
writeFileSync(`${base}.md`, `# Faultline benchmark, ${results.date}\n\n${md}\n![throughput ratios](./${stamp}.svg)\n`)
writeFileSync(`${base}.svg`, chartSvg(results))
log(`results: ${base}.json, .md, .svg`)

// A full run refreshes the table and the chart that BENCHMARKS.md shows.
const docs = path.join(root, 'BENCHMARKS.md')
if (!smoke && !args.only && !args['no-docs'] && args.out === undefined && existsSync(docs)) {
  const text = readFileSync(docs, 'utf8')
  const begin = '<!-- bench:results:begin -->'
  const end = '<!-- bench:results:end -->'
  const a = text.indexOf(begin)
  const b = text.indexOf(end)
  if (a !== -1 && b > a) {
    copyFileSync(`${base}.svg`, path.join(here, 'results', 'latest.svg'))
    const block = `${begin}\n<!-- written by bench/run.mjs from bench/results/${stamp}.json -->\n\n${md}\n![Throughput relative to bare reply-from](bench/results/latest.svg)\n\n${end}`
    writeFileSync(docs, text.slice(0, a) + block + text.slice(b + end.length))
    log('BENCHMARKS.md updated')
  }
}
process.stdout.write(`${JSON.stringify({ json: `${base}.json`, markdown: `${base}.md`, svg: `${base}.svg`, targets: results.targets })}\n`)
