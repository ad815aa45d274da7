/**
 * The configuration file (CONTRACT.md section 4) as a JSON Schema (draft-07, checked with ajv 8),
 * and the TypeScript types of what `loadConfig` returns.
 *
 * Every object is closed (`additionalProperties: false`) so a typo is an error, not a silently
 * ignored key. `x-error` gives the human message for a failed `pattern` or `format`.
 */
import { recordFields } from '@faultline/core'
import type { AuthOptions } from '@faultline/auth'
import type { QuotaOptions, RateLimitOptions } from '@faultline/quota'
import type { FaultlineBreakerOptions } from '@faultline/breaker'

export const httpMethods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const
export type HttpMethod = typeof httpMethods[number]

export const tlsVersions = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const
export type TlsVersion = typeof tlsVersions[number]

export interface ServerTlsConfig {
  /** Certificate (PEM) the gateway serves. In the file: a path, relative to the file, or inline PEM. */
  cert: string
  /** Private key (PEM). In the file: a path or inline PEM. */
  key: string
  /** CA(s) (PEM) that client certificates must chain to. In the file: path(s) or inline PEM. */
  ca?: string | string[]
  /** Ask clients for a certificate; a client without a valid one fails the handshake. Default false. */
  requestCert?: boolean
}

export interface LoadSheddingConfig {
  /** Shed load when the event loop lags more than this many ms. */
  maxEventLoopDelay?: number
  /** ... when the V8 heap holds more than this many bytes. */
  maxHeapUsedBytes?: number
  /** ... when the process's resident set exceeds this many bytes. */
  maxRssBytes?: number
  /** ... when the event loop is busier than this fraction (0..1). */
  maxEventLoopUtilization?: number
  /** Seconds sent in Retry-After. Default 10. */
  retryAfter?: number
  /** ms between measurements (>= 50). Default 1000. */
  sampleInterval?: number
}

export interface ServerConfig {
  /** Default `127.0.0.1`. */
  host: string
  /** Default 8080; 0 = any free port. */
  port: number
  /** Bytes. Default 1048576 (1 MiB). */
  bodyLimit: number
  /** ms the client has to send its whole request. Default 30000; 0 = no limit. */
  requestTimeout: number
  /** Honour an incoming `x-request-id`. Default true. */
  trustRequestId: boolean
  /** Add `x-faultline-flag` and `code` to gateway error replies. Default false. */
  exposeFlag: boolean
  tls?: ServerTlsConfig
  /** Optional load shedding (OVL 503 + Retry-After), off unless a threshold is set. */
  loadShedding?: LoadSheddingConfig
}

export interface AccessLogConfig {
  /** Default true. */
  enabled: boolean
  /** `stdout` (default), `stderr`, or a file path (relative to the config file). */
  destination: string
  /** Allow-list of access-log fields; `time`, `level`, `msg` and `request_id` are always written. */
  fields?: string[]
}

export interface UpstreamTlsConfig {
  /** CA(s) (PEM) trusted for this upstream instead of the system store. */
  ca?: string | string[]
  /** Client certificate and key (PEM), when the upstream requires mTLS. */
  cert?: string
  key?: string
  servername?: string
  /** Default true. */
  rejectUnauthorized?: boolean
  minVersion?: TlsVersion
  maxVersion?: TlsVersion
}

export interface HealthCheckConfig {
  path?: string
  interval?: number
  timeout?: number
  unhealthyThreshold?: number
  healthyThreshold?: number
}

export interface UpstreamConfig {
  targets: string[]
  connectTimeout?: number
  responseTimeout?: number
  retries?: number
  /** ms a target that refused a connection is not dialled (0: every time). Default 100. */
  refusedBackoff?: number
  tls?: UpstreamTlsConfig
  healthCheck?: HealthCheckConfig
}

export interface ApiAccessLogConfig {
  fields?: string[]
}

