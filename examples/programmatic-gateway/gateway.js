// A custom gateway built from the Faultline plugins in a plain Fastify app: the core first, then
// the access log, then your own routes and, per API, one scope with its boundaries and its proxy.
// Run it: node examples/programmatic-gateway/gateway.js  (after `npm run setup`)
import Fastify, { LogController } from 'fastify'
import core, { FaultlineError } from '@faultline/core'
import accessLog from '@faultline/access-log'
import proxy from '@faultline/proxy'
import auth from '@faultline/auth'
import quota from '@faultline/quota'
import breaker from '@faultline/breaker'

/**
 * @param {{ ordersUrl: string, catalogUrl: string, ordersKey: string, accessLog?: import('@faultline/access-log').AccessLogOptions }} options
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

  // APIs: each one is an encapsulated scope under its prefix, so its hooks guard only its routes.
  // Orders: an API key, 100 requests a minute per consumer, then the proxy.
  await app.register(async (api) => {
    await api.register(auth, { type: 'apiKey', keys: [{ id: 'shop', key: options.ordersKey }] })
    await api.register(quota, { rateLimit: { max: 100, timeWindow: '1 minute' } })
    await api.register(proxy, {
      name: 'Orders',
      methods: ['GET', 'POST'],
      upstream: { targets: [options.ordersUrl], connectTimeout: 1000, responseTimeout: 5000, retries: 1 }
    })
  }, { prefix: '/orders' })
  // Catalog: a circuit breaker in front of its upstream.
  await app.register(async (api) => {
    await api.register(breaker, { volumeThreshold: 5, resetTimeout: 10_000 })
    await api.register(proxy, {
      name: 'Catalog',
      // Catalog lines keep only what the catalog team reads.
      accessLog: { fields: ['method', 'path', 'status', 'response_flag', 'error_target', 'latency_total'] },
      upstream: { targets: [options.catalogUrl] }
    })
  }, { prefix: '/catalog' })
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
  const ordersKey = process.env.ORDERS_KEY ?? 'example-key-0123456789'
  const app = await buildGateway({ ordersUrl: upstreamUrl, catalogUrl: 'http://127.0.0.1:9', ordersKey })
  const address = await app.listen({ port: Number(process.env.PORT ?? 8080), host: '127.0.0.1' })
  process.stderr.write(`gateway on ${address}: try curl -H 'x-api-key: ${ordersKey}' ${address}/orders/1, ` +
    `and ${address}/catalog/x (refused: UCF, then CBO after 5)\n`)
  const stop = async () => { await app.close(); upstream.close() }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
