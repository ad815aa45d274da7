/**
 * The metrics plugin: a core sink that counts every finished record by API, method, status class
 * and flag, and times it, in plain numbers; prom-client and OpenTelemetry read those numbers when
 * they collect. APIs, their breakers and their balancers are found from the routes (an onRoute
 * hook sees each route's own scope), so the plugin is registered once, after the core and before
 * the APIs.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { collectDefaultMetrics, type Registry } from 'prom-client'
import { kApiBreaker, kApiTargets, kRouteConfig, type FaultlineRecord } from '@faultline/core'
import { ApiSeries, type BreakerView, type TargetsView } from './api-series.js'
import {
  errorSourceIndex,
  flagIndex,
  methodIndex,
  OTHER,
  requestKey,
  statusClassIndex
} from './label-values.js'
import { validateMetricsOptions, type FaultlineMetricsOptions } from './options.js'
import { registerOtelInstruments, resolveMeter, type OtelInstruments } from './opentelemetry.js'
import { registerPrometheusMetrics } from './prometheus.js'

/** What `fastify.faultlineMetrics` offers: the registry, and the exposition for tests and custom routes. */
export interface FaultlineMetrics {
  readonly registry: Registry
  /** The exposition text, as a scrape receives it. */
  metrics: () => Promise<string>
  /** Its content type. */
  readonly contentType: string
  /** Where the exposition's own server listens (option `port`), once the app is ready; else null. */
  readonly address: { host: string, port: number } | null
}

declare module 'fastify' {
  interface FastifyInstance {
    faultlineMetrics: FaultlineMetrics
  }
}

const kApi = Symbol('faultline.metrics.api')
const kScrape = Symbol('faultline.metrics.scrape')

/** API names beyond this many (only a route config could make them up) share the `other` series. */
const MAX_APIS = 1000
/** Targets per API beyond this many share the `other` series. */
const MAX_TARGETS = 64

type RouteConfig = Record<string | symbol, unknown> & { apiName?: unknown }

