/**
 * When reply-from may try again: only when configured, only idempotent methods without a body,
 * only failures that happened before the upstream could have acted on the request, and never
 * on a response (reply-from's default replays a GET on 503 ten times: not here).
 */
import { classifyTransportError } from '@faultline/core'

export interface RetryRequest {
  method: string
  url: URL
  body?: unknown
  headers: Record<string | symbol, unknown>
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/** Failures after which the upstream cannot have processed the request (or the method makes it harmless). */
const RETRYABLE = new Set(['UCF', 'UCT', 'URR', 'NRH', 'TLH', 'NRS'])
const BASE_DELAY_MS = 25

export function decideRetry (err: Error | null, res: unknown, req: RetryRequest, attempt: number, retries: number): number | null {
  if (res !== undefined && res !== null) return null
  if (err === null || attempt >= retries) return null
  if (!IDEMPOTENT.has(req.method)) return null
  const body = req.body
  if (body !== undefined && body !== null && body !== '') return null // a streamed body cannot be replayed
  const c = classifyTransportError(err)
  if (c === undefined || !RETRYABLE.has(c.flag)) return null
  return BASE_DELAY_MS * 2 ** attempt
}
