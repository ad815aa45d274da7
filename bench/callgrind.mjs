/**
 * What a request costs the gateway in instructions and cache misses, counted by valgrind's
 * callgrind rather than timed: the counts do not depend on the machine's load, so two
 * configurations compare without the noise that wall-clock rounds fight (run.mjs). What runs in a
 * counted window still differs a little from run to run (the tiers V8 has the code in, when it
 * allocates): across runs, compare the functions a change touched (BENCHMARKS.md).
 *
 *   node bench/callgrind.mjs                       # api, apis-one, apis-spread: about 10 minutes
 *   node bench/callgrind.mjs --scenarios api,apis-ten --compare apis-ten:api
 *
 * Each scenario is one gateway process (bench/lib/sut.mjs, the harness's full chain) run under
 * `valgrind --tool=callgrind` with V8's --perf-basic-prof, so JavaScript functions have names.
 * This driver sends it --warmup requests with counting off, then --requests with counting on
 * (`callgrind_control`), over --connections kept-alive connections, and reads the counts per
 * request: instructions (Ir), first-level data-cache misses (D1miss) and last-level ones (LLmiss) of
 * a simulated cache shaped like this machine's (48 KiB L1d, 2 MiB L2 per core; --d1 and --ll
 * change it, --no-cache counts instructions only). What it cannot count is a TLB miss, nor what a
 * miss costs in time.
 *
 * Scenarios (--apis N, default 1,000): api (1 API), apis-one (N APIs, traffic to one),
 * apis-ten (N APIs, traffic alternating over 10), apis-spread (N APIs, traffic over all); keys-1k
 * and keys-1m (1 API holding 1,000 or 1,000,000 keys, traffic from 1,000 of them).
 * --compare a:b,...: for each pair, b minus a per function of the request path (default: each
 * scenario against the one before it). Garbage collection and compilation are reported apart: how
 * much of them lands in a window of a few thousand requests depends on when a full collection
 * starts. Timer callbacks are not counted at all: they run by the clock, and under valgrind a
 * request takes ~50 times longer, so they would weigh ~50 times more per request than at full
 * speed (the breakers' rotation, once a second, of 1,000 APIs weighed more than a request).
 *
 * Other options: --warmup N (30000), --requests N (4000), --connections N (8), --parallel N
 * (scenarios at once, 2), --top N (25), --out DIR (default bench/results: callgrind-<time>.md and
 * .json; callgrind's own files stay in a temporary directory, named at the end), --from DIR (report
 * again on the files of an earlier run, with other --compare or --top; its --scenarios), --sort EVENT
 * (what the per-function tables are ordered by: Ir, D1miss or LLmiss, the default with a cache).
 * Needs valgrind (Debian: apt-get install -y valgrind).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { diffFunctions, functionName, hasEvent, parseAnnotate, parsePerfMap, perRequest } from './lib/callgrind.mjs'
import { KEY, PATH, apiRequest, fullChain, keyTraffic, manyApis, spread } from './lib/chains.mjs'
import { startChildProcess } from './lib/children.mjs'
import { codeVersion } from './lib/commit.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.dirname(here)

const { values: args } = parseArgs({
  options: {
    scenarios: { type: 'string', default: 'api,apis-one,apis-spread' },
    compare: { type: 'string' },
    apis: { type: 'string', default: '1000' },
    warmup: { type: 'string', default: '30000' },
    requests: { type: 'string', default: '4000' },
    connections: { type: 'string', default: '8' },
    parallel: { type: 'string', default: '2' },
    top: { type: 'string', default: '25' },
    d1: { type: 'string', default: '49152,12,64' },
    ll: { type: 'string', default: '2097152,16,64' },
    'no-cache': { type: 'boolean', default: false },
    out: { type: 'string' },
    from: { type: 'string' },
    sort: { type: 'string' }
  }
})
const numbers = {}
for (const name of ['apis', 'warmup', 'requests', 'connections', 'parallel', 'top']) {
  const value = Number(args[name])
  if (!Number.isInteger(value) || value < (name === 'warmup' ? 0 : 1)) throw new TypeError(`callgrind: --${name} must be a ${name === 'warmup' ? 'non-negative' : 'positive'} integer, got ${args[name]}`)
  numbers[name] = value
}
const apis = numbers.apis
const withCache = !args['no-cache']

/** Scenario name -> the gateway's APIs and the requests sent to it (round-robin). */
const scenarioDefs = {
  api: { label: 'full chain, 1 API', apis: (upstream) => [fullChain(upstream)], requests: () => [{ path: PATH, headers: KEY }] },
  'apis-one': { label: `full chain, ${apis} APIs, traffic to one`, apis: (upstream) => manyApis(upstream, apis), requests: () => [apiRequest(Math.floor(apis / 2))] },
  'apis-ten': { label: `full chain, ${apis} APIs, traffic over 10`, apis: (upstream) => manyApis(upstream, apis), requests: () => Array.from({ length: Math.min(10, apis) }, (_, i) => apiRequest(Math.floor(i * apis / Math.min(10, apis)))) },
  'apis-spread': { label: `full chain, ${apis} APIs, traffic over all`, apis: (upstream) => manyApis(upstream, apis), requests: () => spread(apis, apis).map(apiRequest) },
  // The key table's size alone: the same traffic (1,000 consumers) against 1,000 and 1,000,000 keys held.
  'keys-1k': { label: 'full chain, 1 API, 1,000 keys, all used', apis: (upstream) => [fullChain(upstream, { keys: 1000 })], requests: () => keyTraffic(1000) },
  'keys-1m': { label: 'full chain, 1 API, 1,000,000 keys, 1,000 used', apis: (upstream) => [fullChain(upstream, { keys: 1_000_000 })], requests: () => keyTraffic(1_000_000) }
}

