// The 30-second tour: a "fault lab" of upstreams that fail on purpose (bad certificates, refused
// port, resets, timeouts, garbage, 503), `faultline serve` in front of it with an API key, a rate
// limit and a circuit breaker, one request per failure, and the access line of each, as a table. Then it keeps serving until Ctrl-C.
//
//   npm run demo                 (installs, builds, runs this)
//   node examples/demo/demo.js --tour-only   (exit after the tour; used by the test suite)
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { startFaultLab } from '@faultline/fault-lab'
import { flags } from '@faultline/core'

const tourOnly = process.argv.includes('--tour-only')
const port = Number(process.env.PORT ?? (tourOnly ? 0 : 8080))
const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'packages/gateway/bin/faultline.js')

const lab = await startFaultLab()
const dir = await mkdtemp(join(tmpdir(), 'faultline-demo-'))
await writeFile(join(dir, 'lab-ca.pem'), lab.pki.rootCa.cert)

// One API per way an upstream can fail. Every target is on 127.0.0.1.
const apis = [
  ['ok', lab.urls.ok, '/hello', 'a healthy upstream'],
  ['expired', lab.urls.tlsExpired, '/', 'certificate expired in 2021'],
  ['not-yet-valid', lab.urls.tlsNotYetValid, '/', 'certificate valid from 2099'],
  ['wrong-host', lab.urls.tlsWrongHost, '/', 'certificate for other.example'],
  ['self-signed', lab.urls.tlsSelfSigned, '/', 'self-signed certificate'],
  ['no-intermediate', lab.urls.tlsIncompleteChain, '/', 'server forgot its intermediate'],
  ['plaintext', lab.urls.plaintextOnTlsPort, '/', 'plain HTTP where TLS was expected'],
  ['wants-client-cert', lab.urls.tlsClientCert12, '/', 'upstream demands a client certificate'],
  ['refused', lab.urls.refused, '/', 'nothing listens on the port'],
  ['handshake-hangs', lab.urls.tlsHang, '/', 'TCP accepted, TLS never answered'],
  ['slow', lab.urls.ok, '/slow?ms=3000', 'answers after 3 s (timeout 800 ms)'],
  ['reset', lab.urls.ok, '/reset', 'TCP reset before answering'],
  ['garbage', lab.urls.ok, '/garbage', 'answers bytes that are not HTTP'],
  ['unavailable', lab.urls.ok, '/status/503', 'the upstream itself answers 503']
]

// The gateway's own boundaries: an API behind an API key with a rate limit of 2 a minute, and one
// whose upstream is down behind a circuit breaker that opens after 3 failures.
const demoKey = 'demo-key-0123456789'
const guarded = [
  '  - name: orders',
  '    prefix: /orders',
  `    upstream: { targets: [${lab.urls.ok}] }`,
  '    auth:',
  '      type: apiKey',
  `      keys: [{ id: demo-customer, key: ${demoKey} }]`,
  '    rateLimit: { max: 2, timeWindow: 1 minute }',
  '  - name: breaker',
  '    prefix: /breaker',
  `    upstream: { targets: [${lab.urls.refused}], connectTimeout: 800 }`,
  '    circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 3, resetTimeout: 10000 }'
]

const yaml = [
  'server:',
  '  host: 127.0.0.1',
  `  port: ${port}`,
  '  exposeFlag: true',
  'accessLog:',
  '  destination: stdout',
  'apis:',
  ...apis.flatMap(([name, target]) => [
    `  - name: ${name}`,
    `    prefix: /${name}`,
    '    upstream:',
    `      targets: [${target}]`,
    '      connectTimeout: 800',
    '      responseTimeout: 800',
    '      tls: { ca: ./lab-ca.pem }'
  ]),
  ...guarded
].join('\n') + '\n'
const configFile = join(dir, 'gateway.yaml')
await writeFile(configFile, yaml)

const gateway = spawn(process.execPath, [bin, 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] })
const lines = []
let touring = true
createInterface({ input: gateway.stdout }).on('line', (text) => {
  let line
  try { line = JSON.parse(text) } catch { return }
  if (line.msg !== 'access') return
  lines.push(line)
  if (touring) return
  printRow(line)
})

