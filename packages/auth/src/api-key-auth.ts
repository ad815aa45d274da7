/**
 * API keys: read from a header (or a query parameter), hashed with sha256 and found by that digest
 * (no scan: a million keys cost what ten do), confirmed with a timing-safe comparison. The `keys`
 * given up front go into a KeyTable (digests in one Buffer, fields in typed arrays): 1,000,000 keys
 * hold 14 MiB of JS heap (311 MiB as one object per key), so full GCs stay short.
 * The key never reaches a log: the record only ever gets the key's `id` as `consumer`.
 */
import { hash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { FaultlineError } from '@faultline/core'
import type { FaultlineRecord } from '@faultline/core'
import type { ApiKeyAuthOptions, ApiKeyEntry, Authenticator } from './options.js'
import { KeyTable } from './key-table.js'
import { removeRequestHeader } from './request-headers.js'

const SOURCE = 'ApiKeyAuth'
/** Printable ASCII without spaces, bounded: anything else is a malformed credential (IHD). */
const WELL_FORMED_KEY = /^[\x21-\x7e]{1,512}$/
const SHA256_HEX = /^[0-9a-f]{64}$/
/** Most keys remembered by the string presented (see matchedKeys). */
const MATCHED_KEYS_MAX = 10_000

/** What a key that matched the table admits (see matchedKeys). */
interface MatchedKey {
  readonly id: string
  /** Epoch ms; NaN: never. */
  readonly expiresAt: number
  readonly apis: ReadonlySet<string> | undefined
}

/** A key found by `lookup` (the static keys live in a KeyTable). */
interface KnownKey {
  id: string
  hash: Buffer
  /** Epoch ms; NaN: never. */
  expiresAt: number
  apis: ReadonlySet<string> | undefined
  revoked: boolean
}

/** A query-string name or value as form decoding reads it; undefined when its escapes are broken. */
function decodeQueryPart (part: string): string | undefined {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '))
  } catch {
    return undefined
  }
}

/**
 * Writes the sha256 of `key` into `out` (32 bytes). Node 20's hash() costs about three times as
 * much when it returns a Buffer as when it returns a string (~2.7 against ~0.9 µs here), so the
 * digest comes as a 'binary' (latin1) string, one character per byte, and its bytes are copied.
 */
function sha256Into (key: string, out: Buffer): void {
  const bytes = hash('sha256', key, 'binary')
  for (let i = 0; i < 32; i++) out[i] = bytes.charCodeAt(i)
}

export function hashApiKey (key: string): string {
  return hash('sha256', key, 'hex')
}

function fail (option: string, expected: string, value: unknown): never {
  throw new TypeError(`@faultline/auth: option "${option}" must be ${expected}, got ${JSON.stringify(value)}`)
}

/** Checks an entry's `id`, `key` or `keyHash` and returns the key's sha256 digest (32 bytes). */
function entryDigest (entry: ApiKeyEntry, where: string): Buffer {
  if (typeof entry !== 'object' || entry === null) fail(where, 'an object', entry)
  if (typeof entry.id !== 'string' || entry.id.length === 0) fail(`${where}.id`, 'a non-empty string', entry.id)
  if (entry.key !== undefined) {
    if (typeof entry.key !== 'string' || !WELL_FORMED_KEY.test(entry.key)) {
      // Never echo a key, even a bad one.
      throw new TypeError(`@faultline/auth: option "${where}.key" must be 1 to 512 printable characters without spaces`)
    }
    return hash('sha256', entry.key, 'buffer')
  }
  if (entry.keyHash !== undefined) {
    if (typeof entry.keyHash !== 'string' || !SHA256_HEX.test(entry.keyHash.toLowerCase())) fail(`${where}.keyHash`, 'a sha256 digest in hex (64 characters)', entry.keyHash)
    return Buffer.from(entry.keyHash, 'hex')
  }
  throw new TypeError(`@faultline/auth: option "${where}" needs "key" or "keyHash"`)
}

/** An entry's `expiresAt` in epoch ms, NaN when it has none. */
function entryExpiry (entry: ApiKeyEntry, where: string): number {
  if (entry.expiresAt === undefined) return NaN
  const expiresAt = entry.expiresAt instanceof Date ? entry.expiresAt.getTime() : Date.parse(entry.expiresAt)
  if (Number.isNaN(expiresAt)) fail(`${where}.expiresAt`, 'an ISO 8601 date', entry.expiresAt)
  return expiresAt
}

