/**
 * The load generator: autocannon in a process of its own, driven by the harness over IPC.
 *   { type: 'run', id, spec } -> { type: 'reply', id, value: summary }
 * spec: { url, connections, duration (s) | amount (requests), requests: [{ path, headers? }],
 *         pick: 'cycle' | 'random' }
 * 'cycle' sends each connection through the list in order (autocannon's own behaviour);
 * 'random' picks an entry per request, so that connections do not hit the same API in lockstep.
 */
import autocannon from 'autocannon'
import { serveChild } from './child.mjs'

function requestsOf (spec) {
  if (spec.pick !== 'random') return spec.requests.map((r) => ({ method: 'GET', ...r }))
  const list = spec.requests
  return [{
    method: 'GET',
    setupRequest (req) {
      const r = list[Math.floor(Math.random() * list.length)]
      req.path = r.path
      req.headers = r.headers ?? {}
      return req
    }
  }]
}

async function run (spec) {
  const options = {
    url: spec.url,
    connections: spec.connections,
    pipelining: 1,
    requests: requestsOf(spec),
    // A run must never hang: a request that gets no answer in 10 s counts as a timeout.
    timeout: 10
  }
  if (spec.amount !== undefined) options.amount = spec.amount
  else options.duration = spec.duration
  const cpu0 = process.cpuUsage()
  const result = await autocannon(options)
  const cpu = process.cpuUsage(cpu0)
  const statusCodes = {}
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stats.count
  const answered = Object.values(statusCodes).reduce((a, b) => a + b, 0)
  return {
    answered,
    seconds: result.duration,
    rps: answered / result.duration,
    latency: {
      mean: result.latency.mean,
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max
    },
    statusCodes,
    errors: result.errors,
    timeouts: result.timeouts,
    loadCpuMs: (cpu.user + cpu.system) / 1000
  }
}

serveChild(async () => ({
  close: async () => {},
  handle: async (msg) => {
    if (msg.type === 'run') return await run(msg.spec)
    throw new Error(`unknown message ${msg.type}`)
  }
}))
