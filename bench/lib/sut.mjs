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
import auth from '@faultline/auth'
import quota from '@faultline/quota'
import breaker from '@faultline/breaker'
import proxy from '@faultline/proxy'
import metrics from '@faultline/metrics'
import { tuneGatewayRuntime } from '@faultline/gateway'
import { listenLoopback, serveChild } from './child.mjs'
import { apiKey } from './keys.mjs'

async function listenFastify (app) {
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, close: () => app.close() }
}

async function bareReplyFrom ({ upstream }) {
  const app = Fastify({ logger: false })
  await app.register(replyFrom, { base: upstream })
  app.all('/api/*', (request, reply) => reply.from(request.url))
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
 * at the root, then one scope per API with, in order, auth, rate limit and quota, breaker, proxy.
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
  if (destination) await app.register(accessLog, { destination })
  if (withMetrics) await app.register(metrics, { port: 0, host: '127.0.0.1', processMetrics: true })
  for (const api of apis) {
    await app.register(async (scope) => {
      if (api.keys !== undefined) await scope.register(auth, { type: 'apiKey', keys: keys(api.keys) })
      if (api.rateLimit !== undefined || api.quota !== undefined) {
        const options = {}
        if (api.rateLimit !== undefined) options.rateLimit = api.rateLimit
        if (api.quota !== undefined) options.quota = api.quota
        if (redis !== undefined) options.redis = { url: redis }
        await scope.register(quota, options)
      }
      if (api.breaker !== undefined) await scope.register(breaker, api.breaker)
      const upstream = { targets: [api.target] }
      if (api.refusedBackoff !== undefined) upstream.refusedBackoff = api.refusedBackoff
      await scope.register(proxy, { name: api.name, upstream })
    }, { prefix: api.prefix })
  }
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
