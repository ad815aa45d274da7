/**
 * One system under test per process: `node --expose-gc bench/lib/sut.mjs`, then the harness sends
 * `{ type: 'start', config: { kind, upstream, ... } }` and gets back the URL it listens on.
 *
 * Every system serves the upstream under the prefix `/api` (Faultline strips the prefix, the
 * others forward the path as it is: the upstream answers the same body for every path).
 */
import http from 'node:http'
import Fastify from 'fastify'
import replyFrom from '@fastify/reply-from'
import httpProxy from '@fastify/http-proxy'
import express from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'
import core, { clientErrorHandler, frameworkErrors } from '@faultline/core'
import accessLog from '@faultline/access-log'
import metrics from '@faultline/metrics'
import { registerApi, tuneGatewayRuntime } from '@faultline/gateway'
import { createRedisClient } from '@faultline/quota'
import { listenLoopback, serveChild } from './child.mjs'
import { apiKey } from './keys.mjs'

async function listenFastify (app) {
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, close: () => app.close() }
}

async function bareReplyFrom ({ upstream }) {
  const app = Fastify({ logger: false })
  await app.register(replyFrom, { base: upstream })
  // As reply-from's README calls it: a statement. A handler that returns the reply (an arrow
  // `=> reply.from(...)`) has Fastify await it as a thenable, with end-of-stream listeners on
  // every response: 0.97 of this one's throughput, paired (BENCHMARKS.md, ninth pass).
  app.all('/api/*', (request, reply) => { reply.from(request.url) })
  return await listenFastify(app)
}

async function fastifyHttpProxy ({ upstream }) {
  const app = Fastify({ logger: false })
  await app.register(httpProxy, { upstream, prefix: '/api' })
  return await listenFastify(app)
}

async function expressHpm ({ upstream }) {
  const app = express()
  app.disable('x-powered-by')
  // Keep-alive to the upstream, like every other row (Node's default agent would not keep them).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 128 })
  app.use('/api', createProxyMiddleware({ target: upstream, agent }))
  const listening = await listenLoopback(http.createServer(app))
  return {
    url: listening.url,
    close: async () => {
      await listening.close()
      agent.destroy()
    }
  }
}

const keyLists = new Map()
/** `n` keys, built once per process however many APIs use them. */
function keys (n) {
  let list = keyLists.get(n)
  if (list === undefined) {
    list = new Array(n)
    for (let i = 0; i < n; i++) list[i] = { id: `consumer-${i}`, key: apiKey(i) }
    keyLists.set(n, list)
  }
  return list
}

/**
 * A Faultline gateway composed the way @faultline/gateway composes one: the core and the access log
 * at the root, then every API in one scope with its own route hooks (auth, breaker, rate limit and
 * quota) and proxy, through the gateway's own registerApi.
 *
 * config.metrics: true adds @faultline/metrics as the gateway adds it (after the access log, before the
 * APIs, process metrics on), served on a port of its own that the harness scrapes during the rounds.
 *
 * config.apis[]: { name, prefix, target, keys?: n, rateLimit?, quota?, breaker?, refusedBackoff? }
 */
async function faultline ({ accessLog: destination, metrics: withMetrics, apis, redis }) {
  const app = Fastify({
    logger: false,
    clientErrorHandler,
    frameworkErrors,
    return503OnClosing: false
  })
  await app.register(core)
  // One Redis connection for every API's counters, as the gateway keeps one.
  const redisClient = redis === undefined ? undefined : createRedisClient({ url: redis, commandTimeout: 500, connectTimeout: 1000 })
  if (redisClient !== undefined) app.addHook('onClose', async () => { await redisClient.quit().catch(() => redisClient.disconnect()) })
  if (destination) await app.register(accessLog, { destination })
  if (withMetrics) await app.register(metrics, { port: 0, host: '127.0.0.1', processMetrics: true })
  // The APIs as @faultline/gateway adds them: all in one scope, each with its own route hooks.
  await app.register(async (scope) => {
    for (const api of apis) {
      const config = { name: api.name, prefix: api.prefix, upstream: { targets: [api.target] } }
      if (api.refusedBackoff !== undefined) config.upstream.refusedBackoff = api.refusedBackoff
      if (api.keys !== undefined) config.auth = { type: 'apiKey', keys: keys(api.keys) }
      if (api.rateLimit !== undefined) config.rateLimit = api.rateLimit
      if (api.quota !== undefined) config.quota = api.quota
      if (api.breaker !== undefined) config.circuitBreaker = api.breaker
      await registerApi(scope, config, { redis: redisClient })
    }
  })
  // The auth plugin keeps its own compact copy: the lists go, as a gateway's parsed config would.
  keyLists.clear()
  const listening = await listenFastify(app)
  if (!withMetrics) return listening
  const { host, port } = app.faultlineMetrics.address
  return { ...listening, handle: async (msg) => msg.type === 'metrics-url' ? `http://${host}:${port}/metrics` : undefined }
}

const kinds = {
  'reply-from': bareReplyFrom,
  'http-proxy': fastifyHttpProxy,
  'express-hpm': expressHpm,
  faultline
}

// Every Node system under test runs with the V8 settings `faultline serve` applies to itself, the
// peers too: one runtime for all, so that the comparison is about the code.
tuneGatewayRuntime()

serveChild(async (config) => {
  const build = kinds[config.kind]
  if (build === undefined) throw new Error(`unknown system kind ${config.kind}`)
  return await build(config)
})
