/**
 * Reads one access-log line (CONTRACT.md section 2) into the few fields the report uses.
 *
 * Lines in the access log's own shape (pino's `level` and `time`, the record fields in
 * `recordFields` order, `msg` last, no escaped characters) are read with one anchored regular
 * expression built from that order: it accepts only valid JSON, so it yields what JSON.parse
 * would, about three times faster. Anything else (another field order, escapes, a different
 * logger) goes through JSON.parse; the result is the same, only slower.
 */
import { recordFields } from '@faultline/core'

/** The fields of an access line the report reads; reused from line to line. */
export interface AccessFields {
  time: number
  status: number
  apiName: string | undefined
  responseSource: string | undefined
  flag: string | undefined
  details: string | undefined
  category: string | undefined
  errorSource: string | undefined
  target: string | undefined
  /** NaN when the line has none. */
  upstreamLatency: number
  gatewayLatency: number
  latencyTotal: number
}

export function emptyFields (): AccessFields {
  return {
    time: 0,
    status: 0,
    apiName: undefined,
    responseSource: undefined,
    flag: undefined,
    details: undefined,
    category: undefined,
    errorSource: undefined,
    target: undefined,
    upstreamLatency: NaN,
    gatewayLatency: NaN,
    latencyTotal: NaN
  }
}

/** What a line turned out to be. */
export const LINE_ACCESS = 0
export const LINE_BLANK = 1
/** Valid JSON, but not an access line (msg is not "access"): another logger's line. */
export const LINE_OTHER = 2
export const LINE_MALFORMED = 3
export type LineKind = typeof LINE_ACCESS | typeof LINE_BLANK | typeof LINE_OTHER | typeof LINE_MALFORMED

/** Latest time a Date can hold: anything later is not a timestamp. */
const MAX_TIME = 8.64e15

const NUMBER = '-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][-+]?\\d+)?'
// A JSON string without escapes: no quote, no backslash, no control character.
const STRING = '"[^"\\\\\\u0000-\\u001f]*"'
const STRING_CAPTURE = '"([^"\\\\\\u0000-\\u001f]*)"'

const numberFields = new Set(['status', 'upstream_status', 'upstream_attempts', 'upstream_latency', 'gateway_latency', 'latency_total'])
const booleanFields = new Set(['rate_limit_degraded', 'response_truncated'])

/** Record field -> the AccessFields key it fills. */
const captured = {
  api_name: 'apiName',
  status: 'status',
  response_source: 'responseSource',
  response_flag: 'flag',
  response_code_details: 'details',
  error_category: 'category',
  error_source: 'errorSource',
  error_target: 'target',
  upstream_latency: 'upstreamLatency',
  gateway_latency: 'gatewayLatency',
  latency_total: 'latencyTotal'
} as const satisfies Record<string, keyof AccessFields>

type CapturedField = keyof typeof captured
type CapturedKey = (typeof captured)[CapturedField]

function isCaptured (field: string): field is CapturedField {
  return Object.hasOwn(captured, field)
}

/**
 * The fast-path expression and the capture group of each field it reads (group 1 is `time`). A
 * field missing from recordFields gets a group number past the last, which reads as undefined.
 */
function buildFastPath (): { re: RegExp, group: Record<CapturedKey, number> } {
  const group = Object.fromEntries(Object.values(captured).map((key) => [key, 999])) as Record<CapturedKey, number>
  let next = 2
  let source = '^\\{"level":' + NUMBER + ',"time":(0|[1-9]\\d{0,15})'
  for (const field of recordFields) {
    const numeric = numberFields.has(field)
    // Fields not known here as numbers or booleans are strings; a line where one is not takes the slow path.
    let value = numeric ? NUMBER : booleanFields.has(field) ? '(?:true|false)' : STRING
    if (isCaptured(field)) {
      value = numeric ? `(${NUMBER})` : STRING_CAPTURE
      group[captured[field]] = next++
    }
    source += `(?:,"${field}":${value})?`
  }
  source += ',"msg":"access"\\}$'
  return { re: new RegExp(source), group }
}

const fastPath = buildFastPath()

function stringField (value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}

function numberField (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : NaN
}

function timeOf (value: unknown): number {
  if (typeof value === 'number') return value
  // pino's isoTime, or another logger's ISO timestamps.
  if (typeof value === 'string') return Date.parse(value)
  return NaN
}

export interface LineParser {
  /** Fills `fields`, or says why the line is not an access line. */
  parse: (line: string) => LineKind
  readonly fields: AccessFields
  /** Why the last line was malformed. */
  problem: string
  /** Lines read through the fast path (for tests and the bench). */
  fastLines: number
}

export function createLineParser (): LineParser {
  const out = emptyFields()
  const { re, group } = fastPath
  // Group numbers as constants: named stores into `out` stay monomorphic on the hot path.
  const gApi = group.apiName
  const gStatus = group.status
  const gSource = group.responseSource
  const gFlag = group.flag
  const gDetails = group.details
  const gCategory = group.category
  const gErrorSource = group.errorSource
  const gTarget = group.target
  const gUpstream = group.upstreamLatency
  const gGateway = group.gatewayLatency
  const gTotal = group.latencyTotal
  const parser: LineParser = {
    fields: out,
    problem: '',
    fastLines: 0,
    parse (line: string): LineKind {
      const m = re.exec(line)
      if (m === null) return slowPath(line)
      const time = +m[1]
      const status = m[gStatus]
      if (status === undefined || !Number.isInteger(+status)) {
        parser.problem = 'no valid status'
        return LINE_MALFORMED
      }
      if (time > MAX_TIME) {
        parser.problem = 'time out of range'
        return LINE_MALFORMED
      }
      out.time = time
      out.status = +status
      out.apiName = m[gApi]
      out.responseSource = m[gSource]
      out.flag = m[gFlag]
      out.details = m[gDetails]
      out.category = m[gCategory]
      out.errorSource = m[gErrorSource]
      out.target = m[gTarget]
      // A missing number reads as undefined, and +undefined is NaN: "none".
      out.upstreamLatency = +(m[gUpstream] as string)
      out.gatewayLatency = +(m[gGateway] as string)
      out.latencyTotal = +(m[gTotal] as string)
      parser.fastLines++
      return LINE_ACCESS
    }
  }

  function slowPath (line: string): LineKind {
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      if (line.trim() === '') return LINE_BLANK
      parser.problem = 'not JSON'
      return LINE_MALFORMED
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      parser.problem = 'not a JSON object'
      return LINE_MALFORMED
    }
    const o = value as Record<string, unknown>
    if (o.msg !== 'access') return LINE_OTHER
    const time = timeOf(o.time)
    if (!(time >= 0 && time <= MAX_TIME)) {
      parser.problem = 'no valid time'
      return LINE_MALFORMED
    }
    if (typeof o.status !== 'number' || !Number.isInteger(o.status)) {
      parser.problem = 'no valid status'
      return LINE_MALFORMED
    }
    out.time = time
    out.status = o.status
    out.apiName = stringField(o.api_name)
    out.responseSource = stringField(o.response_source)
    out.flag = stringField(o.response_flag)
    out.details = stringField(o.response_code_details)
    out.category = stringField(o.error_category)
    out.errorSource = stringField(o.error_source)
    out.target = stringField(o.error_target)
    out.upstreamLatency = numberField(o.upstream_latency)
    out.gatewayLatency = numberField(o.gateway_latency)
    out.latencyTotal = numberField(o.latency_total)
    return LINE_ACCESS
  }

  return parser
}
