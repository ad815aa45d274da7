// The request handler of the `ok` server (also served by tlsGood and the other TLS
// servers): an echo upstream with a few paths that misbehave on purpose.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ResourceTracker } from './resource-tracker.js'
import { closeConnection, resetConnection, writeRawAndClose } from './socket-faults.js'

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void

/** Longest delay /slow and /slow-body accept. */
export const MAX_DELAY_MS = 60_000
const DEFAULT_DELAY_MS = 1_000
/** How long the mid-body faults wait after the partial body before killing the socket, so the peer has read it. */
const MID_BODY_PAUSE_MS = 50
const HUGE_HEADER_BYTES = 70 * 1024

export const BAD_STATUS_RESPONSE = 'HTTP/1.1 999 Weird\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nweird\n'
export const GARBAGE_RESPONSE = 'HELLO THIS IS NOT HTTP\r\n\r\n'

interface ParsedRequest {
  req: IncomingMessage
  res: ServerResponse
  method: string
  path: string
  /** Raw query string, without the '?'; '' when there is none. */
  query: string
  bodyBytes: number
}

const METHODS_WITH_BODY = new Set(['POST', 'PUT', 'PATCH'])

export function createUpstreamHandler (tracker: ResourceTracker): RequestHandler {
  return (req, res) => {
    let bodyBytes = 0
    req.on('data', (chunk: Buffer) => { bodyBytes += chunk.length })
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fault-lab.invalid')
      route({ req, res, method: req.method ?? 'GET', path: url.pathname, query: url.search.slice(1), bodyBytes }, tracker)
    })
  }
}

function route (r: ParsedRequest, tracker: ResourceTracker): void {
  const socket = r.req.socket
  const statusMatch = /^\/status\/(\d{3})$/.exec(r.path)
  if (statusMatch !== null) return answerStatus(r, Number(statusMatch[1]))

  switch (r.path) {
    case '/slow':
      return tracker.delay(delayFrom(r.query), () => sendJson(r.res, 200, echo(r)), socket)
    case '/slow-body':
      r.res.writeHead(200, { 'content-type': 'text/plain' })
      r.res.write('first chunk\n')
      return tracker.delay(delayFrom(r.query), () => r.res.end('rest of the body\n'), socket)
    case '/reset-mid-body':
      return sendPartialBodyThen(r.res, tracker, () => resetConnection(socket))
    case '/close-mid-body':
      return sendPartialBodyThen(r.res, tracker, () => closeConnection(socket))
    case '/reset':
      return resetConnection(socket)
    case '/close':
      return closeConnection(socket)
    case '/bad-status':
      return writeRawAndClose(socket, BAD_STATUS_RESPONSE)
    case '/garbage':
      return writeRawAndClose(socket, GARBAGE_RESPONSE)
    case '/huge-header':
      r.res.setHeader('x-huge', 'h'.repeat(HUGE_HEADER_BYTES))
      return sendJson(r.res, 200, echo(r))
    default:
      return sendJson(r.res, 200, echo(r))
  }
}

function echo (r: ParsedRequest): Record<string, unknown> {
  const body: Record<string, unknown> = { ok: true, method: r.method, path: r.path, query: r.query }
  if (METHODS_WITH_BODY.has(r.method)) body.bodyBytes = r.bodyBytes
  if (r.path.startsWith('/echo-headers')) body.headers = r.req.headers
  return body
}

function answerStatus (r: ParsedRequest, status: number): void {
  if (status < 200 || status > 599) {
    return sendJson(r.res, 400, { ok: false, error: 'status must be between 200 and 599' })
  }
  sendJson(r.res, status, { ok: status < 400, status, path: r.path })
}

/** Headers and the first part of a chunked body, then `kill` (after a short pause so the peer reads them). */
function sendPartialBodyThen (res: ServerResponse, tracker: ResourceTracker, kill: () => void): void {
  res.writeHead(200, { 'content-type': 'text/plain' })
  res.write('partial body, the rest never comes\n', () => {
    tracker.delay(MID_BODY_PAUSE_MS, kill, res.socket ?? undefined)
  })
}

/** `ms` from the query string, clamped to 0..MAX_DELAY_MS; DEFAULT_DELAY_MS when absent or not a number. */
function delayFrom (query: string): number {
  const ms = Number.parseInt(new URLSearchParams(query).get('ms') ?? '', 10)
  if (Number.isNaN(ms)) return DEFAULT_DELAY_MS
  return Math.min(Math.max(ms, 0), MAX_DELAY_MS)
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
  res.end(json)
}
