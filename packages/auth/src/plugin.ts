/**
 * The auth boundary: one authenticator per registration, run in the onRequest hook of the routes
 * of the context it is registered in (register it next to the API's routes, e.g. with the proxy).
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { createApiKeyAuthenticator } from './api-key-auth.js'
import { createExternalAuthenticator } from './external-auth.js'
import { createJwtAuthenticator } from './jwt-auth.js'
import { createMtlsAuthenticator } from './mtls-auth.js'
import type { AuthOptions, Authenticator } from './options.js'

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

async function faultlineAuth (fastify: FastifyInstance, options: AuthOptions): Promise<void> {
  const authenticator = await createAuthenticator(fastify, options)
  fastify.addHook('onRequest', async function authenticate (request: FastifyRequest, reply: FastifyReply) {
    await authenticator.authenticate(request, reply)
  })
  const close = authenticator.close
  if (close !== undefined) {
    fastify.addHook('onClose', async () => { await close.call(authenticator) })
  }
}

export const faultlineAuthPlugin: FastifyPluginAsync<AuthOptions> = fp(faultlineAuth, {
  fastify: '5.x',
  name: '@faultline/auth',
  dependencies: ['@faultline/core']
})
