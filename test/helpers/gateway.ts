import type { AddressInfo } from 'node:net'
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import core, { type FaultlineCoreOptions } from '@faultline/core'
import accessLog from '@faultline/access-log'
import proxy, { type FaultlineProxyOptions } from '@faultline/proxy'
import auth, { type AuthOptions } from '@faultline/auth'
import { LogCapture } from './log-capture.js'

export interface TestApi extends FaultlineProxyOptions {
  prefix: string
  /** Auth in front of the API's proxy (same encapsulated context). */
  auth?: AuthOptions
}

export interface TestGateway {
  app: FastifyInstance
  url: string
  log: LogCapture
  /** Application (error) log lines, parsed. */
  appLog: Array<Record<string, unknown>>
}

/** A gateway on a loopback port: core + access log (captured) + one proxy per API. */
export async function startGateway (apis: TestApi[], coreOptions: FaultlineCoreOptions = {}, serverOptions: FastifyServerOptions & { https?: object } = {}): Promise<TestGateway> {
  const log = new LogCapture()
  const appLog: Array<Record<string, unknown>> = []
  const app = Fastify({
    ...serverOptions,
    logger: { level: 'warn', stream: { write: (line: string) => { appLog.push(JSON.parse(line)) } } },
    logController: new LogController({ disableRequestLogging: true })
  })
  await app.register(core, coreOptions)
  await app.register(accessLog, { destination: log })
  for (const api of apis) {
    const { auth: authOptions, prefix, ...proxyOptions } = api
    if (authOptions === undefined) {
      await app.register(proxy, api)
    } else {
      await app.register(async (scope) => {
        await scope.register(auth, authOptions)
        await scope.register(proxy, proxyOptions)
      }, { prefix })
    }
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const scheme = serverOptions.https === undefined ? 'http' : 'https'
  return { app, url: `${scheme}://127.0.0.1:${port}`, log, appLog }
}
