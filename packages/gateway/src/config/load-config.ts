/**
 * Reads a config file (YAML or JSON), substitutes `${NAME}` from the environment, validates it,
 * reads the certificate files it names, and throws one ConfigError listing every problem.
 */
import { readFile } from 'node:fs/promises'
import { dirname, extname, resolve } from 'node:path'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import { parseDocument } from 'yaml'
import { ConfigError, describeValue, formatPath, type ConfigProblem, type PathSegment } from './config-error.js'
import type { GatewayConfig } from './schema.js'
import { substituteEnv } from './substitute-env.js'
import { checkConfig } from './validate-config.js'

const formats: Record<string, 'yaml' | 'json'> = { '.yaml': 'yaml', '.yml': 'yaml', '.json': 'json' }

export async function loadConfig (file: string, env: NodeJS.ProcessEnv = process.env): Promise<GatewayConfig> {
  const format = formats[extname(file).toLowerCase()]
  if (format === undefined) {
    throw new ConfigError([{ path: file, message: 'unsupported file type (use .yaml, .yml or .json)' }], file)
  }
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError([{ path: file, message: `cannot be read: ${describeFsError(err)}` }], file)
  }

  const parsed = format === 'yaml' ? parseYaml(text, file) : parseJson(text, file)
  if (parsed.problems.length > 0) throw new ConfigError(parsed.problems, file)
  if (parsed.value === null || parsed.value === undefined) throw new ConfigError([{ path: file, message: 'is empty' }], file)

  const substituted = substituteEnv(parsed.value, env)
  const problems = substituted.problems
  const skip = new Set(problems.map((p) => p.path))
  const data = substituted.value
  problems.push(...checkConfig(data, { fromEnv: substituted.fromEnv, skip }))

  const baseDir = dirname(resolve(file))
  problems.push(...await readCertificates(data, baseDir, substituted.fromEnv, skip))
  resolveDestination(data, baseDir)

  if (problems.length > 0) throw new ConfigError(problems, file)
  return data as GatewayConfig
}

interface Parsed {
  value: unknown
  problems: ConfigProblem[]
}

function parseYaml (text: string, file: string): Parsed {
  const doc = parseDocument(text, { uniqueKeys: true })
  if (doc.errors.length > 0) {
    // The message's first part only: the rest quotes the file, which may hold a secret.
    return {
      value: undefined,
      problems: doc.errors.map((e) => {
        const pos = e.linePos?.[0]
        const at = e.message.indexOf(' at line ')
        return {
          path: pos === undefined ? file : `${file}:${pos.line}:${pos.col}`,
          message: `YAML syntax error: ${at === -1 ? e.message.split('\n')[0] : e.message.slice(0, at)}`
        }
      })
    }
  }
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }), problems: [] }
  } catch (err) {
    return { value: undefined, problems: [{ path: file, message: `YAML error: ${(err as Error).message.split('\n')[0]}` }] }
  }
}

function parseJson (text: string, file: string): Parsed {
  try {
    return { value: JSON.parse(text), problems: [] }
  } catch (err) {
    // V8 quotes the source after the first comma ("..., "{"a": hunter2}" is not valid JSON"): drop it.
    let message = (err as Error).message
    const quoted = message.indexOf(', "')
    if (quoted !== -1 && message.endsWith('is not valid JSON')) message = message.slice(0, quoted)
    let path = file
    const position = /at position (\d+)/.exec(message)
    if (position !== null) {
      const before = text.slice(0, Number(position[1]))
      const line = before.split('\n').length
      path = `${file}:${line}:${before.length - before.lastIndexOf('\n')}`
      message = message.replace(/ in JSON at position \d+.*$/, '')
    }
    return { value: undefined, problems: [{ path, message: `JSON syntax error: ${message}` }] }
  }
}

function describeFsError (err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return 'no such file'
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied'
  if (code === 'EISDIR') return 'is a directory'
  return code ?? String(err)
}

const PEM = '-----BEGIN '
// A key or certificate body pasted without its PEM header (base64 has no "."): never echo it as if it were a path.
const BASE64_RUN = /[A-Za-z0-9+/=]{40,}/
const looksLikeKeyMaterial = (value: string): boolean => value.includes('\n') || (!value.includes('.') && BASE64_RUN.test(value))

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Certificate settings hold a path (relative to the config file) or inline PEM (typically from
 * `${NAME}`). Paths are replaced by the file's PEM text; the TLS material is then tried once with
 * `tls.createSecureContext`, so a key that does not match its certificate fails here, not at start.
 */
