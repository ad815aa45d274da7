/**
 * What one access line costs to build: pino's `logger.info(record, 'access')` against the line
 * @faultline/access-log compiles for the record's fields (packages/access-log/src/line.ts), both
 * writing to a destination that drops what it gets, in one process, rounds interleaved.
 *
 *   node bench/access-line.mjs [--lines 200000] [--rounds 7]
 *
 * Prints CPU µs per line (medians over rounds) and their ratio. The two must write the same bytes
 * (time aside): the script checks that first.
 */
import { parseArgs } from 'node:util'
import pino from 'pino'
import { FaultlineRecord, recordFields } from '@faultline/core'
import { compileLine } from '../packages/access-log/dist/line.js'

const { values: args } = parseArgs({ options: { lines: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '7' } } })
const lines = Number(args.lines)
const rounds = Number(args.rounds)
if (!Number.isInteger(lines) || lines < 1 || lines > 10_000_000 || !Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
  process.stderr.write('usage: node bench/access-line.mjs [--lines 1..10000000] [--rounds 1..100]\n')
  process.exit(2)
}

// Proxied successes, as the bench's proxy + access log row writes them: each line has its own
// request id, path and latencies; route, API, upstream, client and agent repeat (as under load).
const { randomUUID } = await import('node:crypto')
const records = Array.from({ length: 4096 }, (_, i) => {
  const record = new FaultlineRecord(randomUUID(), 'GET', `/api/items/${i}`)
  return Object.assign(record, {
    route: '/api/*',
    api_name: 'bench',
    status: 200,
    response_source: 'upstream',
    upstream_status: 200,
    upstream_addr: '127.0.0.1:34567',
    upstream_attempts: 1,
    upstream_latency: Math.round(Math.random() * 5000) / 1000,
    gateway_latency: Math.round(Math.random() * 1000) / 1000,
    latency_total: Math.round(Math.random() * 6000) / 1000,
    client_ip: '127.0.0.1',
    user_agent: 'autocannon/9.0.0'
  })
})
const record = records[0]
let next = 0
const nextRecord = () => records[next++ & 4095]

let last = ''
const sink = { write (line) { last = line } }
const logger = pino({ base: null }, sink)
const line = compileLine(recordFields)

const withoutTime = (text) => text.replace(/"time":\d+/, '')
logger.info(record, 'access')
if (withoutTime(last) !== withoutTime(line(record))) throw new Error(`the compiled line differs from pino's:\n${last}${line(record)}`)

const ways = {
  'pino logger.info': () => logger.info(nextRecord(), 'access'),
  'compiled line': () => sink.write(line(nextRecord()))
}
const samples = Object.fromEntries(Object.keys(ways).map((name) => [name, []]))
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? Object.keys(ways) : Object.keys(ways).reverse()
  for (const name of order) {
    const write = ways[name]
    const before = process.cpuUsage()
    for (let i = 0; i < lines; i++) write()
    const used = process.cpuUsage(before)
    samples[name].push((used.user + used.system) / lines)
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const result = Object.fromEntries(Object.entries(samples).map(([name, xs]) => [name, median(xs)]))
for (const [name, us] of Object.entries(result)) process.stdout.write(`${name.padEnd(18)} ${us.toFixed(2)} µs CPU per line\n`)
process.stdout.write(`compiled / pino: ${(result['compiled line'] / result['pino logger.info']).toFixed(2)}x the CPU (${lines} lines x ${rounds} rounds, Node ${process.version})\n`)
