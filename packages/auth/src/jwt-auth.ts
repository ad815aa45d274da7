// Being written (issue 3): JWT authentication through @fastify/jwt.
import type { FastifyInstance } from 'fastify'
import type { Authenticator, JwtAuthOptions } from './options.js'

export async function createJwtAuthenticator (_fastify: FastifyInstance, _options: JwtAuthOptions): Promise<Authenticator> {
  throw new Error('@faultline/auth: jwt is not implemented yet')
}
