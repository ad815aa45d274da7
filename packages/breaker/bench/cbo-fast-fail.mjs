/**
 * With the upstream down: requests per second answered CBO by an open breaker, versus the same
 * API without a breaker answering UCF (a refused connection per request). Same gateway, same
 * access log (written to /dev/null), same client, one after the other.
 *
 *   npx tsc -b tsconfig.build.json && node packages/breaker/bench/cbo-fast-fail.mjs
 */
import net from 'node:net'
import Fastify from 'fastify'
import { Pool } from 'undici'
import core from '@faultline/core'
import accessLog from '@faultline/access-log'
import proxy from '@faultline/proxy'
import breaker from '@faultline/breaker'

const SECONDS = Number(process.env.SECONDS ?? 5)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 16)

async function refusedPort () {
  const s = net.createServer()
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address()
  await new Promise((resolve) => s.close(resolve))
  return `http://127.0.0.1:${port}`
}

const target = await refusedPort()
const app = Fastify()
await app.register(core)
await app.register(accessLog, { destination: '/dev/null' })
await app.register(async (scope) => {
  await scope.register(breaker, { volumeThreshold: 1, resetTimeout: 3_600_000 })
  await scope.register(proxy, { name: 'guarded', upstream: { targets: [target] } })
}, { prefix: '/guarded' })
await app.register(async (scope) => {
  await scope.register(proxy, { name: 'bare', upstream: { targets: [target] } })
}, { prefix: '/bare' })
// Calibration: the cheapest answer this gateway can give (core + access log, no upstream).
app.get('/static', { config: { apiName: 'static' } }, async () => 'ok')
const url = await app.listen({ port: 0, host: '127.0.0.1' })

const pool = new Pool(url, { connections: CONNECTIONS })

async function run (path, expected) {
  const until = performance.now() + SECONDS * 1000
  let done = 0
  let other = 0
  async function worker () {
    while (performance.now() < until) {
      const res = await pool.request({ path, method: 'GET' })
      await res.body.dump()
      if (res.statusCode === expected) done++
      else other++
    }
  }
  const t0 = performance.now()
  await Promise.all(Array.from({ length: CONNECTIONS }, worker))
  const s = (performance.now() - t0) / 1000
  return { rps: done / s, other }
}

// Open the guarded API's breaker, warm both paths up.
await pool.request({ path: '/guarded/x', method: 'GET' }).then((r) => r.body.dump())
const savedSeconds = SECONDS
await run('/bare/x', 502)
await run('/guarded/x', 503)

await run('/static', 200)
const floor = await run('/static', 200)
const refused = await run('/bare/x', 502)
const fastFail = await run('/guarded/x', 503)
console.log(`\nupstream down, ${CONNECTIONS} connections, ${savedSeconds} s each (node ${process.version})\n`)
console.log('| path | requests/s | ratio |')
console.log('|---|---|---|')
console.log(`| no breaker: UCF 502 (a refused connect per request) | ${Math.round(refused.rps).toLocaleString('en')} | 1.00 |`)
console.log(`| breaker open: CBO 503 (no connect) | ${Math.round(fastFail.rps).toLocaleString('en')} | ${(fastFail.rps / refused.rps).toFixed(2)} |`)
console.log(`| calibration: a local route answering 200 (core + access log) | ${Math.round(floor.rps).toLocaleString('en')} | ${(floor.rps / refused.rps).toFixed(2)} |`)
if (refused.other + fastFail.other > 0) console.log(`unexpected statuses: ${refused.other + fastFail.other}`)
await pool.close()
await app.close()