const scenarios = args.scenarios.split(',').filter(Boolean)
for (const name of scenarios) {
  if (scenarioDefs[name] === undefined) throw new TypeError(`callgrind: unknown scenario "${name}" (known: ${Object.keys(scenarioDefs).join(', ')})`)
}
const comparisons = (args.compare ?? scenarios.slice(1).map((b, i) => `${scenarios[i]}:${b}`).join(',')).split(',').filter(Boolean).map((pair) => {
  const [a, b] = pair.split(':')
  if (!scenarios.includes(a) || !scenarios.includes(b) || a === b) throw new TypeError(`callgrind: --compare takes pairs a:b of two of the run's scenarios, got "${pair}"`)
  return [a, b]
})

try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' })
} catch {
  throw new Error('callgrind: valgrind is not installed (Debian: apt-get install -y valgrind)')
}

const stamp = new Date().toISOString().slice(0, 16).replace(/:/g, '')
// The report goes to --out (bench/results); callgrind's files, tens of MiB, to a directory of their own.
const outDir = path.resolve(args.out ?? path.join(here, 'results'))
const workDir = args.from !== undefined ? path.resolve(args.from) : mkdtempSync(path.join(os.tmpdir(), 'faultline-callgrind-'))
mkdirSync(outDir, { recursive: true })
const started = performance.now()
function log (line) {
  process.stderr.write(`[callgrind ${((performance.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`)
}

/** Sends `count` requests over `connections` kept-alive connections; rejects on any non-200 answer. */
async function send (url, requests, count, offset, agent) {
  const { hostname, port } = new URL(url)
  let next = 0
  const one = (request) => new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: request.path, headers: request.headers, agent }, (res) => {
      res.resume()
      res.once('end', () => res.statusCode === 200 ? resolve() : reject(new Error(`${request.path}: status ${res.statusCode}`)))
    })
    req.once('error', reject)
    req.end()
  })
  await Promise.all(Array.from({ length: numbers.connections }, async () => {
    while (next < count) {
      const i = next++
      await one(requests[(offset + i) % requests.length])
    }
  }))
}

function control (pid, ...command) {
  execFileSync('callgrind_control', [...command, String(pid)], { stdio: 'ignore' })
}

