/**
 * The access log: one pino JSON line per request, written from the core's finished record.
 * Per-route switches and field lists are compiled once, when the route is added.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import pino, { type DestinationStream, type Logger } from 'pino'
import { kRouteConfig, recordFields, type FaultlineRecord } from '@faultline/core'
import type { AccessLogOptions, RouteAccessLogConfig } from './options.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Access logging for this route: on, off, or on with its own field list. */
    accessLog?: boolean | RouteAccessLogConfig
  }
  interface FastifyInstance {
    accessLog: { logger: Logger, flush: () => void }
  }
}

const kRouteSettings = Symbol('faultline.accessLog.route')
/** Always written, whatever the allow-list says. */
const ALWAYS = ['request_id']
/** pino's own fields: always written; accepted in an allow-list (as in a copied template) and ignored. */
const PINO_FIELDS = new Set(['time', 'level', 'msg'])

interface RouteSettings {
  enabled: boolean
  /** `undefined`: every field (the record is logged as it is). */
  fields: readonly string[] | undefined
}

function compileFields (fields: unknown, where: string): readonly string[] | undefined {
  if (fields === undefined) return undefined
  if (!Array.isArray(fields)) throw new TypeError(`@faultline/access-log: ${where} must be an array of field names`)
  for (const f of fields) {
    if (typeof f !== 'string' || (!recordFields.includes(f) && !PINO_FIELDS.has(f))) {
      throw new TypeError(`@faultline/access-log: ${where} has an unknown field ${JSON.stringify(f)} (known: ${recordFields.join(', ')})`)
    }
  }
  const set = new Set<string>([...ALWAYS, ...fields])
  // Keep the record's order so every line reads the same way.
  return Object.freeze(recordFields.filter((f) => set.has(f)))
}

function openDestination (destination: AccessLogOptions['destination'], sync: boolean): { stream: DestinationStream, file: boolean } {
  if (destination === undefined || destination === 'stdout') return { stream: pino.destination({ dest: 1, sync }), file: false }
  if (destination === 'stderr') return { stream: pino.destination({ dest: 2, sync }), file: false }
  if (typeof destination === 'string') {
    return { stream: pino.destination({ dest: destination, sync, append: true, mkdir: true }), file: true }
  }
  if (typeof destination === 'object' && destination !== null && typeof destination.write === 'function') {
    return { stream: destination, file: false }
  }
  throw new TypeError(`@faultline/access-log: option "destination" must be "stdout", "stderr", a file path or a stream, got ${JSON.stringify(destination)}`)
}

type SonicBoomLike = DestinationStream & {
  flushSync?: () => void
  reopen?: () => void
  end?: () => void
  fd?: number
  once?: (event: string, listener: () => void) => unknown
}

/** ms close waits for a file's last write to land before giving up on it. */
const FILE_CLOSE_TIMEOUT_MS = 2000

async function faultlineAccessLog (fastify: FastifyInstance, options: AccessLogOptions): Promise<void> {
  for (const name of ['enabled', 'sync'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'boolean') {
      throw new TypeError(`@faultline/access-log: option "${name}" must be a boolean, got ${JSON.stringify(options[name])}`)
    }
  }
  const defaults: RouteSettings = Object.freeze({
    enabled: options.enabled ?? true,
    fields: compileFields(options.fields, 'option "fields"')
  })
  const { stream, file } = openDestination(options.destination, options.sync ?? false)
  const dest = stream as SonicBoomLike
  const logger = pino({ base: null, level: 'info' }, stream)

  fastify.addHook('onRoute', (route: RouteOptions) => {
    const config = (route.config ?? {}) as Record<string | symbol, unknown> & { accessLog?: boolean | RouteAccessLogConfig }
    const setting = config.accessLog
    let settings = defaults
    if (setting === false) settings = { enabled: false, fields: defaults.fields }
    else if (setting === true) settings = { enabled: true, fields: defaults.fields }
    else if (typeof setting === 'object' && setting !== null) {
      settings = { enabled: true, fields: compileFields(setting.fields, `route ${route.url} config.accessLog.fields`) ?? defaults.fields }
    } else if (setting !== undefined) {
      throw new TypeError(`@faultline/access-log: route ${route.url} config.accessLog must be a boolean or { fields }, got ${JSON.stringify(setting)}`)
    }
    route.config = { ...config, [kRouteSettings]: settings } as RouteOptions['config']
  })

  function write (record: FaultlineRecord, _reply: FastifyReply | null): void {
    const config = record[kRouteConfig]
    const settings = (config?.[kRouteSettings] as RouteSettings | undefined) ?? defaults
    if (!settings.enabled) return
    const fields = settings.fields
    if (fields === undefined) {
      logger.info(record, 'access')
      return
    }
    const line: Record<string, unknown> = {}
    const source = record as unknown as Record<string, unknown>
    for (let i = 0; i < fields.length; i++) line[fields[i]] = source[fields[i]]
    logger.info(line, 'access')
  }

  function flush (): void {
    if (typeof dest.flushSync === 'function') {
      try {
        dest.flushSync()
      } catch {
        // Nothing buffered, or the destination is not open yet: nothing to flush.
      }
    }
  }

  function reopen (): void {
    if (typeof dest.reopen === 'function') dest.reopen()
  }

  fastify.faultline.addSink(write)
  fastify.decorate('accessLog', { logger, flush })
  if (file) process.on('SIGHUP', reopen)

  fastify.addHook('onClose', async () => {
    // Connections cut by the close emit their records a moment after the server closed.
    await fastify.faultline.settled()
    flush()
    if (file) {
      process.off('SIGHUP', reopen)
      // flushSync cannot flush while an asynchronous write is under way; end() finishes it and then
      // closes the file. Wait for that, so that close() resolves with every line on disk.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        new Promise<void>((resolve) => {
          dest.once?.('close', resolve)
          dest.end?.()
        }),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, FILE_CLOSE_TIMEOUT_MS) })
      ])
      clearTimeout(timer)
    }
  })
}

export const faultlineAccessLogPlugin: FastifyPluginAsync<AccessLogOptions> = fp(faultlineAccessLog, {
  fastify: '5.x',
  name: '@faultline/access-log',
  dependencies: ['@faultline/core']
})
