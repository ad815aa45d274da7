/**
 * The auth boundary: one authenticator per registration, run in the onRequest hook of the routes
 * of the context it is registered in (register it next to the API's routes, e.g. with the proxy).
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { isFaultlineError } from '@faultline/core'
import { createApiKeyAuthenticator } from './api-key-auth.js'
import { CONSUMER_HEADER, createExternalAuthenticator } from './external-auth.js'
import { createJwtAuthenticator } from './jwt-auth.js'
import { createMtlsAuthenticator } from './mtls-auth.js'
import type { AuthOptions, Authenticator } from './options.js'
import { removeRequestHeader } from './request-headers.js'

async function createAuthenticator (fastify: FastifyInstance, options: AuthOptions): Promise<Authenticator> {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`@faultline/auth: options must be an object, got ${JSON.stringify(options)}`)
  }
  switch (options.type) {
    case 'apiKey': return createApiKeyAuthenticator(options)
    case 'jwt': return await createJwtAuthenticator(fastify, options)
    case 'external': return createExternalAuthenticator(options)
    case 'mtls': return createMtlsAuthenticator(options)
    default:
      throw new TypeError(`@faultline/auth: option "type" must be one of apiKey, jwt, external, mtls, got ${JSON.stringify((options as { type?: unknown }).type)}`)
  }
}

// Options of each type, so that a typo is an error at registration rather than a silent default.
// Fastify's own register options may ride along.
const common = ['type', 'prefix', 'logLevel', 'logSerializers']
const knownOptions: Record<string, readonly string[]> = {
  apiKey: [...common, 'header', 'queryParam', 'keys', 'lookup', 'cache'],
  jwt: [...common, 'secret', 'publicKey', 'algorithms', 'issuer', 'audience', 'requiredClaims', 'requiredScopes', 'clockTolerance', 'claimHeaders', 'forwardToken'],
  external: [...common, 'url', 'timeout', 'forwardHeaders', 'resultHeaders', 'cacheTtl', 'ca'],
  mtls: [...common, 'allowedFingerprints']
}

function checkOptionNames (options: AuthOptions): void {
  const known = knownOptions[options.type]
  if (known === undefined) return
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) {
      throw new TypeError(`@faultline/auth: unknown option "${name}" for type ${options.type} (known: ${known.filter((k) => !common.includes(k)).join(', ')})`)
    }
  }
}

/** The challenge of a 401 (RFC 9110 section 11.6.1): how the client should authenticate. */
function challengeFor (options: AuthOptions): ((flag: string) => string) | undefined {
  switch (options.type) {
    case 'apiKey': {
      const header = `ApiKey header="${(options.header ?? 'x-api-key').toLowerCase()}"`
      return () => header
    }
    // RFC 6750: no error code when the request had no credential, invalid_token when it had a bad one.
    case 'jwt': return (flag) => flag === 'AMF' || flag === 'IHD' ? 'Bearer' : 'Bearer error="invalid_token"'
    // mTLS has no HTTP challenge (the certificate belongs to the handshake), and an external
    // service's 401 is its own decision: neither invents one.
    default: return undefined
  }
}

const printable = /^[\x20-\x7e]+$/

/**
 * The auth boundary of one API as an onRequest hook, for routes that share a scope with other
 * APIs' routes (as in @faultline/gateway): the plugin below adds the same hook to its scope.
 * Lifecycle hooks (closing the authenticator) go to `scope`; no request hook or decorator does.
 */
export async function createAuthHook (scope: FastifyInstance, options: AuthOptions): Promise<onRequestHookHandler> {
  const authenticator = await createAuthenticator(scope, options)
  checkOptionNames(options)
  const challenge = challengeFor(options)
  const close = authenticator.close
  if (close !== undefined) {
    scope.addHook('onClose', async () => { await close.call(authenticator) })
  }

  /** A 401 says how to authenticate (when the type has a challenge). */
  function refused (reply: FastifyReply, err: unknown): Error {
    if (challenge !== undefined && isFaultlineError(err) && err.statusCode === 401) {
      reply.header('www-authenticate', challenge(err.flag))
    }
    return err as Error
  }

  // The upstream learns who the consumer is from the gateway, unless the authenticator mapped
  // something else to that header (claimHeaders, resultHeaders).
  function nameConsumer (request: FastifyRequest, reply: FastifyReply): void {
    const consumer = reply.faultline?.consumer
    if (request.headers[CONSUMER_HEADER] === undefined && consumer !== undefined && printable.test(consumer)) {
      request.headers[CONSUMER_HEADER] = consumer
    }
  }

  // A callback hook, not an async one: an authenticator that answers synchronously (API keys in
  // the table) costs no promise and no microtask turn.
  return function authenticate (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    // The header that tells the upstream who the consumer is: whatever the client sent as its
    // value is dropped before anything can trust it.
    removeRequestHeader(request, CONSUMER_HEADER)
    let pending: Promise<void> | void
    try {
      pending = authenticator.authenticate(request, reply)
    } catch (err) {
      done(refused(reply, err))
      return
    }
    if (pending === undefined) {
      nameConsumer(request, reply)
      done()
      return
    }
    pending.then(() => {
      nameConsumer(request, reply)
      done()
    }, (err: unknown) => { done(refused(reply, err)) })
  }
}

async function faultlineAuth (fastify: FastifyInstance, options: AuthOptions): Promise<void> {
  fastify.addHook('onRequest', await createAuthHook(fastify, options))
}

export const faultlineAuthPlugin: FastifyPluginAsync<AuthOptions> = fp(faultlineAuth, {
  fastify: '5.x',
  name: '@faultline/auth',
  dependencies: ['@faultline/core']
})
