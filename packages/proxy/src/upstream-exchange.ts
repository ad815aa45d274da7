/**
 * One attempt's upstream response, as reply-from receives it: an undici dispatch handler in place
 * of `Dispatcher.request()`.
 *
 * A small response whose size is declared (Content-Length up to `BUFFERED_BODY_LIMIT`, with a
 * Content-Type) is held until it is complete and handed on as one Buffer, as nginx buffers
 * proxied responses: the reply goes out in a single write, without a stream to pipe. Every other
 * response streams, with undici's backpressure, through a Readable of our own.
 *
 * Why not `request()`: per request it builds an AsyncResource and a body stream that Fastify then
 * pipes, and that was the largest part of what the gateway spent beyond the bare reply-from
 * (bench/, BENCHMARKS.md).
 *
 * A failure is seen by the client exactly as it would be without the buffer: before the status
 * line it is a transport error (reply-from's retries and error path); once the upstream's status
 * came, the client gets that status and the bytes that arrived, then the cut (the contract's
 * `response_truncated`), whatever the body's size.
 */
import { IncomingMessage, type IncomingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'
import { errors, util as undiciUtil } from 'undici'

/** Largest declared body held in memory rather than streamed (nginx's default proxy buffers hold 32 to 64 KiB). */
export const BUFFERED_BODY_LIMIT = 64 * 1024

/** A response body the gateway already holds in full. */
export class CompleteBody {
  constructor (readonly bytes: Buffer) {}
  /** reply-from destroys the body of a response it drops; there is nothing to release. */
  destroy (): void {}
}

/** What reply-from's undici path expects back from `request()`. */
export interface ExchangeResponse {
  statusCode: number
  headers: IncomingHttpHeaders
  body: Readable | CompleteBody
}

export type ExchangeCallback = (err: Error | null, data?: ExchangeResponse) => void

/** Where the client's going away is recorded, for the attempt in flight and any attempt after it. */
export interface ExchangeOwner {
  cancelled: boolean
  exchange: UpstreamExchange | null
}

/** Connection-level headers (RFC 9110 7.6.1): they describe the upstream hop, not the client's. */
const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate'])

/**
 * The response head as reply-from would have it from undici (lower-case names, repeated names as
 * arrays, latin1 values), without the hop-by-hop headers and the ones `Connection` names. Built in
 * one pass into a new object: deleting names afterwards turns it into a slow dictionary.
 */
export function responseHeaders (raw: Buffer[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {}
  let connection: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = undiciUtil.headerNameToString(raw[i])
    const value = raw[i + 1].toString('latin1')
    if (HOP_BY_HOP.has(name)) {
      if (name === 'connection') connection = connection === undefined ? value : `${connection}, ${value}`
      continue
    }
    if (name === '__proto__') continue
    const seen = out[name]
    if (seen === undefined) out[name] = value
    else if (typeof seen === 'string') out[name] = [seen, value]
    else seen.push(value)
  }
  // `keep-alive` and `close` (nearly every response) name nothing beyond the set.
  if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close') {
    for (const listed of connection.split(',')) {
      const name = listed.trim().toLowerCase()
      if (name !== '' && Object.hasOwn(out, name)) {
        // Rare: this copy becomes a dictionary, the common path does not.
        delete out[name]
      }
    }
  }
  return out
}

/** Whether a response may be held: a body of declared, small length, with a Content-Type. */
function mayHold (method: string, statusCode: number, headers: IncomingHttpHeaders): boolean {
  if (method === 'HEAD' || statusCode === 204 || statusCode === 304) return false
  // Fastify labels a Buffer without a Content-Type as octet-stream: such a response streams, as it came.
  if (headers['content-type'] === undefined) return false
  const declared = headers['content-length']
  if (typeof declared !== 'string' || declared.length === 0 || declared.length > 6) return false
  let n = 0
  for (let i = 0; i < declared.length; i++) {
    const digit = declared.charCodeAt(i) - 48
    if (digit < 0 || digit > 9) return false
    n = n * 10 + digit
  }
  return n <= BUFFERED_BODY_LIMIT
}

function noop (): void {}

/** The client's body, being streamed up when the attempt failed: nobody reads it any more. */
function discardRequestBody (body: unknown, err: Error): void {
  if (body === null || typeof body !== 'object') return
  const stream = body as Readable
  if (typeof stream.pipe !== 'function' || typeof stream.on !== 'function' || stream.destroyed) return
  stream.on('error', noop)
  // Destroying a server request closes its socket too, and the client still needs its answer
  // (undici's own request() detaches the socket the same way).
  if (stream instanceof IncomingMessage) (stream as unknown as { socket: null }).socket = null
  stream.destroy(err)
}