export interface ApiConfig {
  name: string
  prefix: string
  methods?: HttpMethod[]
  bodyLimit?: number
  accessLog?: boolean | ApiAccessLogConfig
  exposeFlag?: boolean
  /** Refuse chunked bodies without Content-Length (CLM 411). */
  requireContentLength?: boolean
  /** Media types request bodies may have; others get UMT 415. */
  contentTypes?: string[]
  /** JSON Schema for JSON request bodies (BIV 400 when they fail it; no type coercion). */
  schema?: Record<string, unknown>
  upstream: UpstreamConfig
  /** Authentication in front of the API (CONTRACT.md section 4): apiKey, jwt, external or mtls. */
  auth?: AuthOptions
  /** Requests per time window (RLT 429), keyed by consumer or client IP. */
  rateLimit?: RateLimitOptions
  /** Requests per calendar period in UTC (QEX 403), keyed by consumer. */
  quota?: QuotaOptions
  /** Circuit breaker in front of the upstream (CBO 503; UOF 503 with `capacity`). */
  circuitBreaker?: FaultlineBreakerOptions
  /** When the shared Redis store fails: `open` (default) lets requests through, `closed` answers RLE 503. */
  failMode?: 'open' | 'closed'
}

export interface RedisConfig {
  /** `redis://[user:password@]host[:port][/db]` or `rediss://` (TLS). Use `${VAR}` for a password. */
  url: string
  /** ms a store command may take before the request goes on without it (see `failMode`). Default 500. */
  commandTimeout?: number
  /** ms to connect. Default 1000. */
  connectTimeout?: number
}

export interface MetricsConfig {
  /** Serve the Prometheus exposition. Default true when the `metrics` section is present. */
  enabled?: boolean
  /** Its own port on `server.host` (recommended); 0 = any free port. Absent: served on the gateway's port. */
  port?: number
  /** Default `/metrics`. */
  path?: string
}

/** A validated configuration, defaults applied, certificate files read into PEM strings. */
export interface GatewayConfig {
  server: ServerConfig
  accessLog: AccessLogConfig
  apis: ApiConfig[]
  /** Share rate limits and quotas across gateway processes. Absent: in-memory, per process. */
  redis?: RedisConfig
  /** Prometheus metrics (@faultline/metrics). Absent: off. */
  metrics?: MetricsConfig
}

/** What `buildGateway` and `serve` accept: a `GatewayConfig` whose defaulted keys may be left out. */
export interface GatewayConfigInput {
  server?: Partial<ServerConfig>
  accessLog?: Partial<AccessLogConfig>
  apis: ApiConfig[]
  redis?: RedisConfig
  metrics?: MetricsConfig
}

/** The defaults the schema applies, for code that builds a gateway from a config it did not load. */
export const serverDefaults: Readonly<Omit<ServerConfig, 'tls'>> = Object.freeze({
  host: '127.0.0.1',
  port: 8080,
  bodyLimit: 1048576,
  requestTimeout: 30000,
  trustRequestId: true,
  exposeFlag: false
})

export const accessLogDefaults: Readonly<Omit<AccessLogConfig, 'fields'>> = Object.freeze({
  enabled: true,
  destination: 'stdout'
})

/** Config keys whose values are secrets or PEM files: never echoed in an error. */
export const secretKeys: ReadonlySet<string> = new Set(['key', 'cert', 'passphrase', 'password', 'secret', 'token', 'pfx', 'keyHash'])

const positiveInteger = { type: 'integer', minimum: 1 } as const
const nonEmptyString = { type: 'string', minLength: 1 } as const

const pemSource = nonEmptyString
const pemSources = { type: ['string', 'array'], minLength: 1, minItems: 1, items: nonEmptyString } as const

const accessLogFields = {
  type: 'array',
  items: { type: 'string', enum: [...recordFields] },
  uniqueItems: true
} as const

const serverSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    host: { ...nonEmptyString, default: serverDefaults.host },
    port: { type: 'integer', minimum: 0, maximum: 65535, default: serverDefaults.port },
    bodyLimit: { ...positiveInteger, default: serverDefaults.bodyLimit },
    requestTimeout: { type: 'integer', minimum: 0, default: serverDefaults.requestTimeout },
    trustRequestId: { type: 'boolean', default: serverDefaults.trustRequestId },
    exposeFlag: { type: 'boolean', default: serverDefaults.exposeFlag },
    loadShedding: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        maxEventLoopDelay: positiveInteger,
        maxHeapUsedBytes: positiveInteger,
        maxRssBytes: positiveInteger,
        maxEventLoopUtilization: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
        retryAfter: positiveInteger,
        // under-pressure samples the loop every 10 ms: a shorter interval sees no sample, which it
        // reads as an infinite delay (and sheds forever).
        sampleInterval: { type: 'integer', minimum: 50 }
      }
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      required: ['cert', 'key'],
      properties: {
        cert: pemSource,
        key: pemSource,
        ca: pemSources,
        requestCert: { type: 'boolean' }
      }
    }
  }
} as const

const accessLogSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    enabled: { type: 'boolean', default: accessLogDefaults.enabled },
    destination: { ...nonEmptyString, default: accessLogDefaults.destination },
    fields: accessLogFields
  }
} as const

const upstreamSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['targets'],
  properties: {
    targets: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', format: 'http-url', 'x-error': 'must be an http(s) URL' }
    },
    connectTimeout: positiveInteger,
    responseTimeout: positiveInteger,
    retries: { type: 'integer', minimum: 0, maximum: 5 },
    refusedBackoff: { type: 'integer', minimum: 0, maximum: 60_000 },
    tls: {
      type: 'object',
      additionalProperties: false,
      // A client certificate is useless without its key, and the other way round.
      dependencies: { cert: ['key'], key: ['cert'] },
      properties: {
        ca: pemSources,
        cert: pemSource,
        key: pemSource,
        servername: nonEmptyString,
        rejectUnauthorized: { type: 'boolean' },
        minVersion: { type: 'string', enum: [...tlsVersions] },
        maxVersion: { type: 'string', enum: [...tlsVersions] }
      }
    },
    healthCheck: {
      type: 'object',
      additionalProperties: false,
      properties: {
        path: { type: 'string', pattern: '^/', 'x-error': 'must start with "/"' },
        interval: { type: 'integer', minimum: 100 },
        timeout: positiveInteger,
        unhealthyThreshold: positiveInteger,
        healthyThreshold: positiveInteger
      }
    }
  }
} as const

const stringOrStrings = { type: ['string', 'array'], minLength: 1, minItems: 1, items: nonEmptyString } as const
const names = { type: 'array', minItems: 1, items: nonEmptyString } as const
const headerName = { type: 'string', pattern: '^[A-Za-z0-9-]+$', 'x-error': 'must be a header name' } as const
export const jwtAlgorithms = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const

const apiKeyEntrySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {
    id: nonEmptyString,
    key: { type: 'string', pattern: '^[\\x21-\\x7e]{1,512}$', 'x-error': 'must be 1 to 512 printable characters without spaces' },
    keyHash: { type: 'string', pattern: '^[0-9a-fA-F]{64}$', 'x-error': 'must be a sha256 digest in hex (64 characters)' },
    expiresAt: { type: 'string', format: 'date-time', 'x-error': 'must be an ISO 8601 date-time' },
    apis: names,
    revoked: { type: 'boolean' }
  }
} as const

/** One closed object per auth type, chosen by `type`. */
const authTypes = {
  apiKey: {
    required: ['keys'],
    properties: { header: headerName, queryParam: nonEmptyString, keys: { type: 'array', minItems: 1, items: apiKeyEntrySchema } }
  },
  jwt: {
    required: ['algorithms'],
    properties: {
      secret: nonEmptyString,
      publicKey: pemSource,
      algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: [...jwtAlgorithms] } },
      issuer: stringOrStrings,
      audience: stringOrStrings,
      requiredClaims: names,
      requiredScopes: names,
      clockTolerance: { type: 'integer', minimum: 0 },
      claimHeaders: { type: 'object', additionalProperties: headerName },
      forwardToken: { type: 'boolean' }
    }
  },
  external: {
    required: ['url'],
    properties: {
      url: { type: 'string', format: 'http-url', 'x-error': 'must be an http(s) URL' },
      timeout: positiveInteger,
      forwardHeaders: { type: 'array', items: headerName },
      resultHeaders: { type: 'array', items: headerName },
      cacheTtl: { type: 'integer', minimum: 0 },
      ca: pemSources
    }
  },
  mtls: {
    required: ['allowedFingerprints'],
    properties: {
      allowedFingerprints: {
        type: 'array',
        minItems: 1,
        items: { type: 'string', pattern: '^(?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$', 'x-error': 'must be a sha256 fingerprint (64 hex digits, colons allowed)' }
      }
    }
  }
} as const

