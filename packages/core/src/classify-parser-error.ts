/**
 * Errors Node's HTTP parser raises before Fastify sees a request ('clientError'): they never
 * reach a hook, so the core classifies and logs them here (CONTRACT.md: HTL, RTO, IHD).
 */

export interface ParserErrorClassification {
  flag: string
  details: string
  /** The status Fastify's client-error handler writes for it. */
  status: number
  method?: string
  path?: string
}

const parserCodes: Record<string, [string, string, number]> = {
  HPE_HEADER_OVERFLOW: ['HTL', 'headers_too_large', 431],
  ERR_HTTP_REQUEST_TIMEOUT: ['RTO', 'request_timeout', 408],
  HPE_INVALID_CONTENT_LENGTH: ['IHD', 'invalid_content_length', 400],
  HPE_UNEXPECTED_CONTENT_LENGTH: ['IHD', 'duplicate_content_length', 400],
  HPE_INVALID_TRANSFER_ENCODING: ['IHD', 'invalid_transfer_encoding', 400],
  HPE_INVALID_CHUNK_SIZE: ['IHD', 'invalid_chunked_encoding', 400],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: ['IHD', 'invalid_chunked_encoding', 400],
  HPE_INVALID_METHOD: ['IHD', 'invalid_method', 400],
  HPE_INVALID_URL: ['IHD', 'invalid_request_line', 400],
  HPE_INVALID_VERSION: ['IHD', 'invalid_request_line', 400],
  HPE_INVALID_HEADER_TOKEN: ['IHD', 'invalid_header', 400],
  HPE_INVALID_CONSTANT: ['IHD', 'malformed_request', 400],
  // The client closed its side in the middle of a request head or body: it went away, nothing is
  // sent (a connection closed between requests ends cleanly and raises nothing).
  HPE_INVALID_EOF_STATE: ['CDC', 'client_disconnected', 499]
}

// 'METHOD /path HTTP/1.x' at the start of what the client sent, when it is readable.
const REQUEST_LINE = /^([A-Z]{1,16}) (\/[^\s?]{0,2048})/

export function classifyParserError (err: NodeJS.ErrnoException & { rawPacket?: Buffer }): ParserErrorClassification | undefined {
  const code = err.code
  if (code === undefined) return undefined
  let row = parserCodes[code]
  if (row === undefined) {
    if (!code.startsWith('HPE_')) return undefined // ECONNRESET, EPIPE...: no request to speak of
    row = ['IHD', 'malformed_request', 400]
  }
  let details = row[1]
  // llhttp reports CL+TE under the transfer-encoding code; only its message says which (no other code exists).
  if (code === 'HPE_INVALID_TRANSFER_ENCODING' && /content-length/i.test(err.message)) {
    details = 'content_length_with_transfer_encoding'
  }
  const result: ParserErrorClassification = { flag: row[0], details, status: row[2] }
  if (err.rawPacket !== undefined) {
    const m = REQUEST_LINE.exec(err.rawPacket.subarray(0, 2100).toString('latin1'))
    if (m !== null) {
      result.method = m[1]
      result.path = m[2]
    }
  }
  return result
}