/** One scenario: its gateway under callgrind, warmed up, then counted. */
async function measure (name, upstream) {
  const def = scenarioDefs[name]
  const valgrindArgs = [
    '--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file',
    // Timer callbacks (see above): everything under Node's RunTimers goes uncounted
    // (--toggle-collect alone would also turn counting off outside it).
    '--toggle-collect=node::Environment::RunTimers*', '--collect-atstart=yes',
    `--callgrind-out-file=${path.join(workDir, `${name}.%p.callgrind`)}`,
    `--log-file=${path.join(workDir, `${name}.%p.valgrind.log`)}`,
    ...(withCache ? ['--cache-sim=yes', `--D1=${args.d1}`, `--LL=${args.ll}`] : [])
  ]
  const t0 = performance.now()
  // In workDir: --perf-basic-prof also has V8 write a log of its own into the working directory.
  const system = await startChildProcess(path.join(here, 'lib', 'sut.mjs'), {
    kind: 'faultline',
    accessLog: path.join(workDir, `${name}.access.log`),
    apis: def.apis(upstream)
  }, { name, timeout: 30 * 60_000, execPath: 'valgrind', execArgv: [...valgrindArgs, process.execPath, '--perf-basic-prof', '--expose-gc'], cwd: workDir })
  log(`${name}: ready in ${((performance.now() - t0) / 1000).toFixed(0)} s (pid ${system.pid})`)
  const agent = new http.Agent({ keepAlive: true, maxSockets: numbers.connections })
  const requests = def.requests()
  try {
    await send(system.url, requests, numbers.warmup, 0, agent)
    control(system.pid, '--instr=on')
    await send(system.url, requests, numbers.requests, numbers.warmup, agent)
    control(system.pid, '--dump')
    control(system.pid, '--instr=off')
  } finally {
    agent.destroy()
    await system.stop()
  }
  // The perf map moves beside the dump, so that `--from` can read the run again.
  const perfMapFile = `/tmp/perf-${system.pid}.map`
  if (existsSync(perfMapFile)) renameSync(perfMapFile, path.join(workDir, `${name}.${system.pid}.perf.map`))
  writeFileSync(path.join(workDir, `${name}.json`), JSON.stringify({ name, label: def.label, pid: system.pid, requests: numbers.requests }) + '\n')
  log(`${name}: counted ${numbers.requests} requests in ${((performance.now() - t0) / 1000).toFixed(0)} s`)
}

/** A measured scenario's counts, per request, read from the files its measure() left in `dir`. */
function analyse (dir, name) {
  const { label, pid, requests } = JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8'))
  // The dump asked for after the counted requests (callgrind names it .1); the one callgrind
  // writes at exit holds only what ran after it.
  const dump = `${name}.${pid}.callgrind.1`
  if (!existsSync(path.join(dir, dump))) throw new Error(`callgrind: ${name} left no dump in ${dir}`)
  const mapFile = path.join(dir, `${name}.${pid}.perf.map`)
  const perfMap = existsSync(mapFile) ? parsePerfMap(readFileSync(mapFile, 'utf8')) : []
  const annotated = execFileSync('callgrind_annotate', ['--auto=no', '--threshold=100', path.join(dir, dump)], { maxBuffer: 1 << 28, encoding: 'utf8' })
  const parsed = parseAnnotate(annotated)
  parsed.functions = parsed.functions.map((fn) => ({ name: functionName(fn.name, perfMap, root), counts: fn.counts }))
  return { name, label, requests, parsed, perRequest: perRequest(parsed, requests) }
}

// What the counts were taken with, for the report (the measuring run's, with --from).
const runFile = path.join(workDir, 'run.json')
if (args.from === undefined) {
  writeFileSync(runFile, JSON.stringify({ node: process.version, commit: codeVersion(root), ...numbers, cache: withCache ? { d1: args.d1, ll: args.ll } : null }) + '\n')
}
const run = JSON.parse(readFileSync(runFile, 'utf8'))

