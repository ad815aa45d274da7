import Fastify from 'fastify'
import { execFile } from 'node:child_process'
import core, { clientErrorHandler, frameworkErrors } from '@faultline/core'
import accessLog from '@faultline/access-log'
import breaker from '@faultline/breaker'
import proxy from '@faultline/proxy'
import { tuneGatewayRuntime } from '@faultline/gateway'
tuneGatewayRuntime()
const mode = process.argv[2]
const app = Fastify({ logger: false, clientErrorHandler, frameworkErrors, return503OnClosing: false })
await app.register(core)
if (mode !== 'none') await app.register(accessLog, { destination: mode === 'file' ? '/tmp/tmp-cbo.log' : mode })
await app.register(async (scope) => {
  await scope.register(breaker, { volumeThreshold: 1, resetTimeout: 3_600_000 })
  await scope.register(proxy, { name: 'bench', upstream: { targets: ['http://127.0.0.1:9'] } })
}, { prefix: '/api' })
const url = await app.listen({ port: 0, host: '127.0.0.1' })
const run = (d) => new Promise((resolve, reject) => execFile('node_modules/.bin/autocannon', ['-c', '50', '-d', String(d), '-j', url + '/api/items/42'], { maxBuffer: 1e8 }, (err, out) => err ? reject(err) : resolve(JSON.parse(out))))
await run(2)
const c0 = process.cpuUsage()
const r = await run(4)
const c = process.cpuUsage(c0)
console.log(mode.padEnd(10), 'rps', Math.round(r.requests.average), 'cpu µs/req', ((c.user + c.system) / r.requests.total).toFixed(0), 'user', (c.user / r.requests.total).toFixed(0), 'sys', (c.system / r.requests.total).toFixed(0), JSON.stringify(r.statusCodeStats ?? {}))
await app.close()
