/**
 * The body and headers a client receives on a gateway error (CONTRACT.md section 3):
 * a fixed sentence per flag, the request id, never upstream text or internals.
 */
import { STATUS_CODES } from 'node:http'
import { flags } from './flags.js'

export interface ErrorReplyBody {
  statusCode: number
  error: string
  message: string
  request_id: string
  code?: string
}

export function reasonPhrase (status: number): string {
  if (status === 499) return 'Client Closed Request'
  return STATUS_CODES[status] ?? 'Error'
}

export function buildErrorBody (flag: string, statusCode: number, requestId: string, exposeFlag: boolean): ErrorReplyBody {
  const def = flags[flag] ?? flags.GIE
  const body: ErrorReplyBody = {
    statusCode,
    error: reasonPhrase(statusCode),
    message: def.message,
    request_id: requestId
  }
  if (exposeFlag) body.code = def.code
  return body
}
