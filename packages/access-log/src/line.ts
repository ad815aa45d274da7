/**
 * The access line, serialised for the record's fixed fields.
 *
 * The line is pino's: `{"level":30,"time":<epoch ms>,<fields>,"msg":"access"}` and a newline, the
 * bytes pino's `logger.info(fields, 'access')` writes with `base: null` (a test compares the two).
 * pino walks an arbitrary object on every call: its keys, its serializers, its hooks. A record
 * has a known set of fields, each a string, a number or `true`, so the walk is done once, when a
 * route's field list is compiled, into a function that reads each field by name: about 1.9 µs of
 * CPU a line against 6 through `logger.info` (bench/access-line.mjs, lines with their own request
 * ids and paths; 2.4 before strings that repeat were escaped once). A loop over the field names
 * took about 1.8x as long as the compiled function: each `record[name]` is a generic keyed lookup.
 */

/** Turns a record into its line. */
export type LineSerializer = (record: object) => string

/** A string JSON writes as it is between quotes: printable ASCII without `"` or `\`. */
// eslint-disable-next-line no-control-regex -- control characters are what JSON must escape
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/

function stringJson (value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : '"' + value + '"'
}

/** A value that is neither a string nor a number (the serializer writes those in place). */
function otherJson (value: unknown): string | undefined {
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false'
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined
    default:
      // No record field holds one; written as JSON rather than dropped, should a plugin set one.
      try {
        return JSON.stringify(value) ?? undefined
      } catch {
        return stringJson(String(value))
      }
  }
}

const FIELD_NAME = /^[a-z][a-z_]*$/

/**
 * A serializer writing `fields` (record field names, in line order) and nothing else.
 *
 * Each field gets code of its own: a number is written in place, and a string is checked for what
 * JSON must escape only when it differs from the field's previous value (route, API, method,
 * upstream address, client and user agent repeat from line to line; the request id and path do
 * not, and cost one comparison more). The previous value and its JSON are the serializer's own.
 */
export function compileLine (fields: readonly string[]): LineSerializer {
  let state = ''
  let body = 'let line = \'{"level":30,"time":\' + Date.now()\nlet v, json\n'
  fields.forEach((name, i) => {
    // Names come from the record's own fields (checked here); generated code only ever holds such
    // a name, never text from a request or a config file.
    if (!FIELD_NAME.test(name)) throw new TypeError(`@faultline/access-log: not a record field name: ${JSON.stringify(name)}`)
    state += `let last${i}, lastJson${i}\n`
    body += `v = record.${name}
if (typeof v === 'string') {
  if (v !== last${i}) { lastJson${i} = stringJson(v); last${i} = v }
  line += ',"${name}":' + lastJson${i}
} else if (typeof v === 'number') line += ',"${name}":' + (Number.isFinite(v) ? v : 'null') // as pino: null when JSON cannot hold it
else if ((json = otherJson(v)) !== undefined) line += ',"${name}":' + json
`
  })
  body += 'return line + \',"msg":"access"}\\n\''
  // eslint-disable-next-line no-new-func -- generated from record field names only (FIELD_NAME)
  const build = new Function('otherJson', 'stringJson', `${state}return function serializeLine (record) {\n${body}\n}`) as
    (other: typeof otherJson, string: typeof stringJson) => LineSerializer
  return build(otherJson, stringJson)
}
