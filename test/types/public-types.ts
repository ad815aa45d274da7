// Type tests for the public API, checked by `tsc -p tsconfig.json` (part of `npm test`).
// Lines marked @ts-expect-error must NOT compile: if one starts compiling, tsc fails.
import Fastify from 'fastify'
import core, { FaultlineError, reportFailure, type FaultlineRecord } from '@faultline/core'
import accessLog from '@faultline/access-log'
import proxy from '@faultline/proxy'
import { renderReport, summarise } from '@faultline/gateway/report'

const app = Fastify()
await app.register(core, { exposeFlag: true, trustRequestId: false })
// @ts-expect-error exposeFlag is a boolean
await app.register(core, { exposeFlag: 'yes' })
await app.register(accessLog, { destination: 'stdout', fields: ['status', 'response_flag'] })
// @ts-expect-error fields is a list of names
await app.register(accessLog, { fields: 'status' })
await app.register(proxy, { prefix: '/a', name: 'A', methods: ['GET'], upstream: { targets: ['http://127.0.0.1:1'], retries: 1 } })
// @ts-expect-error an API needs an upstream
await app.register(proxy, { prefix: '/b', name: 'B' })
// @ts-expect-error targets is a list of URLs
await app.register(proxy, { prefix: '/c', name: 'C', upstream: { targets: 'http://127.0.0.1:1' } })
// @ts-expect-error TLS versions are Node's names
await app.register(proxy, { prefix: '/d', name: 'D', upstream: { targets: ['https://127.0.0.1:1'], tls: { minVersion: 'TLS1.2' } } })

app.get('/x', { config: { accessLog: false, exposeFlag: true, apiName: 'X' } }, async (_request, reply) => {
  const record: FaultlineRecord | null = reply.faultline
  const flag: string | undefined = record?.response_flag
  reply.header('x-seen-flag', flag ?? '-')
  reportFailure(reply, 'RLE', { target: '127.0.0.1:6379' })
  throw new FaultlineError('UCF', { target: 'pay:443', cause: new Error('refused') })
})

app.faultline.addSink((record) => { console.log(record.status satisfies number | undefined) })
// @ts-expect-error a sink receives a record, not a string
app.faultline.addSink((record: string) => record)

const error = new FaultlineError('TLE', { details: 'tls_certificate_expired', fields: { tls_cert_expiry: '2021-01-01T00:00:00.000Z' } })
export const code: string = error.flag
export const status: number = error.statusCode

// The access-log report (@faultline/gateway/report).
const summary = await summarise({ inputs: ['access.log'], format: 'json', top: 10, by: 'day' }, { stderr: process.stderr })
export const firstCheck: string | undefined = summary.flags[0]?.check
export const upstreamP99: number | undefined = summary.flags[0]?.latency.upstream?.p99
export const html: string = renderReport(summary, 'html')
// @ts-expect-error formats are table, md, csv, json and html
renderReport(summary, 'pdf')
// @ts-expect-error --by takes a known dimension
await summarise({ inputs: [], format: 'table', top: 10, by: 'minute' }, { stderr: process.stderr })
