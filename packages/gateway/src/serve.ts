/**
 * Runs a gateway: builds it, listens, prints the address once (stderr: stdout carries access
 * lines only), and on SIGTERM/SIGINT drains in-flight requests, flushes the access log, and
 * reports exit code 0. A second signal exits at once.
 */
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildGateway, resolveServerConfig, type BuildGatewayOptions } from './build-gateway.js'
import type { GatewayConfigInput } from './config/schema.js'

export interface ServeOptions extends BuildGatewayOptions {
  /** ms in-flight requests get to finish after a signal before their connections are closed. Default 10000. */
  drainTimeout?: number
  /** Install the SIGTERM/SIGINT handlers. Default true. */
  handleSignals?: boolean
  /** Where the listening line and shutdown notes go. Default `process.stderr`. */
  stderr?: { write: (text: string) => unknown }
}

export interface RunningGateway {
  readonly app: FastifyInstance
  /** `http(s)://host:port` the gateway listens on (the real port when the config says 0). */
  readonly url: string
  /** Drains and closes the gateway, as a first signal does; resolves with the exit code. */
  close: () => Promise<number>
  /** Resolves with the exit code (0 after a clean drain) once the gateway has shut down. */
  readonly closed: Promise<number>
}

const DEFAULT_DRAIN_TIMEOUT = 10_000
const SIGNALS = ['SIGTERM', 'SIGINT'] as const

function listeningUrl (app: FastifyInstance, https: boolean): string {
  const address = app.server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `${https ? 'https' : 'http'}://${host}:${address.port}`
}

export async function serve (config: GatewayConfigInput, options: ServeOptions = {}): Promise<RunningGateway> {
  const drainTimeout = options.drainTimeout ?? DEFAULT_DRAIN_TIMEOUT
  if (!Number.isInteger(drainTimeout) || drainTimeout < 0) {
    throw new TypeError(`serve: option "drainTimeout" must be an integer >= 0, got ${JSON.stringify(drainTimeout)}`)
  }
  const stderr = options.stderr ?? process.stderr
  const server = resolveServerConfig(config)
  const app = await buildGateway(config, options)
  try {
    await app.listen({ host: server.host, port: server.port })
  } catch (err) {
    await app.close()
    throw err
  }
  const url = listeningUrl(app, server.tls !== undefined)
  stderr.write(`faultline listening on ${url}\n`)
  const metricsAt = app.hasDecorator('faultlineMetrics') ? app.faultlineMetrics.address : null
  if (metricsAt !== null) {
    const host = metricsAt.host.includes(':') ? `[${metricsAt.host}]` : metricsAt.host
    stderr.write(`faultline metrics on http://${host}:${metricsAt.port}${config.metrics?.path ?? '/metrics'}\n`)
  }

  let resolveClosed: (code: number) => void = () => {}
  const closed = new Promise<number>((resolve) => { resolveClosed = resolve })
  let closing: Promise<number> | undefined

  async function drain (): Promise<number> {
    // app.close() stops accepting connections, lets in-flight requests finish, then runs the
    // plugins' onClose hooks (the access log flushes there). Bounded: then connections are cut.
    const timer = setTimeout(() => {
      stderr.write(`faultline: requests still in flight after ${drainTimeout} ms, closing their connections\n`)
      app.server.closeAllConnections()
    }, drainTimeout)
    // Node closes idle keep-alive connections once, when the close starts: a connection whose
    // request finishes during the drain would stay open (and hold the close) until drainTimeout.
    const idle = setInterval(() => app.server.closeIdleConnections(), 50)
    idle.unref()
    let code = 0
    try {
      await app.close()
    } catch (err) {
      stderr.write(`faultline: error while closing: ${(err as Error).message}\n`)
      code = 1
    } finally {
      clearTimeout(timer)
      clearInterval(idle)
      removeSignalHandlers()
    }
    resolveClosed(code)
    return code
  }

  function close (): Promise<number> {
    closing ??= drain()
    return closing
  }

  function onSignal (signal: NodeJS.Signals): void {
    if (closing === undefined) {
      stderr.write(`faultline: ${signal} received, draining in-flight requests (up to ${drainTimeout} ms)\n`)
      close().catch(() => {})
      return
    }
    stderr.write(`faultline: ${signal} received again, exiting now\n`)
    app.server.closeAllConnections()
    const accessLog = (app as FastifyInstance & { accessLog?: { flush?: () => void } }).accessLog
    accessLog?.flush?.()
    process.exit(1)
  }

  function removeSignalHandlers (): void {
    for (const signal of SIGNALS) process.off(signal, onSignal)
  }

  if (options.handleSignals ?? true) {
    for (const signal of SIGNALS) process.on(signal, onSignal)
  }

  return { app, url, close, closed }
}