async function faultlineMetrics (fastify: FastifyInstance, options: FaultlineMetricsOptions): Promise<void> {
  const settings = validateMetricsOptions(options)
  const registry = settings.registry
  const buckets = settings.buckets

  const apis = new Map<string, ApiSeries>()
  const list = (): IterableIterator<ApiSeries> => apis.values()
  function apiSeries (name: string | undefined): ApiSeries {
    const key = name ?? ''
    let api = apis.get(key)
    if (api === undefined) {
      if (apis.size >= MAX_APIS && key !== OTHER) return apiSeries(OTHER)
      api = new ApiSeries(key, buckets, MAX_TARGETS)
      apis.set(key, api)
    }
    return api
  }

  if (settings.prometheus) {
    registerPrometheusMetrics(registry, list, buckets)
    if (settings.processMetrics) collectDefaultMetrics({ register: registry })
  }
  const meter = resolveMeter(settings.openTelemetry)
  const otel: OtelInstruments | undefined = meter === undefined ? undefined : registerOtelInstruments(meter, list, buckets)

  // Each API's series is found once per route, and the route carries it: a request costs no lookup.
  // `this` is the scope the route is added in, where a breaker registered as a plugin is visible.
  fastify.addHook('onRoute', function attachApi (this: FastifyInstance, route: RouteOptions) {
    const config = (route.config ?? {}) as RouteConfig
    if (config[kScrape] === true || typeof config.apiName !== 'string') return
    const api = apiSeries(config.apiName)
    // The proxy puts its balancer's view in its routes' config. A breaker's is there too when the
    // API shares its scope with others (@faultline/gateway); a plugin's is its scope's decorator.
    if (api.breaker === undefined) {
      api.breaker = config[kApiBreaker] as BreakerView | undefined ??
        (this.hasDecorator('faultlineBreaker') ? (this as unknown as { faultlineBreaker: BreakerView }).faultlineBreaker : undefined)
    }
    api.targets ??= config[kApiTargets] as TargetsView | undefined
    route.config = { ...config, [kApi]: api } as RouteOptions['config']
  })

  let lateWarned = false
  function count (record: FaultlineRecord): void {
    const config = record[kRouteConfig]
    let api = config?.[kApi] as ApiSeries | undefined
    if (api === undefined) {
      if (config?.[kScrape] === true) return
      if (record.api_name !== undefined && !lateWarned) {
        // Counted all the same; only the breaker and targets of such an API stay unknown.
        lateWarned = true
        fastify.log.warn({ api_name: record.api_name }, 'faultline: @faultline/metrics was registered after this API\'s routes: its breaker state and targets are not reported; register the metrics plugin before the APIs')
      }
      api = apiSeries(record.api_name)
    }
    const method = methodIndex(record.method)
    const statusClass = statusClassIndex(record.status)
    const flag = flagIndex(record.response_flag)
    const source = errorSourceIndex(record.error_source)
    const upstream = record.response_source === 'upstream'
    const key = requestKey(method, statusClass, flag, source, upstream)
    const series = api.requests.get(key) ?? api.addRequestSeries(key, method, statusClass, flag, source, upstream)
    series.count++

    const total = record.latency_total
    const upstreamMs = record.upstream_latency
    const gateway = record.gateway_latency
    if (total !== undefined) api.request.observe(total / 1000)
    if (upstreamMs !== undefined) api.upstream.observe(upstreamMs / 1000)
    if (gateway !== undefined) api.gateway.observe(gateway / 1000)
    if (record.upstream_addr !== undefined) api.countTarget(record.upstream_addr, flag)
    if (record.rate_limit_degraded === true) api.degraded++

    if (otel !== undefined) {
      const attributes = api.apiLabels
      if (total !== undefined) otel.request.record(total / 1000, attributes)
      if (upstreamMs !== undefined) otel.upstream.record(upstreamMs / 1000, attributes)
      if (gateway !== undefined) otel.gateway.record(gateway / 1000, attributes)
    }
  }
  fastify.faultline.addSink(count)

  async function exposition (): Promise<string> {
    return await registry.metrics()
  }

  let server: http.Server | undefined
  let address: FaultlineMetrics['address'] = null
  if (settings.prometheus && settings.port === undefined) {
    // On the app's own port: a plain route, kept out of the metrics and the access log.
    fastify.route({
      method: 'GET',
      url: settings.path,
      config: { [kScrape]: true, accessLog: false } as RouteOptions['config'],
      handler: async (_request: FastifyRequest, reply: FastifyReply) => {
        reply.type(registry.contentType)
        return await exposition()
      }
    })
  } else if (settings.prometheus) {
    const port = settings.port as number
    server = http.createServer((req, res) => {
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      const path = q === -1 ? url : url.slice(0, q)
      if (path !== settings.path || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(path === settings.path ? 405 : 404, { 'content-type': 'text/plain; charset=utf-8' })
        res.end(path === settings.path ? 'Method Not Allowed\n' : 'Not Found\n')
        return
      }
      exposition().then((text) => {
        res.writeHead(200, { 'content-type': registry.contentType })
        res.end(req.method === 'HEAD' ? undefined : text)
      }, (err: unknown) => {
        fastify.log.error({ err }, 'faultline: the metrics could not be collected')
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
        res.end('metrics collection failed\n')
      })
    })
    // Listening waits for the app to be ready, so that a failed boot leaves no port open.
    fastify.addHook('onReady', async () => {
      const s = server as http.Server
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.listen(port, settings.host, () => {
          s.off('error', reject)
          resolve()
        })
      })
      const a = s.address() as AddressInfo
      address = { host: a.address, port: a.port }
    })
  }

  fastify.decorate('faultlineMetrics', {
    registry,
    metrics: exposition,
    get contentType () { return registry.contentType },
    get address () { return address }
  } satisfies FaultlineMetrics)

  fastify.addHook('onClose', async () => {
    otel?.close()
    const s = server
    if (s === undefined || !s.listening) return
    server = undefined
    address = null
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  })
}

export const faultlineMetricsPlugin: FastifyPluginAsync<FaultlineMetricsOptions> = fp(faultlineMetrics, {
  fastify: '5.x',
  name: '@faultline/metrics',
  dependencies: ['@faultline/core']
})