const authSchema = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string', enum: Object.keys(authTypes) } },
  allOf: Object.entries(authTypes).map(([type, shape]) => ({
    if: { properties: { type: { const: type } }, required: ['type'] },
    then: { ...shape, additionalProperties: false, properties: { type: {}, ...shape.properties } }
  }))
} as const

// "100", "1 minute", "30s", "2 hours": checked in full by @faultline/quota's parseDuration.
const duration = {
  type: ['integer', 'string'],
  minimum: 1,
  pattern: '^\\s*\\d+(?:\\.\\d+)?\\s*[a-zA-Z]*\\s*$',
  'x-error': 'must be milliseconds or a duration such as "1 minute", "30s", "2 hours"'
} as const

const rateLimitSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['max', 'timeWindow'],
  properties: {
    max: positiveInteger,
    timeWindow: duration,
    key: { type: 'string', enum: ['consumer', 'ip'] }
  }
} as const

const quotaSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['max', 'period'],
  properties: {
    max: positiveInteger,
    period: { type: 'string', enum: ['day', 'week', 'month'] },
    key: { type: 'string', enum: ['consumer'] }
  }
} as const

const circuitBreakerSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: nonEmptyString,
    // Opens when the failure rate is strictly above it: 100 would never open.
    errorThresholdPercentage: { type: 'number', minimum: 0, exclusiveMaximum: 100 },
    volumeThreshold: positiveInteger,
    resetTimeout: { type: 'integer', minimum: 1, maximum: 2147483647 },
    rollingCountTimeout: { type: 'integer', minimum: 10, maximum: 2147483647 },
    rollingCountBuckets: positiveInteger,
    capacity: positiveInteger
  }
} as const

const redisSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: { type: 'string', pattern: '^rediss?://[^\\s]+$', 'x-error': 'must be a redis:// or rediss:// URL' },
    commandTimeout: positiveInteger,
    connectTimeout: positiveInteger
  }
} as const

const apiSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'prefix', 'upstream'],
  properties: {
    name: nonEmptyString,
    prefix: {
      type: 'string',
      // "/" alone, or segments without a trailing "/"; no route syntax (":param", "*") in a prefix.
      pattern: '^(?:/|(?:/[^/\\s?#:*]+)+)$',
      'x-error': 'must be a path that starts with "/" and does not end with "/" (except "/" itself), without spaces, "?", "#", ":" or "*"'
    },
    methods: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { type: 'string', enum: [...httpMethods] }
    },
    bodyLimit: positiveInteger,
    accessLog: {
      type: ['boolean', 'object'],
      additionalProperties: false,
      properties: { fields: accessLogFields }
    },
    exposeFlag: { type: 'boolean' },
    requireContentLength: { type: 'boolean' },
    contentTypes: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', pattern: '^[\\w.+-]+/(?:[\\w.+-]+|\\*)$', 'x-error': 'must be a media type like "application/json" or "text/*"' }
    },
    schema: { type: 'object' },
    upstream: upstreamSchema,
    auth: authSchema,
    rateLimit: rateLimitSchema,
    quota: quotaSchema,
    circuitBreaker: circuitBreakerSchema,
    failMode: { type: 'string', enum: ['open', 'closed'] }
  }
} as const

export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://faultline.dev/schemas/gateway-config.json',
  title: 'Faultline gateway configuration',
  type: 'object',
  additionalProperties: false,
  required: ['apis'],
  properties: {
    server: serverSchema,
    accessLog: accessLogSchema,
    apis: { type: 'array', minItems: 1, items: apiSchema },
    redis: redisSchema,
    metrics: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        path: { type: 'string', pattern: '^/[\\w\\-./~]*$', 'x-error': 'must be a path that starts with "/" (letters, digits, "-", "_", ".", "~", "/")' }
      }
    }
  }
} as const