async function readCertificates (data: unknown, baseDir: string, fromEnv: ReadonlySet<string>, skip: ReadonlySet<string>): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = []
  if (!isObject(data)) return problems

  async function readPem (value: unknown, segments: PathSegment[]): Promise<unknown> {
    const path = formatPath(segments)
    if (typeof value !== 'string' || value === '' || skip.has(path)) return value
    if (value.trimStart().startsWith(PEM)) return value
    const file = resolve(baseDir, value)
    // The file it looked for, in full: it is a path, unless it came from the environment or looks like key material.
    const shown = describeValue(file, fromEnv.has(path) || looksLikeKeyMaterial(value), Infinity)
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      problems.push({ path, message: `cannot read file: ${describeFsError(err)}`, value: shown })
      return value
    }
    if (!text.includes(PEM)) {
      problems.push({ path, message: 'is not a PEM file', value: shown })
      return value
    }
    return text
  }

  async function readTls (tls: unknown, segments: PathSegment[]): Promise<void> {
    if (!isObject(tls)) return
    const before = problems.length
    for (const name of ['cert', 'key']) {
      if (tls[name] !== undefined) tls[name] = await readPem(tls[name], [...segments, name])
    }
    if (Array.isArray(tls.ca)) {
      for (let i = 0; i < tls.ca.length; i++) tls.ca[i] = await readPem(tls.ca[i], [...segments, 'ca', i])
    } else if (tls.ca !== undefined) {
      tls.ca = await readPem(tls.ca, [...segments, 'ca'])
    }
    if (problems.length === before) tryTls(tls, segments)
  }

  /** A JWT public key, an external auth service's CA: paths or inline PEM, like the TLS settings. */
  async function readAuthPem (auth: Record<string, unknown>, segments: PathSegment[]): Promise<void> {
    if (auth.publicKey !== undefined) auth.publicKey = await readPem(auth.publicKey, [...segments, 'publicKey'])
    if (Array.isArray(auth.ca)) {
      for (let i = 0; i < auth.ca.length; i++) auth.ca[i] = await readPem(auth.ca[i], [...segments, 'ca', i])
    } else if (auth.ca !== undefined) {
      auth.ca = await readPem(auth.ca, [...segments, 'ca'])
    }
  }

  function tryTls (tls: Record<string, unknown>, segments: PathSegment[]): void {
    const options: SecureContextOptions = {}
    if (typeof tls.cert === 'string' && typeof tls.key === 'string') {
      options.cert = tls.cert
      options.key = tls.key
    }
    if (typeof tls.ca === 'string' || Array.isArray(tls.ca)) options.ca = tls.ca as string | string[]
    if (options.cert === undefined && options.ca === undefined) return
    try {
      createSecureContext(options)
    } catch (err) {
      // OpenSSL's reason ("key values mismatch", "no start line"): it never quotes the material.
      const reason = (err as Error).message.replace(/^error:[0-9A-F]+:/, '')
      problems.push({ path: formatPath(segments), message: `certificate, key or CA cannot be used: ${reason}` })
    }
  }

  if (isObject(data.server)) await readTls(data.server.tls, ['server', 'tls'])
  if (Array.isArray(data.apis)) {
    for (let i = 0; i < data.apis.length; i++) {
      const api: unknown = data.apis[i]
      if (isObject(api) && isObject(api.upstream)) await readTls(api.upstream.tls, ['apis', i, 'upstream', 'tls'])
      if (isObject(api) && isObject(api.auth)) await readAuthPem(api.auth, ['apis', i, 'auth'])
    }
  }
  return problems
}

/** An access-log file path is relative to the config file, like the certificates. */
function resolveDestination (data: unknown, baseDir: string): void {
  if (!isObject(data) || !isObject(data.accessLog)) return
  const destination = data.accessLog.destination
  if (typeof destination === 'string' && destination !== '' && destination !== 'stdout' && destination !== 'stderr') {
    data.accessLog.destination = resolve(baseDir, destination)
  }
}
