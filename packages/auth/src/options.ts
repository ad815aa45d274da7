import type { FastifyReply, FastifyRequest } from 'fastify'

/** One API key. Give the key itself or its sha256 (hex); the log only ever shows `id`. */
export interface ApiKeyEntry {
  /** Who the key belongs to: written to the access log as `consumer`. */
  id: string
  /** The key, in clear (from config, ideally through `${ENV}`). */
  key?: string
  /** sha256 of the key, hex (64 characters), for configs that must not hold the key. */
  keyHash?: string
  /** After this instant the key is AKE (ISO 8601 string or Date). */
  expiresAt?: string | Date
  /** API names this key may use; absent means every API. Others get ACD. */
  apis?: string[]
  /** A revoked key is AKI, like an unknown one. */
  revoked?: boolean
}

export interface ApiKeyAuthOptions {
  type: 'apiKey'
  /** Header carrying the key. Default `x-api-key`. */
  header?: string
  /** Also accept the key in this query parameter (then removed before proxying, never logged). */
  queryParam?: string
  /** Keys known up front. */
  keys?: ApiKeyEntry[]
  /**
   * Looks a key up elsewhere (the user's database) by its sha256 hex digest; resolves to the entry
   * or null. Consulted when the key is not among `keys`; answers are cached (`cache`).
   */
  lookup?: (keyHash: string) => Promise<ApiKeyEntry | null | undefined>
  /** Bounds the lookup cache. Default `{ max: 10000, ttl: 60000 }` (ttl in ms). */
  cache?: { max?: number, ttl?: number }
}

export interface JwtAuthOptions {
  type: 'jwt'
  /** Shared secret for HS* algorithms. */
  secret?: string
  /** PEM public key for RS*, PS* and ES* algorithms. */
  publicKey?: string
  /** Accepted algorithms. Required: a token signed with anything else (or `none`) is TKI. */
  algorithms: string[]
  /** Accepted `iss` value(s). */
  issuer?: string | string[]
  /** Accepted `aud` value(s). */
  audience?: string | string[]
  /** Claims that must be present. */
  requiredClaims?: string[]
  /** Scopes the token must carry (in `scope`, space-separated, or `scp`, an array); otherwise ACD. */
  requiredScopes?: string[]
  /** Seconds of clock skew allowed for `exp` and `nbf`. Default 0. */
  clockTolerance?: number
  /** Claims forwarded to the upstream as request headers: `{ sub: 'x-consumer-id' }`. Incoming headers of those names are removed first. */
  claimHeaders?: Record<string, string>
  /** Forward the Authorization header (the raw token) to the upstream. Default false. */
  forwardToken?: boolean
}

export interface ExternalAuthOptions {
  type: 'external'
  /** The auth service's URL (http or https); the gateway sends it a GET. */
  url: string
  /** ms for the whole decision (connect + answer). Default 1000. */
  timeout?: number
  /** Request headers forwarded to the auth service. Default `['authorization']`. */
  forwardHeaders?: string[]
  /** Headers of an allowing answer copied onto the proxied request. Default none. */
  resultHeaders?: string[]
  /** Cache decisions (allow and deny) for this many ms, keyed by the forwarded headers. Default 0: off. */
  cacheTtl?: number
  /** PEM CA(s) for an https auth service with a private CA. */
  ca?: string | string[]
}

export interface MtlsAuthOptions {
  type: 'mtls'
  /** sha256 fingerprints allowed (hex, with or without colons, any case). Required. */
  allowedFingerprints: string[]
}

export type AuthOptions = ApiKeyAuthOptions | JwtAuthOptions | ExternalAuthOptions | MtlsAuthOptions

/**
 * What each auth type implements. `authenticate` runs in the route's onRequest hook: it resolves
 * when the request may go on (having set `reply.faultline.consumer` when it knows who it is), and
 * throws a FaultlineError carrying the flag otherwise.
 */
export interface Authenticator {
  /** `error_source` of its failures: ApiKeyAuth, JwtAuth, ExternalAuth or MtlsAuth. */
  readonly source: string
  authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void> | void
  close?: () => Promise<void> | void
}
