// A custom gateway built from the Faultline plugins in a plain Fastify app:
// the core first, then the access log, then your own routes and one proxy per API.
// Run it: node examples/programmatic-gateway/gateway.js  (after `npm run setup`)
import Fastify, { LogController } from 'fastify'
import core, { FaultlineError } from '@faultline/core'
import accessLog from '@faultline/access-log'
import proxy from '@faultline/proxy'

/**
 * @param {{ ordersUrl: string, catalogUrl: string, accessLog?: import('@faultline/access-log').AccessLogOptions }} options
 */
export async function buildGateway (options) {
  const app = Fastify({
    // Fastify's own per-request lines would double the log; Faultline writes one line per request.
    logger: { level: 'error' },
    logController: new LogController({ disableRequestLogging: true })
  })

  await app.register(core, { exposeFlag: true })
  await app.register(accessLog, { destination: 'stdout', ...options.accessLog })

  // A route of your own: never logged (load balancers poll it every second).
  app.get('/healthz', { config: { accessLog: false } }, async () => ({ ok: true }))

  // Another one that reports a classified failure: the client gets the contract's error body.
  app.get('/maintenance', { config: { accessLog: { fields: ['status', 'response_flag'] } } }, async () => {
    throw new FaultlineError('SHD', { details: 'gateway_shutting_down' })
  })

  // APIs: each one is a proxy registered under its prefix.
  await app.register(proxy, {
    prefix: '/orders',
    name: 'Orders',
    methods: ['GET', 'POST'],
    upstream: { targets: [options.ordersUrl], connectTimeout: 1000, responseTimeout: 5000, retries: 1 }
  })
  await app.register(proxy, {
    prefix: '/catalog',
    name: 'Catalog',
    // Catalog lines keep only what the catalog team reads.
    accessLog: { fields: ['method', 'path', 'status', 'response_flag', 'error_target', 'latency_total'] },
    upstream: { targets: [options.catalogUrl] }
  })
  return app
}

// Started directly: a tiny upstream on loopback, and the gateway in front of it.
if (import.meta.url === `file://${process.argv[1]}`) {
  const http = await import('node:http')
  const upstream = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ upstream: 'demo', path: req.url }))
  })
  await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const upstreamUrl = `http://127.0.0.1:${upstream.address().port}`
  const app = await buildGateway({ ordersUrl: upstreamUrl, catalogUrl: 'http://127.0.0.1:9' })
  const address = await app.listen({ port: Number(process.env.PORT ?? 8080), host: '127.0.0.1' })
  process.stderr.write(`gateway on ${address}: try ${address}/orders/1 and ${address}/catalog/x (refused: UCF)\n`)
  const stop = async () => { await app.close(); upstream.close() }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
