/**
 * A replacement for Fastify's `clientErrorHandler` (a server option, so it is passed when the app
 * is created): answers what Node's HTTP parser rejected with the contract's error body and a
 * request id, instead of Fastify's bare `{"message":"Client Error"}`. The core's own 'clientError'
 * listener, which runs after it, logs the line under the same id.
 */
import type { Socket } from 'node:net'
import { classifyParserError } from './classify-parser-error.js'
import { buildErrorBody, reasonPhrase } from './error-reply.js'
import { resolveRequestId } from './request-id.js'

export const kParserRequestId = Symbol('faultline.parserRequestId')

type ParserSocket = Socket & { [kParserRequestId]?: string, _httpMessage?: { headersSent?: boolean } | null }

export function clientErrorHandler (err: NodeJS.ErrnoException, socket: Socket): void {
  const parsed = classifyParserError(err)
  const s = socket as ParserSocket
  // Nothing to answer: the peer is gone (ECONNRESET, EPIPE), or a response already started.
  if (parsed === undefined || !socket.writable || s._httpMessage?.headersSent === true) {
    socket.destroy()
    return
  }
  const id = resolveRequestId(undefined, false)
  s[kParserRequestId] = id
  const body = JSON.stringify(buildErrorBody(parsed.flag, parsed.status, id, false))
  socket.end(
    `HTTP/1.1 ${parsed.status} ${reasonPhrase(parsed.status)}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `x-request-id: ${id}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  )
}