function entryApis (entry: ApiKeyEntry, where: string): ReadonlySet<string> | undefined {
  if (entry.apis === undefined) return undefined
  if (!Array.isArray(entry.apis) || entry.apis.some((a) => typeof a !== 'string')) fail(`${where}.apis`, 'an array of API names', entry.apis)
  return new Set(entry.apis)
}

function compileEntry (entry: ApiKeyEntry, where: string): KnownKey {
  return { id: entry.id, hash: entryDigest(entry, where), expiresAt: entryExpiry(entry, where), apis: entryApis(entry, where), revoked: entry.revoked === true }
}

/** The `keys` option as a KeyTable; a key listed twice is refused (which entry should win is anyone's guess). */
function compileKeys (keys: readonly ApiKeyEntry[]): KeyTable {
  const table = new KeyTable(keys.length)
  for (let i = 0; i < keys.length; i++) {
    const entry = keys[i]
    const where = `keys[${i}]`
    const added = table.add(entryDigest(entry, where), entry.id, entryExpiry(entry, where), entryApis(entry, where), entry.revoked === true)
    // Name both entries by position only: the message must not give the key away.
    if (added < 0) throw new TypeError(`@faultline/auth: option "${where}" has the same key as "keys[${-1 - added}]"`)
  }
  return table
}

/** What follows a matching key: the consumer is named, then its expiry and its APIs are checked. */
function admit (record: FaultlineRecord | null, id: string, expiresAt: number, apis: ReadonlySet<string> | undefined): void {
  if (record !== null) record.consumer = id
  if (expiresAt <= Date.now()) throw new FaultlineError('AKE', { source: SOURCE })
  if (apis !== undefined && (record?.api_name === undefined || !apis.has(record.api_name))) {
    throw new FaultlineError('ACD', { source: SOURCE })
  }
}

/** A bounded cache of lookup answers (negative ones too, so a flood of bad keys stays cheap). */
class LookupCache {
  private readonly entries = new Map<string, { value: KnownKey | null, expires: number }>()
  constructor (private readonly max: number, private readonly ttl: number) {}

  get (keyHash: string, now: number): KnownKey | null | undefined {
    const hit = this.entries.get(keyHash)
    if (hit === undefined) return undefined
    if (hit.expires <= now) {
      this.entries.delete(keyHash)
      return undefined
    }
    return hit.value
  }

  set (keyHash: string, value: KnownKey | null, now: number): void {
    if (this.entries.size >= this.max) {
      // Maps iterate in insertion order: the first key is the oldest.
      const oldest = this.entries.keys().next()
      if (oldest.done !== true) this.entries.delete(oldest.value)
    }
    this.entries.set(keyHash, { value, expires: now + this.ttl })
  }
}

