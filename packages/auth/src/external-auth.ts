// Being written (issue 3): external auth service.
import type { Authenticator, ExternalAuthOptions } from './options.js'

export function createExternalAuthenticator (_options: ExternalAuthOptions): Authenticator {
  throw new Error('@faultline/auth: external is not implemented yet')
}