/**
 * A streamed upstream body: reading it resumes the upstream socket, destroying it aborts the request.
 * `failed()` builds the body of a held response whose upstream failed before its end.
 */
class UpstreamBody extends Readable {
  private held: Buffer[] | null = null
  private failure: Error | null = null

  constructor (private readonly exchange: UpstreamExchange, highWaterMark = BUFFERED_BODY_LIMIT) {
    super({ highWaterMark })
  }

  /**
   * The bytes that came, one read at a time, then the failure. A high-water mark of 0 means no
   * read ahead: the failure is raised only once the last chunk was taken (and written to the client).
   */
  static failed (exchange: UpstreamExchange, held: Buffer[], failure: Error): UpstreamBody {
    const body = new UpstreamBody(exchange, 0)
    body.held = held
    body.failure = failure
    return body
  }

  override _read (): void {
    const failure = this.failure
    if (failure === null) {
      this.exchange.resume()
      return
    }
    const next = (this.held as Buffer[]).shift()
    if (next !== undefined) {
      this.push(next)
      return
    }
    this.failure = null
    process.nextTick(() => this.destroy(failure))
  }

  override _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    this.exchange.bodyDestroyed(err)
    callback(err)
  }
}

type Resume = () => void
type Abort = (reason?: Error) => void

/** undici's (classic) dispatch handler for one attempt. */
export class UpstreamExchange {
  private abortFn: Abort | null = null
  private resumeFn: Resume | null = null
  private callback: ExchangeCallback | null
  private statusCode = 0
  private headers: IncomingHttpHeaders | null = null
  /** Buffered mode: the chunks so far. */
  private chunks: Buffer[] | null = null
  private stream: UpstreamBody | null = null
  private finished = false

  constructor (
    private readonly method: string,
    private readonly requestBody: unknown,
    private readonly owner: ExchangeOwner | null,
    callback: ExchangeCallback
  ) {
    this.callback = callback
    if (owner !== null) owner.exchange = this
  }

  /** The client went away: stop this attempt (before or after its response started). */
  cancel (): void {
    if (this.finished) return
    const reason = new errors.RequestAbortedError()
    if (this.stream !== null) this.stream.destroy(reason)
    else if (this.abortFn !== null) this.abortFn(reason)
  }

  resume (): void {
    this.resumeFn?.()
  }

  bodyDestroyed (err: Error | null): void {
    if (this.finished) return
    this.abortFn?.(err ?? new errors.RequestAbortedError())
  }

  onConnect (abort: Abort): void {
    this.abortFn = abort
    if (this.owner?.cancelled === true) abort(new errors.RequestAbortedError())
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: Resume): boolean {
    if (statusCode < 200) return true // 100 Continue, 103 Early Hints: the final head follows
    const headers = responseHeaders(rawHeaders)
    this.statusCode = statusCode
    this.headers = headers
    this.resumeFn = resume
    if (mayHold(this.method, statusCode, headers)) {
      this.chunks = []
      return true
    }
    const stream = new UpstreamBody(this)
    this.stream = stream
    this.respond(stream)
    return true
  }

  onData (chunk: Buffer): boolean {
    if (this.chunks !== null) {
      this.chunks.push(chunk)
      return true
    }
    return this.stream?.push(chunk) ?? true
  }

  onComplete (): void {
    this.finish()
    const chunks = this.chunks
    if (chunks !== null) {
      this.chunks = null
      this.respond(new CompleteBody(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)))
      return
    }
    this.stream?.push(null)
  }

  onError (err: Error): void {
    this.finish()
    discardRequestBody(this.requestBody, err)
    const chunks = this.chunks
    if (chunks !== null) {
      // The status came and the body was being held: the client sees that status, the bytes so far,
      // then the cut, as it would have without the buffer.
      this.chunks = null
      this.respond(UpstreamBody.failed(this, chunks, err))
      return
    }
    const stream = this.stream
    if (stream !== null) {
      // After the handlers already queued, as undici does.
      queueMicrotask(() => stream.destroy(err))
      return
    }
    const callback = this.callback
    if (callback !== null) {
      this.callback = null
      // undici may fail the request synchronously inside dispatch(): answer on a later tick.
      queueMicrotask(() => callback(err))
    }
  }

  private finish (): void {
    this.finished = true
    if (this.owner !== null && this.owner.exchange === this) this.owner.exchange = null
  }

  private respond (body: Readable | CompleteBody): void {
    const callback = this.callback
    if (callback === null) return
    this.callback = null
    callback(null, { statusCode: this.statusCode, headers: this.headers as IncomingHttpHeaders, body })
  }
}
