/** Checks the proxy's options once, at registration, and builds its settings. */
import type { LookupFunction } from 'node:net'
import type { HTTPMethods } from 'fastify'
import type { FaultlineProxyOptions, HealthCheckOptions, UpstreamTlsOptions } from './options.js'

export interface ProxySettings {
  name: string
  methods: HTTPMethods[]
  bodyLimit: number | undefined
  requireContentLength: boolean
  contentTypes: string[] | undefined
  schema: object | undefined
  accessLog: boolean | { fields?: string[] } | undefined
  exposeFlag: boolean | undefined
  upstream: {
    targets: string[]
    connectTimeout: number
    responseTimeout: number
    retries: number
    refusedBackoff: number
    tls: UpstreamTlsOptions | undefined
    healthCheck: HealthCheckOptions | undefined
    lookup: LookupFunction | undefined
  }
}

/** ms a target that refused a connection is held back (README "Refused connections"). */
export const DEFAULT_REFUSED_BACKOFF = 100

const ALL_METHODS: HTTPMethods[] = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']

function fail (option: string, expected: string, value: unknown): never {
  throw new TypeError(`@faultline/proxy: option "${option}" must be ${expected}, got ${JSON.stringify(value)}`)
}

function positiveInt (option: string, value: unknown, fallback: number, min = 1): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) fail(option, `an integer >= ${min}`, value)
  return value
}

export function validateProxyOptions (options: FaultlineProxyOptions): ProxySettings {
  if (typeof options !== 'object' || options === null) fail('(options)', 'an object', options)
  if (typeof options.name !== 'string' || options.name.length === 0) fail('name', 'a non-empty string', options.name)
  const up = options.upstream
  if (typeof up !== 'object' || up === null) fail('upstream', 'an object', up)
  if (!Array.isArray(up.targets) || up.targets.length === 0) fail('upstream.targets', 'a non-empty array of URLs', up.targets)
  up.targets.forEach((t, i) => {
    let ok = false
    try {
      const u = new URL(t)
      ok = u.protocol === 'http:' || u.protocol === 'https:'
    } catch {}
    if (!ok) fail(`upstream.targets[${i}]`, 'an http(s) URL', t)
  })
  let methods = ALL_METHODS
  if (options.methods !== undefined) {
    if (!Array.isArray(options.methods) || options.methods.length === 0) fail('methods', 'a non-empty array of HTTP methods', options.methods)
    methods = options.methods.map((m, i) => {
      const upper = typeof m === 'string' ? m.toUpperCase() : m
      if (typeof upper !== 'string' || !ALL_METHODS.includes(upper as HTTPMethods)) fail(`methods[${i}]`, `one of ${ALL_METHODS.join(', ')}`, m)
      return upper as HTTPMethods
    })
  }
  if (options.exposeFlag !== undefined && typeof options.exposeFlag !== 'boolean') fail('exposeFlag', 'a boolean', options.exposeFlag)
  if (options.requireContentLength !== undefined && typeof options.requireContentLength !== 'boolean') fail('requireContentLength', 'a boolean', options.requireContentLength)
  if (options.contentTypes !== undefined) {
    if (!Array.isArray(options.contentTypes) || options.contentTypes.length === 0) fail('contentTypes', 'a non-empty array of media types', options.contentTypes)
    options.contentTypes.forEach((type, i) => {
      if (typeof type !== 'string' || !/^[\w.+-]+\/(?:[\w.+-]+|\*)$/.test(type)) fail(`contentTypes[${i}]`, 'a media type like "application/json" or "text/*"', type)
    })
  }
  if (options.schema !== undefined && (typeof options.schema !== 'object' || options.schema === null || Array.isArray(options.schema))) fail('schema', 'a JSON Schema object', options.schema)
  const tls = up.tls
  if (tls !== undefined && (typeof tls !== 'object' || tls === null)) fail('upstream.tls', 'an object', tls)
  if (tls?.rejectUnauthorized !== undefined && typeof tls.rejectUnauthorized !== 'boolean') {
    fail('upstream.tls.rejectUnauthorized', 'a boolean', tls.rejectUnauthorized)
  }
  if (up.lookup !== undefined && typeof up.lookup !== 'function') fail('upstream.lookup', 'a function', typeof up.lookup)
  const hc = up.healthCheck
  if (hc !== undefined) {
    if (typeof hc !== 'object' || hc === null) fail('upstream.healthCheck', 'an object', hc)
    if (hc.path !== undefined && (typeof hc.path !== 'string' || !hc.path.startsWith('/'))) fail('upstream.healthCheck.path', 'a path starting with /', hc.path)
    positiveInt('upstream.healthCheck.interval', hc.interval, 5000, 100)
    positiveInt('upstream.healthCheck.timeout', hc.timeout, 1000)
    positiveInt('upstream.healthCheck.unhealthyThreshold', hc.unhealthyThreshold, 2)
    positiveInt('upstream.healthCheck.healthyThreshold', hc.healthyThreshold, 1)
  }
  return {
    name: options.name,
    methods,
    bodyLimit: options.bodyLimit === undefined ? undefined : positiveInt('bodyLimit', options.bodyLimit, 0, 0),
    requireContentLength: options.requireContentLength ?? false,
    contentTypes: options.contentTypes?.map((type) => type.toLowerCase()),
    schema: options.schema,
    accessLog: options.accessLog,
    exposeFlag: options.exposeFlag,
    upstream: {
      targets: [...up.targets],
      connectTimeout: positiveInt('upstream.connectTimeout', up.connectTimeout, 5000),
      responseTimeout: positiveInt('upstream.responseTimeout', up.responseTimeout, 30000),
      retries: positiveInt('upstream.retries', up.retries, 0, 0),
      refusedBackoff: positiveInt('upstream.refusedBackoff', up.refusedBackoff, DEFAULT_REFUSED_BACKOFF, 0),
      tls: tls === undefined ? undefined : { ...tls },
      healthCheck: hc === undefined ? undefined : { ...hc },
      lookup: up.lookup
    }
  }
}
