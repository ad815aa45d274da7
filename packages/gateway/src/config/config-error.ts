/**
 * ConfigError: every problem of a config file at once, each as `<path>: <what is wrong> (got <value>)`.
 * Values that may be secret (keys, certificates, anything that came from the environment) are
 * printed as `<redacted>`.
 */
import { secretKeys } from './schema.js'

export type PathSegment = string | number

export interface ConfigProblem {
  /** Where: `apis[0].upstream.targets[0]`, `(root)`, or a file position for syntax errors. */
  path: string
  /** What is wrong, e.g. `must be an http(s) URL`. */
  message: string
  /** The offending value as printed (already redacted), when showing it helps. */
  value?: string
}

export class ConfigError extends Error {
  /** The config file, when the config came from one. */
  readonly file: string | undefined
  readonly problems: readonly ConfigProblem[]

  constructor (problems: ConfigProblem[], file?: string) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`
    super(`${file ?? 'config'}: invalid configuration (${count})\n` + problems.map((p) => '  ' + formatProblem(p)).join('\n'))
    this.name = 'ConfigError'
    this.file = file
    this.problems = Object.freeze(problems.slice())
  }
}

export function formatProblem (problem: ConfigProblem): string {
  return problem.value === undefined
    ? `${problem.path}: ${problem.message}`
    : `${problem.path}: ${problem.message} (got ${problem.value})`
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/

/** `['apis', 0, 'upstream']` -> `apis[0].upstream`; `[]` -> `(root)`. */
export function formatPath (segments: readonly PathSegment[]): string {
  let out = ''
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`
    else if (IDENTIFIER.test(s)) out += out === '' ? s : '.' + s
    else out += `[${JSON.stringify(s)}]`
  }
  return out === '' ? '(root)' : out
}

/** Whether the value at this path is a key, a certificate, or another secret-looking setting. */
export function isSecretPath (segments: readonly PathSegment[]): boolean {
  // A Redis URL may carry the password.
  if (segments[0] === 'redis' && segments[1] === 'url') return true
  for (let i = segments.length - 1; i >= 0; i--) {
    const s = segments[i]
    if (typeof s === 'string') return secretKeys.has(s)
  }
  return false
}

const MAX_SHOWN = 80
// `scheme://user:password@host`: the credentials part of a URL.
const URL_CREDENTIALS = /^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i

/** How a value is shown after `got`: short (long strings lose their middle), and never a secret. */
export function describeValue (value: unknown, secret: boolean, maxLength = MAX_SHOWN): string {
  if (secret) return '<redacted>'
  if (typeof value === 'string') {
    const shown = value.replace(URL_CREDENTIALS, '$1<redacted>@')
    if (shown.length <= maxLength) return JSON.stringify(shown)
    const half = Math.floor(maxLength / 2)
    return JSON.stringify(shown.slice(0, half) + '…' + shown.slice(-half))
  }
  if (Array.isArray(value)) return value.length === 0 ? '[]' : `an array of ${value.length}`
  if (value === null) return 'null'
  if (typeof value === 'object') return Object.keys(value).length === 0 ? '{}' : 'an object'
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return typeof value
}
