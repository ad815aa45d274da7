/**
 * What the metrics cost a gateway: throughput of the same gateway (buildGateway: core, access log,
 * one proxied API with a circuit breaker) with `metrics:` on and off, side by side. Each gateway
 * runs in its own process, the upstream in a third; autocannon loads one gateway at a time, in
 * interleaved rounds (on/off, then off/on, ...), and the medians are compared. The gateway with
 * metrics is scraped every 5 s while it is loaded, as a Prometheus would.
 *
 *   npx tsc -b tsconfig.build.json && node packages/metrics/bench/metrics-cost.mjs
 *   ROUNDS=8 DURATION=5 CONNECTIONS=32 node packages/metrics/bench/metrics-cost.mjs
 *
 * It also times the metrics sink alone on finished records of real requests (nanoseconds per
 * record, in one process, no network): a figure a busy machine disturbs much less.
 *
 * Loopback only; every run is bounded by ROUNDS x DURATION.
 */
import { fork } from 'node:child_process'
import http from 'node:http'
import { fileURLToPath } from 'node:url'

const self = fileURLToPath(import.meta.url)
const role = process.argv[2]

if (role === 'upstream') {
  const body = JSON.stringify({ ok: true })
  const server = http.createServer((req, res) => {
    req.resume()
    res.setHeader('content-type', 'application/json')
    res.end(body)
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
  process.on('disconnect', () => process.exit(0))
} else if (role === 'gateway') {
  const { buildGateway } = await import('@faultline/gateway')
  const withMetrics = process.argv[3] === 'on'
  const upstreamPort = Number(process.argv[4])
  const config = {
    server: { port: 0 },
    // Access lines go to stdout, which the parent discards: the cost of writing them is kept.
    accessLog: { enabled: true, destination: 'stdout' },
    apis: [{
      name: 'Items',
      prefix: '/api',
      upstream: { targets: [`http://127.0.0.1:${upstreamPort}`] },
      circuitBreaker: { volumeThreshold: 1000 }
    }]
  }
  if (withMetrics) config.metrics = { enabled: true, port: 0 }
  const app = await buildGateway(config, { logger: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  process.send({ port: app.server.address().port, metricsPort: withMetrics ? app.faultlineMetrics.address.port : undefined })
  // CPU time is less sensitive than throughput to other work on a shared machine: report it too.
  process.on('message', (m) => { if (m === 'cpu') process.send({ cpu: process.cpuUsage() }) })
  process.on('disconnect', () => { app.close().then(() => process.exit(0)) })
} else {
  await main()
}

function start (args) {
  const child = fork(self, args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('message', (info) => resolve({ child, ...info }))
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)))
  })
}

function cpuOf (child) {
  return new Promise((resolve) => {
    const onMessage = (m) => {
      if (m.cpu === undefined) return
      child.off('message', onMessage)
      resolve(m.cpu.user + m.cpu.system)
    }
    child.on('message', onMessage)
    child.send('cpu')
  })
}

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

async function scrape (port) {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  await res.text()
  if (res.status !== 200) throw new Error(`scrape answered ${res.status}`)
}

/** ns the metrics sink takes per finished record, replaying records of real requests. */
async function sinkCost () {
  const { default: Fastify } = await import('fastify')
  const { default: core } = await import('@faultline/core')
  const { default: metrics } = await import('@faultline/metrics')
  const { default: breaker } = await import('@faultline/breaker')
  const { default: proxy } = await import('@faultline/proxy')
  const upstream = http.createServer((req, res) => { res.statusCode = req.url.includes('fail') ? 503 : 200; res.end('ok') })
  await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const app = Fastify()
  await app.register(core)
  const records = []
  let sink
  await app.register(async function capture (instance) {
    // Catch the sink metrics adds, and every finished record, to replay them below.
    const addSink = instance.faultline.addSink
    instance.faultline.addSink = (fn) => { sink = fn; addSink(fn) }
    addSink((record) => records.push(record))
    await instance.register(metrics)
    instance.faultline.addSink = addSink
  })
  await app.register(async (api) => {
    await api.register(breaker, { volumeThreshold: 1000 })
    await api.register(proxy, { name: 'Items', upstream: { targets: [`http://127.0.0.1:${upstream.address().port}`] } })
  }, { prefix: '/api' })
  await app.ready()
  for (const url of ['/api/items/1', '/api/items/2', '/api/fail', '/nowhere', '/api/items/3']) await app.inject(url)
  await app.inject({ method: 'DELETE', url: '/api/items/4' })
  const N = 1_000_000
  let best = Infinity
  for (let run = 0; run < 5; run++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < N; i++) sink(records[i % records.length], null)
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / N)
  }
  await app.close()
  upstream.close()
  return best
}

