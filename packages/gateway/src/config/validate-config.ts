/**
 * Checks a parsed config against the schema (applying its defaults) and the rules a schema cannot
 * say (unique API names and prefixes, URL details), and turns every failure into a ConfigProblem
 * that names the path of the bad value.
 */
import { Ajv, type ErrorObject } from 'ajv'
import { breakerDefaults } from '@faultline/breaker'
import { parseDuration } from '@faultline/quota'
import {
  ConfigError,
  describeValue,
  formatPath,
  isSecretPath,
  type ConfigProblem,
  type PathSegment
} from './config-error.js'
import { configSchema, tlsVersions, type GatewayConfig } from './schema.js'

/** `http(s)://host[:port][/path]`: what an upstream target must be. Query and credentials are checked later, with their own message. */
function isHttpUrl (value: string): boolean {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return false
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== ''
}

const ajv = new Ajv({
  allErrors: true,
  useDefaults: true,
  coerceTypes: false,
  verbose: true,
  allowUnionTypes: true,
  strict: true
})
ajv.addVocabulary(['x-error'])
ajv.addFormat('http-url', { type: 'string', validate: isHttpUrl })
// An ISO 8601 date-time with a zone, as API keys' expiresAt: Date.parse must understand it.
ajv.addFormat('date-time', { type: 'string', validate: (value: string) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value) && !Number.isNaN(Date.parse(value)) })
const validateSchema = ajv.compile(configSchema)

export interface CheckOptions {
  /** Formatted paths whose values came from the environment: redacted in every message. */
  fromEnv?: ReadonlySet<string>
  /** Formatted paths that already have a problem (e.g. a missing variable): not reported twice. */
  skip?: ReadonlySet<string>
}

/**
 * Validates `data` in place (the schema's defaults are written into it) and returns every problem.
 * `data` must be a value this module may mutate.
 */
export function checkConfig (data: unknown, options: CheckOptions = {}): ConfigProblem[] {
  const fromEnv = options.fromEnv ?? new Set<string>()
  const skip = options.skip ?? new Set<string>()
  const problems: ConfigProblem[] = []
  const add = (segments: PathSegment[], message: string, value?: unknown, showValue = true): void => {
    const path = formatPath(segments)
    if (skip.has(path)) return
    const problem: ConfigProblem = { path, message }
    if (showValue) problem.value = describeValue(value, isSecretPath(segments) || fromEnv.has(path))
    problems.push(problem)
  }

  if (!validateSchema(data)) {
    for (const error of validateSchema.errors ?? []) reportSchemaError(error, data, add, fromEnv)
  }
  checkSemantics(data, add)
  return problems
}

/**
 * Validates a config object that did not come from a file (no environment substitution, no
 * certificate files: TLS values must already be PEM). Returns a copy with the defaults applied.
 */
export function validateConfig (value: unknown): GatewayConfig {
  const data = structuredClone(value)
  const problems = checkConfig(data)
  if (problems.length > 0) throw new ConfigError(problems)
  return data as GatewayConfig
}

type Add = (segments: PathSegment[], message: string, value?: unknown, showValue?: boolean) => void

/** JSON pointer (`/apis/0/name`) to segments, reading `data` to tell array indices from keys. */
function pointerToSegments (pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return []
  const segments: PathSegment[] = []
  let node: unknown = data
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (Array.isArray(node)) {
      const index = Number(key)
      segments.push(index)
      node = node[index]
    } else {
      segments.push(key)
      node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined
    }
  }
  return segments
}

const typeNames: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
  null: 'null'
}

function describeTypes (type: unknown): string {
  const list = Array.isArray(type) ? type : String(type).split(',')
  return list.map((t: string) => typeNames[t] ?? t).join(' or ')
}

const comparisons: Record<string, string> = {
  minimum: '>=',
  maximum: '<=',
  exclusiveMinimum: '>',
  exclusiveMaximum: '<'
}

