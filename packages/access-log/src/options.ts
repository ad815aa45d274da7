import type { DestinationStream } from 'pino'

export interface AccessLogOptions {
  /** Write access lines. Default true; routes may still switch it with `config.accessLog`. */
  enabled?: boolean
  /** `stdout` (default), `stderr`, a file path (appended; reopened on SIGHUP), or a stream. */
  destination?: 'stdout' | 'stderr' | string | DestinationStream
  /** Allow-list of fields; `time`, `level`, `msg` and `request_id` are always kept. Default: every field. */
  fields?: string[]
  /** Write synchronously (tests, tiny volumes). Default false: an asynchronous destination flushed on close. */
  sync?: boolean
}

export interface RouteAccessLogConfig {
  fields?: string[]
}
