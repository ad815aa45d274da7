import type { LookupFunction } from 'node:net'
import type { SecureVersion } from 'node:tls'
import type { HTTPMethods } from 'fastify'

export interface UpstreamTlsOptions {
  /** PEM CA certificate(s) trusted for this upstream (replace the system store). */
  ca?: string | string[]
  /** PEM client certificate and key, when the upstream requires mTLS. */
  cert?: string
  key?: string
  /** Name sent as SNI and checked against the certificate (default: the target's host name). */
  servername?: string
  /** Verify the upstream certificate. Default true (reply-from's default is false: we do not inherit it). */
  rejectUnauthorized?: boolean
  minVersion?: SecureVersion
  maxVersion?: SecureVersion
}

export interface HealthCheckOptions {
  /** Path probed with GET on each target. Default `/health`. */
  path?: string
  /** ms between probes. Default 5000. */
  interval?: number
  /** ms a probe may take. Default 1000. */
  timeout?: number
  /** Consecutive failures (probes or, passively, transport failures) that mark a target unhealthy. Default 2. */
  unhealthyThreshold?: number
  /** Consecutive successful probes that mark it healthy again. Default 1. */
  healthyThreshold?: number
}

export interface UpstreamOptions {
  /** One or more `http(s)://host:port[/base]` targets, used round-robin. */
  targets: string[]
  /** ms to establish TCP+TLS. Default 5000. */
  connectTimeout?: number
  /** ms to wait for response headers, and between body chunks. Default 30000. */
  responseTimeout?: number
  /** Extra attempts for idempotent methods without a body, on connection failures only. Default 0. */
  retries?: number
  /**
   * ms a target that refused a connection (UCF) is not dialled again: its requests go to another
   * target, or, when none is left, get UCF at once. A success or a passing health probe ends it.
   * 0 dials every time. Default 100.
   */
  refusedBackoff?: number
  tls?: UpstreamTlsOptions
  healthCheck?: HealthCheckOptions
  /** Custom host name resolution (Node's `net.connect` `lookup`), e.g. for service discovery. Default: dns.lookup. */
  lookup?: LookupFunction
}

export interface FaultlineProxyOptions {
  /** The API's name (`api_name` in the log). */
  name: string
  /** Methods the API accepts; others get MNA 405. Default: all. */
  methods?: HTTPMethods[]
  /** Request body limit in bytes, declared (Content-Length) or streamed (chunked). Default: the server's bodyLimit. */
  bodyLimit?: number
  /** Refuse bodies sent without Content-Length (chunked) with CLM 411. Default false. */
  requireContentLength?: boolean
  /** Media types a request body may have (`application/json`, `text/*`); others get UMT 415. Default: any. */
  contentTypes?: string[]
  /** JSON Schema that JSON bodies must satisfy (validated without type coercion); otherwise BIV 400. */
  schema?: object
  /** Access logging for this API: true, false, or `{ fields }`. Default: the access-log plugin's setting. */
  accessLog?: boolean | { fields?: string[] }
  /** Expose the flag to this API's clients. Default: the core's setting. */
  exposeFlag?: boolean
  upstream: UpstreamOptions
}