function reportSchemaError (error: ErrorObject, data: unknown, add: Add, fromEnv: ReadonlySet<string>): void {
  const at = pointerToSegments(error.instancePath, data)
  const params = error.params as Record<string, unknown>
  const parent = (error.parentSchema ?? {}) as Record<string, unknown>
  switch (error.keyword) {
    case 'if':
      // The auth schema picks its shape by `type` with if/then: the errors inside "then" say what is wrong.
      return
    case 'required':
      add([...at, String(params.missingProperty)], 'is required', undefined, false)
      return
    case 'dependencies':
      add([...at, String(params.missingProperty)], `is required when ${String(params.property)} is set`, undefined, false)
      return
    case 'additionalProperties': {
      const key = String(params.additionalProperty)
      add([...at, key], unknownKeyMessage(key, parent), undefined, false)
      return
    }
    case 'type': {
      let message = `must be ${describeTypes(params.type)}`
      if (fromEnv.has(formatPath(at))) message += ' (a value taken from ${...} is always a string)'
      add(at, message, error.data)
      return
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String)
      const hint = suggest(String(error.data), allowed)
      add(at, `must be one of ${allowed.join(', ')}${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`, error.data)
      return
    }
    case 'format':
    case 'pattern':
      if (typeof parent['x-error'] === 'string') {
        add(at, parent['x-error'], error.data)
        return
      }
      break
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      add(at, `must be ${comparisons[error.keyword]} ${String(params.limit)}`, error.data)
      return
    case 'minLength':
      add(at, params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters long`, error.data)
      return
    case 'minItems':
      add(at, params.limit === 1 ? 'must list at least one item' : `must list at least ${String(params.limit)} items`, error.data)
      return
    case 'uniqueItems': {
      // ajv gives the two positions; point at the later one.
      const later = Math.max(Number(params.i), Number(params.j))
      const earlier = Math.min(Number(params.i), Number(params.j))
      const item = Array.isArray(error.data) ? error.data[later] : undefined
      add([...at, later], `repeats ${formatPath([...at, earlier])}`, item)
      return
    }
  }
  add(at, error.message ?? `fails ${error.keyword}`, error.data)
}

function unknownKeyMessage (key: string, parent: Record<string, unknown>): string {
  const properties = (parent.properties ?? {}) as Record<string, unknown>
  const allowed = Object.keys(properties)
  const hint = suggest(key, allowed)
  if (hint !== undefined) return `unknown key (did you mean "${hint}"?)`
  return allowed.length === 0 ? 'unknown key' : `unknown key (allowed: ${allowed.join(', ')})`
}

/** The allowed value the user most likely meant: same letters in another case, or one or two typos away. */
function suggest (given: string, allowed: readonly string[]): string | undefined {
  const lower = given.toLowerCase()
  const sameCase = allowed.find((a) => a.toLowerCase() === lower)
  if (sameCase !== undefined) return sameCase
  const budget = given.length <= 5 ? 1 : 2
  let best: string | undefined
  let bestDistance = budget + 1
  for (const candidate of allowed) {
    const d = editDistance(lower, candidate.toLowerCase())
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

/** Edits (insert, delete, replace, swap two neighbours) from `a` to `b`; 3 stands for "more than 2". */
function editDistance (a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[a.length][b.length]
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** What the schema cannot say. Reads defensively: `data` may also have failed the schema. */
function checkSemantics (data: unknown, add: Add): void {
  if (!isObject(data) || !Array.isArray(data.apis)) return
  const names = new Map<string, number>()
  const prefixes = new Map<string, number>()
  data.apis.forEach((api: unknown, i: number) => {
    if (!isObject(api)) return
    if (typeof api.name === 'string') {
      const first = names.get(api.name)
      if (first === undefined) names.set(api.name, i)
      else add(['apis', i, 'name'], `duplicate API name: apis[${first}] has the same name`, api.name)
    }
    if (typeof api.prefix === 'string') {
      const first = prefixes.get(api.prefix)
      if (first === undefined) prefixes.set(api.prefix, i)
      else add(['apis', i, 'prefix'], `duplicate prefix: apis[${first}] has the same prefix`, api.prefix)
    }
    if (isObject(api.upstream)) checkUpstream(api.upstream, ['apis', i, 'upstream'], add)
    if (isObject(api.rateLimit) && typeof api.rateLimit.timeWindow === 'string') {
      const ms = parseDuration(api.rateLimit.timeWindow)
      if (ms === undefined || ms < 1) {
        add(['apis', i, 'rateLimit', 'timeWindow'], 'must be milliseconds or a duration such as "1 minute", "30s", "2 hours"', api.rateLimit.timeWindow)
      }
    }
    const breaker = api.circuitBreaker
    if (isObject(breaker) && breaker.rollingCountBuckets !== undefined) {
      const windowMs = breaker.rollingCountTimeout ?? breakerDefaults.rollingCountTimeout
      const buckets = breaker.rollingCountBuckets
      if (Number.isInteger(windowMs) && Number.isInteger(buckets) && ((windowMs as number) % (buckets as number) !== 0 || (windowMs as number) / (buckets as number) < 10)) {
        add(['apis', i, 'circuitBreaker', 'rollingCountBuckets'], `must divide rollingCountTimeout (${String(windowMs)}) into buckets of at least 10 ms`, buckets)
      }
    }
    if (isObject(api.auth) && api.auth.type === 'apiKey' && Array.isArray(api.auth.keys)) {
      api.auth.keys.forEach((entry: unknown, j: number) => {
        if (isObject(entry) && entry.key === undefined && entry.keyHash === undefined) {
          add(['apis', i, 'auth', 'keys', j], 'needs "key" or "keyHash"', entry.id)
        }
      })
    }
    if (isObject(api.auth) && api.auth.type === 'mtls') {
      const tls = isObject(data.server) && isObject(data.server.tls) ? data.server.tls : undefined
      if (tls?.requestCert !== true) {
        add(['apis', i, 'auth', 'type'], 'mtls needs server.tls with requestCert: true (the gateway must ask clients for a certificate)', api.auth.type)
      }
    }
  })
}

function checkUpstream (upstream: Record<string, unknown>, at: PathSegment[], add: Add): void {
  if (Array.isArray(upstream.targets)) {
    upstream.targets.forEach((target: unknown, j: number) => {
      if (typeof target !== 'string' || !isHttpUrl(target)) return
      const url = new URL(target)
      if (url.username !== '' || url.password !== '') {
        add([...at, 'targets', j], 'must not contain credentials', target)
      } else if (url.search !== '' || url.hash !== '') {
        add([...at, 'targets', j], 'must not have a query string or a fragment', target)
      }
    })
  }
  const hc = upstream.healthCheck
  if (isObject(hc) && Number.isInteger(hc.interval) && Number.isInteger(hc.timeout) && (hc.timeout as number) > (hc.interval as number)) {
    add([...at, 'healthCheck', 'timeout'], `must not be greater than healthCheck.interval (${String(hc.interval)})`, hc.timeout)
  }
  const tls = upstream.tls
  if (isObject(tls) && typeof tls.minVersion === 'string' && typeof tls.maxVersion === 'string') {
    const min = tlsVersions.indexOf(tls.minVersion as typeof tlsVersions[number])
    const max = tlsVersions.indexOf(tls.maxVersion as typeof tlsVersions[number])
    if (min !== -1 && max !== -1 && min > max) {
      add([...at, 'tls', 'maxVersion'], `must not be lower than tls.minVersion (${tls.minVersion})`, tls.maxVersion)
    }
  }
}
