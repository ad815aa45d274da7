/**
 * Taking a header out of a request without `delete`. Deleting a property other than the last one
 * added turns Node's headers object into a slow dictionary, and every later reader pays for it:
 * Fastify, reply-from's copy of the headers for the upstream, undici. The API key's header is
 * taken out of every authenticated request, so the headers are copied without it instead.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'

/** Removes `name` (lower case) from the request's headers; nothing happens when it is absent. */
export function removeRequestHeader (request: FastifyRequest, name: string): void {
  const headers = request.headers
  if (headers[name] === undefined) return
  const kept: IncomingHttpHeaders = {}
  const names = Object.keys(headers)
  for (let i = 0; i < names.length; i++) {
    const key = names[i]
    if (key !== name) kept[key] = headers[key]
  }
  request.raw.headers = kept
}