if (args.from === undefined) {
  const upstream = await startChildProcess(path.join(here, 'lib', 'upstream.mjs'), {}, { name: 'upstream' })
  try {
    log(`scenarios ${scenarios.join(', ')}; ${numbers.warmup} requests of warm-up, ${numbers.requests} counted; cache ${withCache ? `D1 ${args.d1}, LL ${args.ll}` : 'off'}`)
    const queue = [...scenarios]
    await Promise.all(Array.from({ length: Math.min(numbers.parallel, queue.length) }, async () => {
      while (queue.length > 0) await measure(queue.shift(), upstream.url)
    }))
  } finally {
    await upstream.stop()
  }
}
const results = new Map(scenarios.map((name) => [name, analyse(workDir, name)]))

// ---------------------------------------------------------------------------------------------
// Report

const events = ['Ir', 'D1miss', 'LLmiss'].filter((e) => hasEvent([...results.values()][0].parsed.events, e))
const fmt = (n) => n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1)
const lines = [
  `# Instruction and cache-miss counts per request (${new Date().toISOString()})`,
  '',
  `Commit ${run.commit ?? 'unknown'}, Node ${run.node}; ${run.warmup} requests of warm-up, ${run.requests} counted, ${run.connections} connections; ` +
    (run.cache !== null ? `simulated caches: D1 ${run.cache.d1}, LL ${run.cache.ll} (size, ways, line bytes).` : 'no cache simulation.'),
  'Request path: every function but the garbage collector and the compilers (runtime), whose share of a window depends on when a full collection falls in it. ' +
    'Timer callbacks are not counted (they run by the clock, ~50 times more often per request under valgrind than at full speed).',
  '',
  `| Scenario | ${events.map((e) => `${e}: request path | ${e}: runtime`).join(' | ')} |`,
  `|---|${events.map(() => '---:|---:').join('|')}|`
]
for (const name of scenarios) {
  const r = results.get(name)
  lines.push(`| ${name} (${r.label}) | ${events.map((e) => `${fmt(r.perRequest.requestPath[e])} | ${fmt(r.perRequest.runtime[e])}`).join(' | ')} |`)
}
const sortBy = args.sort ?? (events.includes('LLmiss') ? 'LLmiss' : 'Ir')
if (!events.includes(sortBy)) throw new TypeError(`callgrind: --sort takes one of ${events.join(', ')}, got ${sortBy}`)
for (const [a, b] of comparisons) {
  const ra = results.get(a)
  const rb = results.get(b)
  lines.push('', `## ${b} against ${a}`, '')
  lines.push(events.map((e) => `${e} on the request path: ${(rb.perRequest.requestPath[e] / ra.perRequest.requestPath[e]).toFixed(3)}x (${fmt(ra.perRequest.requestPath[e])} -> ${fmt(rb.perRequest.requestPath[e])})`).join('; ') + '.')
  lines.push('', `Functions of the request path whose ${sortBy} per request differs most:`, '', `| ${sortBy}: ${a} | ${sortBy}: ${b} | difference | function |`, '|---:|---:|---:|---|')
  for (const row of diffFunctions(ra.parsed, ra.requests, rb.parsed, rb.requests, sortBy, numbers.top)) {
    lines.push(`| ${fmt(row.a)} | ${fmt(row.b)} | ${row.diff >= 0 ? '+' : ''}${fmt(row.diff)} | \`${row.name.replace(/\|/g, '\\|')}\` |`)
  }
}
const report = lines.join('\n') + '\n'
const base = path.join(outDir, `callgrind-${stamp}`)
writeFileSync(`${base}.md`, report)
writeFileSync(`${base}.json`, JSON.stringify({
  ...run,
  scenarios: scenarios.map((name) => ({ name, label: results.get(name).label, requests: results.get(name).requests, perRequest: results.get(name).perRequest }))
}, null, 2) + '\n')
process.stdout.write(report)
log(`results: ${base}.md and .json; callgrind's files: ${workDir}`)
