import type { AddressInfo } from 'node:net'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import core, { type FaultlineCoreOptions } from '@faultline/core'
import accessLog from '@faultline/access-log'
import proxy, { type FaultlineProxyOptions } from '@faultline/proxy'
import { LogCapture } from './log-capture.js'

export interface TestApi extends FaultlineProxyOptions {
  prefix: string
}

export interface TestGateway {
  app: FastifyInstance
  url: string
  log: LogCapture
  /** Application (error) log lines, parsed. */
  appLog: Array<Record<string, unknown>>
}

/** A gateway on a loopback port: core + access log (captured) + one proxy per API. */
export async function startGateway (apis: TestApi[], coreOptions: FaultlineCoreOptions = {}): Promise<TestGateway> {
  const log = new LogCapture()
  const appLog: Array<Record<string, unknown>> = []
  const app = Fastify({
    logger: { level: 'warn', stream: { write: (line: string) => { appLog.push(JSON.parse(line)) } } },
    logController: new LogController({ disableRequestLogging: true })
  })
  await app.register(core, coreOptions)
  await app.register(accessLog, { destination: log })
  for (const api of apis) await app.register(proxy, api)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return { app, url: `http://127.0.0.1:${port}`, log, appLog }
}
