/**
 * Upstream connection pools shared by the APIs of one server. A gateway with many APIs in front of
 * the same upstream (one service, many routes) would otherwise keep a Pool and a set of kept-alive
 * connections per API: with 1,000 APIs and traffic spread over them, each API's few requests opened
 * connections of their own and the upstream held thousands of idle ones. APIs share a pool only
 * when everything that shapes a connection is the same: origin, timeouts, TLS settings (certificates
 * compared by digest) and the `lookup` function.
 */
import { createHash } from 'node:crypto'
import type { Server } from 'node:http'
import type { LookupFunction } from 'node:net'
import { Pool } from 'undici'
import type { UpstreamTlsOptions } from './options.js'

interface Entry {
  pool: Pool
  users: number
}

export interface PoolSettings {
  connectTimeout: number
  responseTimeout: number
  tls?: UpstreamTlsOptions
  lookup?: LookupFunction
}

const registries = new WeakMap<object, Map<string, Entry>>()
const lookupIds = new WeakMap<LookupFunction, number>()
let nextLookupId = 1

function digest (value: string | string[] | undefined): string | null {
  if (value === undefined) return null
  return createHash('sha256').update(Array.isArray(value) ? value.join('\n') : value).digest('base64')
}

/** What makes two APIs' connections to the same origin interchangeable, as one string. */
export function poolSettingsKey (settings: PoolSettings): string {
  const tls = settings.tls ?? {}
  let lookupId = 0
  if (settings.lookup !== undefined) {
    lookupId = lookupIds.get(settings.lookup) ?? nextLookupId++
    lookupIds.set(settings.lookup, lookupId)
  }
  return JSON.stringify([
    settings.connectTimeout,
    settings.responseTimeout,
    lookupId,
    digest(tls.ca),
    digest(tls.cert),
    digest(tls.key),
    tls.servername ?? null,
    tls.rejectUnauthorized ?? null,
    tls.minVersion ?? null,
    tls.maxVersion ?? null
  ])
}

/** The pools of one server (every scope of a Fastify app shares its server). */
export class SharedPools {
  private readonly entries: Map<string, Entry>

  constructor (server: Server | object) {
    let entries = registries.get(server)
    if (entries === undefined) {
      entries = new Map()
      registries.set(server, entries)
    }
    this.entries = entries
  }

  /** The pool for `origin` with these settings, made by `create` if no API has it yet. */
  acquire (origin: string, settingsKey: string, create: () => Pool): Pool {
    const id = `${origin} ${settingsKey}`
    let entry = this.entries.get(id)
    if (entry === undefined) {
      entry = { pool: create(), users: 0 }
      this.entries.set(id, entry)
    }
    entry.users++
    return entry.pool
  }

  /** Gives a pool back; the last user destroys it. */
  async release (origin: string, settingsKey: string): Promise<void> {
    const id = `${origin} ${settingsKey}`
    const entry = this.entries.get(id)
    if (entry === undefined) return
    entry.users--
    if (entry.users > 0) return
    this.entries.delete(id)
    await entry.pool.destroy()
  }

  /** Pools alive for this server (for tests and diagnostics). */
  get size (): number {
    return this.entries.size
  }
}
