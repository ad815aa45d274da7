/**
 * A replacement for Fastify's `clientErrorHandler` (a server option, so it is passed when the app
 * is created): answers what Node's HTTP parser rejected with the contract's error body and a
 * request id, instead of Fastify's bare `{"message":"Client Error"}`. The core's own 'clientError'
 * listener, which runs after it, logs the line under the same id.
 */
import type { Socket } from 'node:net'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { FaultlineError } from './faultline-error.js'
import { kReply } from './internal.js'
import type { FaultlineCore } from './plugin.js'
import { classifyParserError } from './classify-parser-error.js'
import { buildErrorBody, reasonPhrase } from './error-reply.js'
import { resolveRequestId } from './request-id.js'

export const kParserRequestId = Symbol('faultline.parserRequestId')
/** Set on a socket whose parser error was logged: what the client sends after it is the same error. */
export const kParserLogged = Symbol('faultline.parserLogged')

type ParserSocket = Socket & {
  [kParserRequestId]?: string
  _httpMessage?: { headersSent?: boolean, [kReply]?: FastifyReply } | null
}

export function clientErrorHandler (err: NodeJS.ErrnoException, socket: Socket): void {
  const parsed = classifyParserError(err)
  const s = socket as ParserSocket
  // Nothing to answer: the peer is gone (ECONNRESET, EPIPE, or closed mid-request: CDC), a response
  // already started, or this connection was answered already (a client trickling on after its 408).
  if (parsed === undefined || parsed.flag === 'CDC' || !socket.writable || s._httpMessage?.headersSent === true || s[kParserRequestId] !== undefined) {
    socket.destroy()
    return
  }
  // A request already being handled (its body failed to parse) keeps its id: the logged line is its.
  const id = s._httpMessage?.[kReply]?.faultline?.request_id ?? resolveRequestId(undefined, false)
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

/**
 * For Fastify's `frameworkErrors` server option: a URL Fastify cannot decode (`%c0%ae`...) is
 * answered before any hook runs, with the path echoed back. This answers IHD `invalid_path` through
 * the core instead, with a record and an access line like any other request.
 */
export function frameworkErrors (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const details = error.code === 'FST_ERR_BAD_URL' ? 'invalid_path' : 'malformed_request'
  const rejection = new FaultlineError('IHD', { details })
  const core = request.server.faultline as FaultlineCore | undefined
  if (core !== undefined) {
    core.reject(request, reply, rejection)
    return
  }
  const id = request.id
  reply.code(400).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(buildErrorBody('IHD', 400, id, false)))
}