async function main () {
  const ns = await sinkCost()
  console.log(`\nmetrics sink: ${ns.toFixed(0)} ns per finished record (best of 5 x 1,000,000, records of 6 real requests: 2xx, URS, NRF, MNA)`)

  const { default: autocannon } = await import('autocannon')
  const rounds = Number(process.env.ROUNDS ?? 6)
  if (!(rounds > 0)) return
  const duration = Number(process.env.DURATION ?? 4)
  const connections = Number(process.env.CONNECTIONS ?? 16)

  const upstream = await start(['upstream'])
  const gateways = {
    off: await start(['gateway', 'off', String(upstream.port)]),
    on: await start(['gateway', 'on', String(upstream.port)])
  }

  async function load (name, seconds) {
    const gw = gateways[name]
    const scraper = gw.metricsPort === undefined ? undefined : setInterval(() => { scrape(gw.metricsPort).catch(() => {}) }, 5000)
    try {
      const cpuBefore = await cpuOf(gw.child)
      const result = await autocannon({ url: `http://127.0.0.1:${gw.port}/api/items/42`, connections, duration: seconds })
      const cpu = await cpuOf(gw.child) - cpuBefore
      if (result.non2xx > 0 || result.errors > 0) throw new Error(`${name}: ${result.non2xx} non-2xx answers, ${result.errors} errors`)
      return { rps: result.requests.average, cpuPerRequest: cpu / result.requests.total }
    } finally {
      if (scraper !== undefined) clearInterval(scraper)
    }
  }

  // Warm both up (JIT, connection pools) before measuring.
  await load('off', 2)
  await load('on', 2)

  const rps = { off: [], on: [] }
  const cpu = { off: [], on: [] }
  console.log(`\nmetrics on vs off (node ${process.version}, ${rounds} rounds x ${duration} s each, ${connections} connections)\n`)
  console.log('| round | off (req/s) | on (req/s) | on / off | off (gateway CPU µs/req) | on (gateway CPU µs/req) |')
  console.log('|---|---|---|---|---|---|')
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ['on', 'off'] : ['off', 'on']
    const round = {}
    for (const name of order) round[name] = await load(name, duration)
    for (const name of ['off', 'on']) {
      rps[name].push(round[name].rps)
      cpu[name].push(round[name].cpuPerRequest)
    }
    console.log(`| ${r + 1} | ${Math.round(round.off.rps)} | ${Math.round(round.on.rps)} | ${(round.on.rps / round.off.rps).toFixed(3)} | ${round.off.cpuPerRequest.toFixed(1)} | ${round.on.cpuPerRequest.toFixed(1)} |`)
  }
  await scrape(gateways.on.metricsPort)
  const off = median(rps.off)
  const on = median(rps.on)
  const cpuOff = median(cpu.off)
  const cpuOn = median(cpu.on)
  console.log(`| median | ${Math.round(off)} | ${Math.round(on)} | **${(on / off).toFixed(3)}** | ${cpuOff.toFixed(1)} | ${cpuOn.toFixed(1)} |`)
  console.log(`\nthroughput, ratio of medians (metrics on / off): ${(on / off).toFixed(3)} (target >= 0.97)`)
  console.log(`gateway CPU per request, metrics on / off: ${(cpuOn / cpuOff).toFixed(3)} (${(cpuOn - cpuOff).toFixed(1)} µs more with metrics)`)

  for (const p of [gateways.off, gateways.on, upstream]) p.child.disconnect()
}
