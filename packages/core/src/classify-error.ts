/**
 * From any error that reached Fastify's error path to a flag. FaultlineErrors carry their flag;
 * Fastify's own request errors and transport errors are recognised by code; anything else is GIE.
 */
import { isFaultlineError } from './faultline-error.js'
import { classifyTransportError } from './classify-transport-error.js'

export interface ErrorClassification {
  flag: string
  details?: string
  source?: string
  target?: string
  statusCode?: number
  fields?: Record<string, string | number | boolean | undefined>
  headers?: Record<string, string | number>
}

// Fastify 5's own request errors (shared/reference/node-error-shapes.md section 5).
const fastifyCodes: Record<string, [string, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: ['BTL', 'body_too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ['UMT', 'unsupported_media_type'],
  FST_ERR_CTP_INVALID_JSON_BODY: ['BIV', 'body_invalid'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['BIV', 'body_invalid'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['IHD', 'invalid_content_length'],
  FST_ERR_VALIDATION: ['BIV', 'schema_validation_failed'],
  FST_ERR_NOT_FOUND: ['NRF', 'no_route']
}

export function classifyError (err: unknown): ErrorClassification {
  if (isFaultlineError(err)) {
    return {
      flag: err.flag,
      details: err.details,
      source: err.source,
      target: err.target,
      statusCode: err.statusCode,
      fields: err.fields,
      headers: err.headers
    }
  }
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string') {
      const known = fastifyCodes[code]
      if (known !== undefined) return { flag: known[0], details: known[1] }
    }
    // A request body stream that broke because the client aborted its upload.
    const statusCode = (err as { statusCode?: unknown }).statusCode
    if (code === 'ECONNRESET' && statusCode === 400 && (err as Error).message === 'aborted') {
      return { flag: 'CDC', details: 'client_disconnected' }
    }
    const transport = classifyTransportError(err)
    if (transport !== undefined) {
      const fields = transport.tlsCertExpiry !== undefined || transport.tlsCertSubject !== undefined
        ? { tls_cert_expiry: transport.tlsCertExpiry, tls_cert_subject: transport.tlsCertSubject }
        : undefined
      return { flag: transport.flag, details: transport.details, fields }
    }
  }
  return { flag: 'GIE', details: 'gateway_internal_error' }
}
