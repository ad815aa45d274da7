/**
 * What the proxy checks about a request body before and while it streams to the upstream:
 * the API's bodyLimit (declared or streamed: BTL), a required Content-Length (CLM), the accepted
 * content types (UMT), and an optional JSON Schema for JSON bodies (BIV, validated without type
 * coercion; the original bytes are forwarded, not a re-serialisation).
 */
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import { Ajv, type ValidateFunction } from 'ajv'
import { declaresBody, FaultlineError } from '@faultline/core'

export interface BodyPolicy {
  bodyLimit: number
  requireContentLength: boolean
  /** Accepted media types (lower case; `type/*` allowed); undefined: any. */
  contentTypes: readonly string[] | undefined
  /** Compiled JSON Schema for JSON bodies; undefined: none. */
  validate: ValidateFunction | undefined
}

const SOURCE = 'RequestValidation'

export function compileSchema (schema: object): ValidateFunction {
  // No coercion, no defaults, no removal: the body is judged as the client sent it.
  const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, strict: false })
  return ajv.compile(schema)
}

function mediaType (request: FastifyRequest): string {
  const raw = request.headers['content-type'] ?? ''
  const semi = raw.indexOf(';')
  return (semi === -1 ? raw : raw.slice(0, semi)).trim().toLowerCase()
}

function accepted (type: string, list: readonly string[]): boolean {
  for (const allowed of list) {
    if (allowed === type) return true
    if (allowed.endsWith('/*') && type.startsWith(allowed.slice(0, -1))) return true
  }
  return false
}

/** Checks that need only the request head; returns the failure, if any. Runs before the body is read. */
export function checkRequestHead (request: FastifyRequest, policy: BodyPolicy): FaultlineError | undefined {
  const declared = request.headers['content-length']
  if (declared !== undefined && Number(declared) > policy.bodyLimit) return new FaultlineError('BTL', { source: SOURCE })
  if (!declaresBody(request.headers)) return undefined
  if (policy.requireContentLength && declared === undefined) return new FaultlineError('CLM', { source: SOURCE })
  if (policy.contentTypes !== undefined && !accepted(mediaType(request), policy.contentTypes)) {
    return new FaultlineError('UMT', { source: SOURCE })
  }
  return undefined
}

/** Passes a streamed body through, failing it with BTL once it grows past the limit. */
class BodyLimit extends Transform {
  private seen = 0
  constructor (private readonly limit: number) {
    super()
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length
    if (this.seen > this.limit) {
      callback(new FaultlineError('BTL', { source: SOURCE }))
      return
    }
    callback(null, chunk)
  }
}

function isJson (type: string): boolean {
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'))
}

async function readAll (payload: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of payload) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    size += buffer.length
    if (size > limit) throw new FaultlineError('BTL', { source: SOURCE })
    chunks.push(buffer)
  }
  return Buffer.concat(chunks)
}

/**
 * The body the proxy forwards: the client's stream, limited when its size was not declared, or,
 * for JSON with a schema, the validated original bytes.
 */
export async function prepareBody (request: FastifyRequest, payload: NodeJS.ReadableStream, policy: BodyPolicy): Promise<NodeJS.ReadableStream> {
  const validate = policy.validate
  if (validate !== undefined && isJson(mediaType(request))) {
    const bytes = await readAll(payload, policy.bodyLimit)
    let body: unknown
    try {
      body = JSON.parse(bytes.toString('utf8'))
    } catch (err) {
      throw new FaultlineError('BIV', { source: SOURCE, details: 'body_invalid', cause: err })
    }
    if (!validate(body)) throw new FaultlineError('BIV', { source: SOURCE, details: 'schema_validation_failed' })
    return Readable.from([bytes])
  }
  if (request.headers['content-length'] !== undefined) return payload
  const limited = new BodyLimit(policy.bodyLimit)
  // Errors travel both ways: a client abort fails the upstream body, and BTL stops reading.
  pipeline(payload as Readable, limited, () => {})
  return limited
}
