import { randomUUID } from 'node:crypto'

// Incoming ids are honoured only when short and made of safe characters: they reach every log line.
const SAFE_REQUEST_ID = /^[\w.:@/+=-]{1,128}$/

/** Returns the incoming id when it is trusted and safe, else a new UUID. */
export function resolveRequestId (incoming: string | string[] | undefined, trust: boolean): string {
  if (trust && typeof incoming === 'string' && SAFE_REQUEST_ID.test(incoming)) return incoming
  return randomUUID()
}
