/**
 * The access log: one pino JSON line per request, written from the core's finished record.
 * Per-route switches and field lists are compiled once, when the route is added, into a
 * serializer of the line (line.ts), written to pino's destination.
 */
import { writeSync } from 'node:fs'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import pino, { type DestinationStream, type Logger } from 'pino'
import { kRouteConfig, recordFields, type FaultlineRecord } from '@faultline/core'
import { compileLine, type LineSerializer } from './line.js'
import type { AccessLogOptions, RouteAccessLogConfig } from './options.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Access logging for this route: on, off, or on with its own field list. */
    accessLog?: boolean | RouteAccessLogConfig
  }
  interface FastifyInstance {
    /** `logger`: pino on the access log's destination (lines are written by the compiled serializer, see line.ts). */
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
  /** `undefined`: every field. */
  fields: readonly string[] | undefined
  /** Writes this route's line. */
  line: LineSerializer
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
/**
 * Lines to a destination the plugin opened (stdout, stderr, a file) are gathered for at most this
 * long, or until `BATCH_BYTES`, and handed to it in one write. sonic-boom alone starts a write
 * whenever none is in flight: under the harness's load it wrote about 17 lines per fs.write, each
 * a round trip through libuv's thread pool on a 2-core machine the gateway shares; gathered, about
 * 38. In one run of 7 paired rounds the gathered lines cost the gateway a median 7 µs of CPU per
 * request less (bench/, BENCHMARKS.md). A stream the application passes in gets each line as it is
 * made: batching is its own business.
 */
const BATCH_MS = 10
/** sonic-boom's largest single write (16 KiB): more would be split anyway. */
const BATCH_BYTES = 16 * 1024

/** Resolves once sonic-boom has opened its file; rejects with the path and the reason if it cannot. */
async function fileOpened (dest: SonicBoomLike, path: string): Promise<void> {
  const events = dest as SonicBoomLike & NodeJS.EventEmitter
  await new Promise<void>((resolve, reject) => {
    function ready (): void {
      events.off('error', failed)
      resolve()
    }
    function failed (err: Error): void {
      events.off('ready', ready)
      reject(new Error(`@faultline/access-log: cannot open the access-log file ${JSON.stringify(path)}: ${err.message}`, { cause: err }))
    }
    events.once('ready', ready)
    events.once('error', failed)
  })
}

async function faultlineAccessLog (fastify: FastifyInstance, options: AccessLogOptions): Promise<void> {
  for (const name of ['enabled', 'sync'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'boolean') {
      throw new TypeError(`@faultline/access-log: option "${name}" must be a boolean, got ${JSON.stringify(options[name])}`)
    }
  }
  // One serializer per distinct field list: 1,000 APIs with the same fields share one.
  const lines = new Map<string, LineSerializer>()
  function settingsFor (enabled: boolean, fields: readonly string[] | undefined): RouteSettings {
    const written = fields ?? recordFields
    const key = written.join(',')
    let line = lines.get(key)
    if (line === undefined) {
      line = compileLine(written)
      lines.set(key, line)
    }
    return Object.freeze({ enabled, fields, line })
  }
  const defaults = settingsFor(options.enabled ?? true, compileFields(options.fields, 'option "fields"'))
  const sync = options.sync ?? false
  const { stream, file } = openDestination(options.destination, sync)
  const dest = stream as SonicBoomLike
  // A file opens asynchronously. Wait for it: a file that cannot be opened fails the registration
  // with its reason, and lines written before an early exit are not lost (sonic-boom cannot flush
  // synchronously what it has no file for).
  if (file && !sync) await fileOpened(dest, options.destination as string)
  const logger = pino({ base: null, level: 'info' }, stream)
  // pino.multistream and the like read the level of each line from properties pino sets on them
  // before writing: such a destination gets its lines through the logger.
  const needsMetadata = (stream as unknown as Record<symbol, unknown>)[pino.symbols.needsMetadataGsym] === true
  // A destination the plugin opened asynchronously gets its lines in batches (BATCH_MS).
  const batched = stream !== options.destination && !sync

  let batch = ''
  let batchTimer: NodeJS.Timeout | null = null

  /** The lines gathered so far, taken out of the batch (whose timer stops). */
  function takeBatch (): string {
    if (batchTimer !== null) {
      clearTimeout(batchTimer)
      batchTimer = null
    }
    const lines = batch
    batch = ''
    return lines
  }

  function writeBatch (): void {
    const lines = takeBatch()
    if (lines !== '') stream.write(lines)
  }

  function writeLine (line: string): void {
    if (!batched) {
      stream.write(line)
      return
    }
    batch += line
    if (batch.length >= BATCH_BYTES) writeBatch()
    else if (batchTimer === null) {
      batchTimer = setTimeout(writeBatch, BATCH_MS)
      // A gateway with nothing else to do may exit: its last lines are written on 'exit' below.
      batchTimer.unref()
    }
  }

  fastify.addHook('onRoute', (route: RouteOptions) => {
    const config = (route.config ?? {}) as Record<string | symbol, unknown> & { accessLog?: boolean | RouteAccessLogConfig }
    const setting = config.accessLog
    let settings = defaults
    if (setting === false) settings = settingsFor(false, defaults.fields)
    else if (setting === true) settings = settingsFor(true, defaults.fields)
    else if (typeof setting === 'object' && setting !== null) {
      settings = settingsFor(true, compileFields(setting.fields, `route ${route.url} config.accessLog.fields`) ?? defaults.fields)
    } else if (setting !== undefined) {
      throw new TypeError(`@faultline/access-log: route ${route.url} config.accessLog must be a boolean or { fields }, got ${JSON.stringify(setting)}`)
    }
    route.config = { ...config, [kRouteSettings]: settings } as RouteOptions['config']
  })

  function write (record: FaultlineRecord, _reply: FastifyReply | null): void {
    const config = record[kRouteConfig]
    const settings = (config?.[kRouteSettings] as RouteSettings | undefined) ?? defaults
    if (!settings.enabled) return
    if (!needsMetadata) {
      writeLine(settings.line(record))
      return
    }
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

  /**
   * Writes every line made so far before returning: the gathered ones and sonic-boom's buffer.
   * (Handing the gathered lines to sonic-boom's write() would start an asynchronous write that a
   * process about to exit never finishes: they go to its file descriptor directly, after its buffer.)
   */
  function flush (): void {
    const lines = takeBatch()
    if (typeof dest.flushSync !== 'function') {
      if (lines !== '') stream.write(lines)
      return
    }
    try {
      dest.flushSync()
    } catch {
      // Nothing buffered, or the destination is not open yet: nothing to flush.
    }
    if (lines === '') return
    if (typeof dest.fd === 'number' && dest.fd >= 0) {
      try {
        writeSync(dest.fd, lines)
        return
      } catch {
        // EAGAIN on a non-blocking pipe and the like: let sonic-boom retry it.
      }
    }
    stream.write(lines)
  }

  function reopen (): void {
    if (typeof dest.reopen === 'function') dest.reopen()
  }

  fastify.faultline.addSink(write)
  fastify.decorate('accessLog', { logger, flush })
  if (file) process.on('SIGHUP', reopen)
  // process.exit() or an uncaught exception: the gathered lines still reach the destination
  // (pino's own exit hook has already flushed sonic-boom by then, hence flushSync here).
  if (batched) process.on('exit', flush)

  fastify.addHook('onClose', async () => {
    // Connections cut by the close emit their records a moment after the server closed.
    await fastify.faultline.settled()
    flush()
    if (batched) process.off('exit', flush)
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