export function createApiKeyAuthenticator (options: ApiKeyAuthOptions): Authenticator {
  const header = (options.header ?? 'x-api-key').toLowerCase()
  if (!/^[a-z0-9-]+$/.test(header)) fail('header', 'a header name', options.header)
  const queryParam = options.queryParam
  if (queryParam !== undefined && (typeof queryParam !== 'string' || queryParam.length === 0)) fail('queryParam', 'a non-empty string', queryParam)
  if (options.keys !== undefined && !Array.isArray(options.keys)) fail('keys', 'an array', typeof options.keys)
  const lookup = options.lookup
  if (lookup !== undefined && typeof lookup !== 'function') fail('lookup', 'a function', typeof lookup)
  if ((options.keys === undefined || options.keys.length === 0) && lookup === undefined) {
    throw new TypeError('@faultline/auth: apiKey auth needs "keys" or a "lookup" function')
  }
  const table = options.keys === undefined || options.keys.length === 0 ? undefined : compileKeys(options.keys)
  const cache = new LookupCache(options.cache?.max ?? 10_000, options.cache?.ttl ?? 60_000)

  /** Asks `find` (the `lookup` option, through its cache) about a key that is not in the table. */
  async function lookUp (find: NonNullable<typeof lookup>, keyHash: string): Promise<KnownKey | null> {
    const now = Date.now()
    const cached = cache.get(keyHash, now)
    if (cached !== undefined) return cached
    const entry = await find(keyHash)
    const value = entry === null || entry === undefined ? null : compileEntry(entry, 'lookup() result')
    cache.set(keyHash, value, now)
    return value
  }

  /**
   * Takes the key out of the query string (it must reach neither the upstream nor a log). The other
   * parameters keep their exact bytes: re-encoding them would break signed URLs.
   */
  function takeFromQuery (request: FastifyRequest): string | undefined {
    if (queryParam === undefined) return undefined
    const url = request.raw.url ?? '/'
    const q = url.indexOf('?')
    if (q === -1) return undefined
    const values: string[] = []
    const kept: string[] = []
    for (const pair of url.slice(q + 1).split('&')) {
      const eq = pair.indexOf('=')
      if (decodeQueryPart(eq === -1 ? pair : pair.slice(0, eq)) === queryParam) {
        values.push(eq === -1 ? '' : decodeQueryPart(pair.slice(eq + 1)) ?? '')
      } else {
        kept.push(pair)
      }
    }
    if (values.length === 0) return undefined
    request.raw.url = url.slice(0, q) + (kept.length === 0 ? '' : '?' + kept.join('&'))
    // Handlers of the same app read the parsed query: the key leaves it too.
    const query = request.query as Record<string, unknown> | undefined
    if (query !== null && typeof query === 'object') delete query[queryParam]
    return values.length === 1 ? values[0] : values.join(', ')
  }

  /** The presented key's sha256, rewritten by each request (the table path is synchronous). */
  const digest = Buffer.alloc(32)
  /**
   * Keys that matched the table, by the string presented, with what the table says of them: a key
   * seen again skips its sha256 (about 3 µs of a loaded gateway's CPU per request, BENCHMARKS.md)
   * and the table itself. Its consumer id is then the same string on every request (the table
   * slices a new one per call), so what is keyed by the consumer downstream (counters, the access
   * line) finds it by a hash already computed. Only matched keys are kept, so unknown keys cannot
   * fill it, and a Map finds a string by its hash: a wrong key is not compared character by
   * character with a kept one. The table does not change once built. Emptied when it reaches
   * MATCHED_KEYS_MAX.
   */
  const matchedKeys = new Map<string, MatchedKey>()

  /** A key not in the table, asked of `lookup` (through its cache). */
  async function lookUpAndAdmit (find: NonNullable<typeof lookup>, presented: Buffer, record: FaultlineRecord | null): Promise<void> {
    const known = await lookUp(find, presented.toString('hex'))
    if (known === null || known.revoked || !timingSafeEqual(presented, known.hash)) {
      throw new FaultlineError('AKI', { source: SOURCE })
    }
    admit(record, known.id, known.expiresAt, known.apis)
  }

  /** Synchronous for a key in the table (or a refusal); a promise only when `lookup` is asked. */
  function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
    const record = reply.faultline
    const raw = request.headers[header]
    // The key goes no further than the gateway.
    if (raw !== undefined) removeRequestHeader(request, header)
    const fromQuery = takeFromQuery(request)
    const key = raw ?? fromQuery
    if (key === undefined) throw new FaultlineError('AMF', { source: SOURCE })
    if (typeof key !== 'string' || !WELL_FORMED_KEY.test(key)) throw new FaultlineError('IHD', { source: SOURCE })

    // Only keys of the table are ever remembered.
    const remembered = matchedKeys.get(key)
    if (remembered !== undefined) {
      admit(record, remembered.id, remembered.expiresAt, remembered.apis)
      return undefined
    }
    sha256Into(key, digest)
    const index = table === undefined ? -1 : table.lookup(digest)
    if (table !== undefined && index !== -1) {
      if (table.revoked(index) || !timingSafeEqual(digest, table.digest(index))) throw new FaultlineError('AKI', { source: SOURCE })
      const matched = { id: table.id(index), expiresAt: table.expiresAt(index), apis: table.apis(index) }
      if (matchedKeys.size >= MATCHED_KEYS_MAX) matchedKeys.clear()
      matchedKeys.set(key, matched)
      admit(record, matched.id, matched.expiresAt, matched.apis)
      return undefined
    }
    if (lookup === undefined) throw new FaultlineError('AKI', { source: SOURCE })
    // `digest` is shared by this authenticator's requests: keep a copy across the await.
    return lookUpAndAdmit(lookup, Buffer.from(digest), record)
  }

  return { source: SOURCE, authenticate }
}