const address = await new Promise((resolve, reject) => {
  const rl = createInterface({ input: gateway.stderr })
  rl.on('line', (text) => {
    const m = /listening on (\S+)/.exec(text)
    if (m) resolve(m[1])
    else if (!touring) process.stderr.write(text + '\n')
  })
  gateway.once('exit', (code) => reject(new Error(`faultline serve exited with ${code} before listening`)))
})

const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s)
const col = (s, n) => String(s ?? '-').padEnd(n).slice(0, n)

function printRow (line) {
  process.stdout.write([
    col(line.path, 26),
    col(line.status, 4),
    col(line.response_flag ?? '', 4),
    col(line.response_code_details ?? '', 34),
    col(line.error_source ?? line.response_source, 14),
    col(line.error_target ?? line.upstream_addr ?? '', 16),
    col(line.latency_total, 8)
  ].join(' ') + '\n')
}

process.stdout.write(`\n${bold('Faultline demo')}: a fault lab of misbehaving upstreams on loopback, the gateway on ${address}.\n`)
process.stdout.write('One request per failure; each row is that request\'s access-log line.\n\n')
process.stdout.write(bold([col('path', 26), col('code', 4), col('flag', 4), col('response_code_details', 34), col('error_source', 14), col('error_target', 16), col('ms', 8)].join(' ')) + '\n')

const withKey = { 'x-api-key': demoKey }
const tour = [...apis.map(([name, , path, what]) => ({ path: `/${name}${path}`, method: 'GET', what })),
  { path: '/no-such-api', method: 'GET', what: 'no API has this prefix' },
  { path: '/orders/hello', method: 'GET', what: 'no API key' },
  { path: '/orders/hello', method: 'GET', headers: { 'x-api-key': 'not-a-key-we-know' }, what: 'unknown API key' },
  { path: '/orders/hello', method: 'GET', headers: withKey, what: 'good key, 1 of 2 a minute' },
  { path: '/orders/hello', method: 'GET', headers: withKey, what: 'good key, 2 of 2' },
  { path: '/orders/hello', method: 'GET', headers: withKey, what: 'good key, over the rate limit' },
  { path: '/orders/hello', method: 'DELETE', headers: withKey, what: 'also over the limit' },
  ...[1, 2, 3].map((n) => ({ path: '/breaker/', method: 'GET', what: `refused upstream, failure ${n} of 3` })),
  { path: '/breaker/', method: 'GET', what: 'breaker open: answered without dialling' }]
for (const step of tour) {
  const before = lines.length
  const res = await fetch(address + step.path, { method: step.method, headers: step.headers })
  await res.arrayBuffer().catch(() => {})
  for (let i = 0; i < 200 && lines.length === before; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const line = lines[before]
  if (line) printRow(line)
}

process.stdout.write(`\n${bold('What to check first')}, from the flag catalogue (faultline flags):\n`)
const seen = [...new Set(lines.map((l) => l.response_flag).filter(Boolean))]
for (const code of seen) process.stdout.write(`  ${bold(code)}  ${flags[code].check}\n`)

async function shutdown (code) {
  gateway.kill('SIGTERM')
  await new Promise((resolve) => gateway.once('exit', resolve))
  await lab.close()
  await rm(dir, { recursive: true, force: true })
  process.exit(code)
}

if (tourOnly) {
  process.stdout.write(`\nTOUR ${JSON.stringify(lines.map((l) => [l.path, l.status, l.response_flag ?? null]))}\n`)
  await shutdown(0)
} else {
  touring = false
  process.stdout.write(`\nThe gateway keeps serving on ${address} (Ctrl-C to stop). Try:\n`)
  process.stdout.write(`  curl -i ${address}/expired/          # TLE, with x-faultline-flag (exposeFlag is on in this demo)\n`)
  process.stdout.write(`  curl -i ${address}/refused/          # UCF\n`)
  process.stdout.write(`  curl -i ${address}/ok/anything?q=1   # proxied, 200\n`)
  process.stdout.write(`  curl -i -H 'x-api-key: ${demoKey}' ${address}/orders/hello   # 2 a minute, then RLT 429\n`)
  process.stdout.write('  faultline flags                      # the whole catalogue (node_modules/.bin/faultline)\n\n')
  process.once('SIGINT', () => { shutdown(0) })
  process.once('SIGTERM', () => { shutdown(0) })
}
