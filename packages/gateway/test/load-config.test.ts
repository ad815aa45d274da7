import { join } from 'node:path'
import t, { type Test } from 'tap'
import { createCa, createLeaf } from '@faultline/fault-lab'
import { ConfigError, loadConfig, validateConfig } from '@faultline/gateway'

const minimalApi = { name: 'Payment API', prefix: '/api/v1/payments', upstream: { targets: ['http://127.0.0.1:9'] } }

const fullYaml = `# the contract's example, trimmed to what this release supports
server:
  host: 0.0.0.0
  port: 9090
  bodyLimit: 2048
  requestTimeout: 1000
  trustRequestId: false
  exposeFlag: true
accessLog:
  enabled: true
  destination: stderr
  fields: [status, response_flag]
apis:
  - name: Payment API
    prefix: /api/v1/payments
    methods: [GET, POST]
    bodyLimit: 65536
    accessLog: { fields: [status] }
    exposeFlag: false
    upstream:
      targets: [https://payment-backend.example.com:443, http://10.0.0.2:8080/base]
      connectTimeout: 2000
      responseTimeout: 5000
      retries: 1
      tls: { servername: payment-backend.example.com, rejectUnauthorized: true, minVersion: TLSv1.2 }
      healthCheck: { path: /health, interval: 5000, timeout: 1000, unhealthyThreshold: 2, healthyThreshold: 1 }
  - name: Root
    prefix: /
    accessLog: false
    upstream:
      targets: [http://127.0.0.1:9]
`

const fullJson = {
  server: { host: '0.0.0.0', port: 9090, bodyLimit: 2048, requestTimeout: 1000, trustRequestId: false, exposeFlag: true },
  accessLog: { enabled: true, destination: 'stderr', fields: ['status', 'response_flag'] },
  apis: [
    {
      name: 'Payment API',
      prefix: '/api/v1/payments',
      methods: ['GET', 'POST'],
      bodyLimit: 65536,
      accessLog: { fields: ['status'] },
      exposeFlag: false,
      upstream: {
        targets: ['https://payment-backend.example.com:443', 'http://10.0.0.2:8080/base'],
        connectTimeout: 2000,
        responseTimeout: 5000,
        retries: 1,
        tls: { servername: 'payment-backend.example.com', rejectUnauthorized: true, minVersion: 'TLSv1.2' },
        healthCheck: { path: '/health', interval: 5000, timeout: 1000, unhealthyThreshold: 2, healthyThreshold: 1 }
      }
    },
    { name: 'Root', prefix: '/', accessLog: false, upstream: { targets: ['http://127.0.0.1:9'] } }
  ]
}

/** Loads `config` (an object written as JSON, or YAML text) and returns the ConfigError's problem lines. */
async function problemLines (t: Test, config: unknown, env: NodeJS.ProcessEnv = {}, extra: Record<string, string> = {}): Promise<string[]> {
  const name = typeof config === 'string' ? 'gateway.yaml' : 'gateway.json'
  const dir = t.testdir({ [name]: typeof config === 'string' ? config : JSON.stringify(config), ...extra })
  try {
    await loadConfig(join(dir, name), env)
  } catch (err) {
    t.type(err, ConfigError)
    const lines = (err as ConfigError).message.split('\n')
    t.match(lines[0], /gateway\.(json|yaml): invalid configuration \(\d+ problems?\)$/)
    return lines.slice(1).map((l) => l.trim())
  }
  t.fail('expected a ConfigError')
  return []
}

function withApi (patch: Record<string, unknown>, top: Record<string, unknown> = {}): unknown {
  return { ...top, apis: [{ ...minimalApi, ...patch }] }
}

t.test('YAML and JSON files parse to the same config', async (t) => {
  const dir = t.testdir({ 'gateway.yaml': fullYaml, 'gateway.yml': fullYaml, 'gateway.json': JSON.stringify(fullJson) })
  const fromYaml = await loadConfig(join(dir, 'gateway.yaml'), {})
  const fromYml = await loadConfig(join(dir, 'gateway.yml'), {})
  const fromJson = await loadConfig(join(dir, 'gateway.json'), {})
  t.same(fromYaml, fromJson)
  t.same(fromYml, fromJson)
  t.same(fromJson, fullJson, 'a complete config comes back as written')
})

t.test('defaults fill in everything the file leaves out', async (t) => {
  const dir = t.testdir({ 'gateway.yaml': 'apis:\n  - name: A\n    prefix: /a\n    upstream:\n      targets: [http://127.0.0.1:9]\n' })
  const config = await loadConfig(join(dir, 'gateway.yaml'), {})
  t.strictSame(config, {
    server: { host: '127.0.0.1', port: 8080, bodyLimit: 1048576, requestTimeout: 30000, trustRequestId: true, exposeFlag: false },
    accessLog: { enabled: true, destination: 'stdout' },
    apis: [{ name: 'A', prefix: '/a', upstream: { targets: ['http://127.0.0.1:9'] } }]
  })
})

t.test('port 0 (any free port) is accepted', async (t) => {
  const dir = t.testdir({ 'gateway.json': JSON.stringify({ server: { port: 0 }, apis: [minimalApi] }) })
  const config = await loadConfig(join(dir, 'gateway.json'), {})
  t.equal(config.server.port, 0)
})

t.test('${NAME} is replaced in string values from the environment', async (t) => {
  const dir = t.testdir({
    'gateway.yaml': [
      'server:',
      '  host: ${HOST}',
      'apis:',
      '  - name: Pay ${ENV_NAME}',
      '    prefix: /${VERSION}/pay',
      '    upstream:',
      '      targets: ["${SCHEME}://${UPSTREAM_HOST}:8443", http://127.0.0.1:9]',
      ''
    ].join('\n')
  })
  const config = await loadConfig(join(dir, 'gateway.yaml'), {
    HOST: '0.0.0.0', ENV_NAME: 'prod', VERSION: 'v2', SCHEME: 'https', UPSTREAM_HOST: 'pay.internal'
  })
  t.equal(config.server.host, '0.0.0.0')
  t.equal(config.apis[0].name, 'Pay prod')
  t.equal(config.apis[0].prefix, '/v2/pay')
  t.same(config.apis[0].upstream.targets, ['https://pay.internal:8443', 'http://127.0.0.1:9'])
})

t.test('$${NAME} is a literal ${NAME}, not a reference', async (t) => {
  const dir = t.testdir({
    'gateway.json': JSON.stringify(withApi({ name: 'costs $${AMOUNT} and $$5' }))
  })
  const config = await loadConfig(join(dir, 'gateway.json'), {})
  t.equal(config.apis[0].name, 'costs ${AMOUNT} and $$5')
})

t.test('loadConfig reads process.env by default', async (t) => {
  process.env.FAULTLINE_TEST_UPSTREAM = 'http://127.0.0.1:7'
  t.teardown(() => { delete process.env.FAULTLINE_TEST_UPSTREAM })
  const dir = t.testdir({ 'gateway.json': JSON.stringify(withApi({ upstream: { targets: ['${FAULTLINE_TEST_UPSTREAM}'] } })) })
  const config = await loadConfig(join(dir, 'gateway.json'))
  t.same(config.apis[0].upstream.targets, ['http://127.0.0.1:7'])
})

t.test('a missing environment variable names the path and the variable', async (t) => {
  const lines = await problemLines(t, withApi({ upstream: { targets: ['${UPSTREAM_URL}'] } }))
  t.same(lines, ['apis[0].upstream.targets[0]: environment variable UPSTREAM_URL is not set'])
})

t.test('malformed references are errors, not silent literals', async (t) => {
  const lines = await problemLines(t, withApi({ name: 'a ${not-a-name}', prefix: '/x${OPEN' }))
  t.equal(lines.length, 2)
  t.match(lines[0], /^apis\[0\]\.name: has an invalid variable reference/)
  t.match(lines[1], /^apis\[0\]\.prefix: has an unterminated "\$\{"/)
})

t.test('every kind of schema error names the path of the bad value', async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ['wrong type, no coercion', { server: { port: '8080' }, apis: [minimalApi] }, 'server.port: must be an integer (got "8080")'],
    ['above a maximum', { server: { port: 70000 }, apis: [minimalApi] }, 'server.port: must be <= 65535 (got 70000)'],
    ['below a minimum', { server: { bodyLimit: 0 }, apis: [minimalApi] }, 'server.bodyLimit: must be >= 1 (got 0)'],
    ['not an integer', { server: { requestTimeout: 1.5 }, apis: [minimalApi] }, 'server.requestTimeout: must be an integer (got 1.5)'],
    ['a boolean that is a string', { server: { exposeFlag: 'yes' }, apis: [minimalApi] }, 'server.exposeFlag: must be a boolean (got "yes")'],
    ['an empty string', { server: { host: '' }, apis: [minimalApi] }, 'server.host: must not be empty (got "")'],
    ['unknown key, with a suggestion', { server: { prot: 80 }, apis: [minimalApi] }, 'server.prot: unknown key (did you mean "port"?)'],
    ['unknown top-level key', { apis: [minimalApi], severs: {} }, 'severs: unknown key (did you mean "server"?)'],
    ['unknown key, no near match', withApi({ colour: 'red' }), 'apis[0].colour: unknown key (allowed: name, prefix, methods, bodyLimit, accessLog, exposeFlag, requireContentLength, contentTypes, schema, upstream, auth, rateLimit, quota, circuitBreaker, failMode)'],
    ['apis missing', {}, 'apis: is required'],
    ['apis empty', { apis: [] }, 'apis: must list at least one item (got [])'],
    ['apis not an array', { apis: { a: 1 } }, 'apis: must be an array (got an object)'],
    ['an API that is not an object', { apis: [5] }, 'apis[0]: must be an object (got 5)'],
    ['required name', { apis: [{ prefix: '/a', upstream: minimalApi.upstream }] }, 'apis[0].name: is required'],
    ['required upstream', { apis: [{ name: 'A', prefix: '/a' }] }, 'apis[0].upstream: is required'],
    ['required targets', withApi({ upstream: {} }), 'apis[0].upstream.targets: is required'],
    ['empty targets', withApi({ upstream: { targets: [] } }), 'apis[0].upstream.targets: must list at least one item (got [])'],
    ['target not http(s)', withApi({ upstream: { targets: ['ftp://x'] } }), 'apis[0].upstream.targets[0]: must be an http(s) URL (got "ftp://x")'],
    ['target not a URL', withApi({ upstream: { targets: ['127.0.0.1:80'] } }), 'apis[0].upstream.targets[0]: must be an http(s) URL (got "127.0.0.1:80")'],
    ['target with a query', withApi({ upstream: { targets: ['http://h/?a=1'] } }), 'apis[0].upstream.targets[0]: must not have a query string or a fragment (got "http://h/?a=1")'],
    ['retries above 5', withApi({ upstream: { targets: ['http://h'], retries: 6 } }), 'apis[0].upstream.retries: must be <= 5 (got 6)'],
    ['retries below 0', withApi({ upstream: { targets: ['http://h'], retries: -1 } }), 'apis[0].upstream.retries: must be >= 0 (got -1)'],
    ['refusedBackoff below 0', withApi({ upstream: { targets: ['http://h'], refusedBackoff: -1 } }), 'apis[0].upstream.refusedBackoff: must be >= 0 (got -1)'],
    ['prefix without a leading slash', withApi({ prefix: 'api' }), 'apis[0].prefix: must be a path that starts with "/" and does not end with "/" (except "/" itself), without spaces, "?", "#", ":" or "*" (got "api")'],
    ['prefix with a trailing slash', withApi({ prefix: '/api/' }), 'apis[0].prefix: must be a path that starts with "/" and does not end with "/" (except "/" itself), without spaces, "?", "#", ":" or "*" (got "/api/")'],
    ['prefix with route syntax', withApi({ prefix: '/api/:id' }), 'apis[0].prefix: must be a path that starts with "/" and does not end with "/" (except "/" itself), without spaces, "?", "#", ":" or "*" (got "/api/:id")'],
    ['method not in the enum', withApi({ methods: ['GET', 'FETCH'] }), 'apis[0].methods[1]: must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (got "FETCH")'],
    ['method in lower case', withApi({ methods: ['post'] }), 'apis[0].methods[0]: must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (did you mean "POST"?) (got "post")'],
    ['method listed twice', withApi({ methods: ['GET', 'POST', 'GET'] }), 'apis[0].methods[2]: repeats apis[0].methods[0] (got "GET")'],
    ['per-API accessLog of the wrong type', withApi({ accessLog: 'yes' }), 'apis[0].accessLog: must be a boolean or an object (got "yes")'],
    ['unknown access-log field', withApi({ accessLog: { fields: ['latency'] } }), 'apis[0].accessLog.fields[0]: must be one of '],
    ['unknown global access-log field', { accessLog: { fields: ['stauts'] }, apis: [minimalApi] }, 'accessLog.fields[0]: must be one of '],
    ['TLS version not in the enum', withApi({ upstream: { targets: ['https://h'], tls: { minVersion: 'TLS1.2' } } }), 'apis[0].upstream.tls.minVersion: must be one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 (did you mean "TLSv1.2"?) (got "TLS1.2")'],
    ['TLS versions in the wrong order', withApi({ upstream: { targets: ['https://h'], tls: { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' } } }), 'apis[0].upstream.tls.maxVersion: must not be lower than tls.minVersion (TLSv1.3) (got "TLSv1.2")'],
    ['health-check path without a slash', withApi({ upstream: { targets: ['http://h'], healthCheck: { path: 'health' } } }), 'apis[0].upstream.healthCheck.path: must start with "/" (got "health")'],
    ['health-check timeout above its interval', withApi({ upstream: { targets: ['http://h'], healthCheck: { interval: 1000, timeout: 2000 } } }), 'apis[0].upstream.healthCheck.timeout: must not be greater than healthCheck.interval (1000) (got 2000)'],
    ['server TLS without a key', { server: { tls: { cert: '-----BEGIN CERTIFICATE-----\n' } }, apis: [minimalApi] }, 'server.tls.key: is required'],
    ['upstream client certificate without its key', withApi({ upstream: { targets: ['https://h'], tls: { cert: '-----BEGIN CERTIFICATE-----\n' } } }), 'apis[0].upstream.tls.key: is required when cert is set'],
    ['a root that is not an object', [1, 2], '(root): must be an object (got an array of 2)']
  ]
  for (const [name, config, expected] of cases) {
    const lines = await problemLines(t, config)
    t.ok(lines.some((l) => l.startsWith(expected)), name, { lines, expected })
  }
})

t.test('duplicate API names and prefixes are reported on the later API', async (t) => {
  const lines = await problemLines(t, {
    apis: [
      { name: 'A', prefix: '/a', upstream: { targets: ['http://h'] } },
      { name: 'B', prefix: '/b', upstream: { targets: ['http://h'] } },
      { name: 'A', prefix: '/b', upstream: { targets: ['http://h'] } }
    ]
  })
  t.same(lines, [
    'apis[2].name: duplicate API name: apis[0] has the same name (got "A")',
    'apis[2].prefix: duplicate prefix: apis[1] has the same prefix (got "/b")'
  ])
})

t.test('every problem is listed at once', async (t) => {
  const lines = await problemLines(t, {
    server: { port: -1, prot: 1 },
    apis: [{ name: '', prefix: 'x', upstream: { targets: ['ftp://x'], retries: 9 } }]
  })
  t.same(lines.sort(), [
    'apis[0].name: must not be empty (got "")',
    'apis[0].prefix: must be a path that starts with "/" and does not end with "/" (except "/" itself), without spaces, "?", "#", ":" or "*" (got "x")',
    'apis[0].upstream.retries: must be <= 5 (got 9)',
    'apis[0].upstream.targets[0]: must be an http(s) URL (got "ftp://x")',
    'server.port: must be >= 0 (got -1)',
    'server.prot: unknown key (did you mean "port"?)'
  ])
})

t.test('rate limit, quota, breaker, failMode and redis are checked like the rest', async (t) => {
  const good = validateConfig({
    redis: { url: 'redis://127.0.0.1:6379', commandTimeout: 200 },
    apis: [{
      ...minimalApi,
      rateLimit: { max: 100, timeWindow: '1 minute', key: 'ip' },
      quota: { max: 10, period: 'month' },
      circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeout: 1000, capacity: 10 },
      failMode: 'closed'
    }]
  })
  t.match(good.apis[0], { rateLimit: { max: 100, timeWindow: '1 minute', key: 'ip' }, failMode: 'closed' })
  t.same(good.redis, { url: 'redis://127.0.0.1:6379', commandTimeout: 200 })
  const lines = await problemLines(t, {
    redis: { url: 'http://user:hunter2@127.0.0.1:6379' },
    apis: [{
      ...minimalApi,
      rateLimit: { max: 0, timeWindow: '1 fortnight' },
      quota: { max: 10, period: 'year' },
      circuitBreaker: { errorThresholdPercentage: 100, rollingCountTimeout: 1000, rollingCountBuckets: 3 },
      failMode: 'shut'
    }]
  })
  t.same(lines.sort(), [
    'apis[0].circuitBreaker.errorThresholdPercentage: must be < 100 (got 100)',
    'apis[0].circuitBreaker.rollingCountBuckets: must divide rollingCountTimeout (1000) into buckets of at least 10 ms (got 3)',
    'apis[0].failMode: must be one of open, closed (got "shut")',
    'apis[0].quota.period: must be one of day, week, month (got "year")',
    'apis[0].rateLimit.max: must be >= 1 (got 0)',
    'apis[0].rateLimit.timeWindow: must be milliseconds or a duration such as "1 minute", "30s", "2 hours" (got "1 fortnight")',
    'redis.url: must be a redis:// or rediss:// URL (got <redacted>)'
  ].sort())
  t.notOk(lines.join('\n').includes('hunter2'), 'a Redis password is never echoed')
})

t.test('metrics: enabled, port and path are checked; other keys are refused', async (t) => {
  const lines = await problemLines(t, { metrics: { enabled: 'yes', port: 70000, path: 'metrics', scrape: true }, apis: [minimalApi] })
  t.same(lines.sort(), [
    'metrics.enabled: must be a boolean (got "yes")',
    'metrics.path: must be a path that starts with "/" (letters, digits, "-", "_", ".", "~", "/") (got "metrics")',
    'metrics.port: must be <= 65535 (got 70000)',
    'metrics.scrape: unknown key (allowed: enabled, port, path)'
  ].sort())
  const config = await loadConfig(join(t.testdir({ 'gateway.json': JSON.stringify({ metrics: { port: 9464 }, apis: [minimalApi] }) }), 'gateway.json'), {})
  t.same(config.metrics, { port: 9464 })
})

t.test('YAML syntax errors give the position, without quoting the file', async (t) => {
  const lines = await problemLines(t, 'apis:\n  - name: A\n password: hunter2\n   x: [1\n')
  t.ok(lines.length > 0)
  for (const line of lines) t.match(line, /gateway\.yaml:\d+:\d+: YAML syntax error: /)
  t.notMatch(lines.join('\n'), 'hunter2')
})

t.test('duplicate YAML keys are an error', async (t) => {
  const lines = await problemLines(t, 'apis: []\napis: []\n')
  t.match(lines[0], /gateway\.yaml:2:1: YAML syntax error: Map keys must be unique/)
})

t.test('JSON syntax errors do not quote the file', async (t) => {
  const dir = t.testdir({ 'gateway.json': '{"apis": [{"name": sk_live_hunter2}]}' })
  const err = await loadConfig(join(dir, 'gateway.json'), {}).catch((e: unknown) => e)
  t.type(err, ConfigError)
  t.match((err as Error).message, /gateway\.json.*: JSON syntax error: /)
  t.notMatch((err as Error).message, 'hunter2')
})

t.test('an empty file, a missing file and an unknown extension are config errors', async (t) => {
  const dir = t.testdir({ 'empty.yaml': '', 'gateway.toml': 'x = 1' })
  const empty = await loadConfig(join(dir, 'empty.yaml'), {}).catch((e: unknown) => e)
  t.match((empty as Error).message, /empty\.yaml: is empty/)
  const missing = await loadConfig(join(dir, 'nope.yaml'), {}).catch((e: unknown) => e)
  t.type(missing, ConfigError)
  t.match((missing as Error).message, /nope\.yaml: cannot be read: no such file/)
  const toml = await loadConfig(join(dir, 'gateway.toml'), {}).catch((e: unknown) => e)
  t.match((toml as Error).message, /gateway\.toml: unsupported file type \(use \.yaml, \.yml or \.json\)/)
})

t.test('certificate paths are resolved from the config file\'s directory and read as PEM', async (t) => {
  const ca = createCa({ commonName: 'Gateway Test CA' })
  const leaf = createLeaf({ issuer: ca, commonName: 'localhost', altNames: [{ dns: 'localhost' }] })
  const client = createLeaf({ issuer: ca, commonName: 'gateway-client', clientAuth: true })
  const dir = t.testdir({
    certs: { 'gateway.pem': leaf.cert, 'gateway-key.pem': leaf.key, 'ca.pem': ca.cert, 'client.pem': client.cert, 'client-key.pem': client.key },
    conf: {
      'gateway.yaml': [
        'server:',
        '  tls: { cert: ../certs/gateway.pem, key: ../certs/gateway-key.pem, ca: ../certs/ca.pem, requestCert: true }',
        'apis:',
        '  - name: A',
        '    prefix: /a',
        '    upstream:',
        '      targets: [https://localhost:8443]',
        '      tls: { ca: [../certs/ca.pem], cert: ../certs/client.pem, key: ../certs/client-key.pem }',
        ''
      ].join('\n')
    }
  })
  // The working directory is not the config's: paths must not depend on it.
  t.not(process.cwd(), join(dir, 'conf'))
  const config = await loadConfig(join(dir, 'conf', 'gateway.yaml'), {})
  t.equal(config.server.tls?.cert, leaf.cert)
  t.equal(config.server.tls?.key, leaf.key)
  t.equal(config.server.tls?.ca, ca.cert)
  t.equal(config.server.tls?.requestCert, true)
  t.same(config.apis[0].upstream.tls, { ca: [ca.cert], cert: client.cert, key: client.key })
})

t.test('inline PEM (typically from ${NAME}) is kept as it is', async (t) => {
  const ca = createCa({ commonName: 'Inline CA' })
  const leaf = createLeaf({ issuer: ca, commonName: 'localhost' })
  const dir = t.testdir({
    'gateway.yaml': 'server:\n  tls: { cert: "${TLS_CERT}", key: "${TLS_KEY}" }\napis:\n  - { name: A, prefix: /a, upstream: { targets: ["http://h"] } }\n'
  })
  const config = await loadConfig(join(dir, 'gateway.yaml'), { TLS_CERT: leaf.cert, TLS_KEY: leaf.key })
  t.equal(config.server.tls?.cert, leaf.cert)
  t.equal(config.server.tls?.key, leaf.key)
})

t.test('a missing certificate file names the config path and the file it looked for', async (t) => {
  const lines = await problemLines(t, withApi({ upstream: { targets: ['https://h'], tls: { ca: 'certs/ca.pem' } } }))
  t.equal(lines.length, 1)
  t.match(lines[0], /^apis\[0\]\.upstream\.tls\.ca: cannot read file: no such file \(got ".*certs\/ca\.pem"\)$/)
})

t.test('a file that is not PEM is reported', async (t) => {
  const lines = await problemLines(t, withApi({ upstream: { targets: ['https://h'], tls: { ca: 'ca.der' } } }), {}, { 'ca.der': 'binary stuff' })
  t.match(lines, [/^apis\[0\]\.upstream\.tls\.ca: is not a PEM file \(got ".*ca\.der"\)$/])
})

t.test('a key that does not match its certificate is reported at load time', async (t) => {
  const ca = createCa({ commonName: 'Mismatch CA' })
  const a = createLeaf({ issuer: ca, commonName: 'a' })
  const b = createLeaf({ issuer: ca, commonName: 'b' })
  const lines = await problemLines(t, { server: { tls: { cert: 'a.pem', key: 'b-key.pem' } }, apis: [minimalApi] }, {}, { 'a.pem': a.cert, 'b-key.pem': b.key })
  t.equal(lines.length, 1)
  t.match(lines[0], /^server\.tls: certificate, key or CA cannot be used: .*key values mismatch/)
  t.notMatch(lines[0], 'PRIVATE KEY')
})

t.test('secrets are never echoed in errors', async (t) => {
  t.test('a value from the environment is redacted', async (t) => {
    const lines = await problemLines(t, withApi({ bodyLimit: '${LIMIT}', upstream: { targets: ['${TARGET}'] } }), {
      LIMIT: 'sk_live_limit_secret', TARGET: 'ftp://sk_live_target_secret'
    })
    t.same(lines, [
      'apis[0].bodyLimit: must be an integer (a value taken from ${...} is always a string) (got <redacted>)',
      'apis[0].upstream.targets[0]: must be an http(s) URL (got <redacted>)'
    ])
  })

  t.test('a key or certificate value is redacted', async (t) => {
    const lines = await problemLines(t, { server: { tls: { cert: 12345, key: 67890 } }, apis: [minimalApi] })
    t.same(lines, [
      'server.tls.cert: must be a string (got <redacted>)',
      'server.tls.key: must be a string (got <redacted>)'
    ])
  })

  t.test('a key path taken from the environment is redacted when the file is missing', async (t) => {
    const lines = await problemLines(t, { server: { tls: { cert: '${CERT}', key: '${KEY}' } }, apis: [minimalApi] }, {
      CERT: 'sk_cert_secret', KEY: 'sk_key_secret'
    })
    t.same(lines, [
      'server.tls.cert: cannot read file: no such file (got <redacted>)',
      'server.tls.key: cannot read file: no such file (got <redacted>)'
    ])
  })

  t.test('a key body pasted without its PEM header is not echoed', async (t) => {
    const body = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7'
    const lines = await problemLines(t, { server: { tls: { cert: body, key: body } }, apis: [minimalApi] })
    t.equal(lines.length, 2)
    t.notMatch(lines.join('\n'), body)
  })

  t.test('credentials in a URL are not echoed', async (t) => {
    const lines = await problemLines(t, withApi({ upstream: { targets: ['http://admin:sk_live_pw@h'] } }))
    t.same(lines, ['apis[0].upstream.targets[0]: must not contain credentials (got "http://<redacted>@h")'])
  })

  t.test('values under keys of later releases are not echoed', async (t) => {
    const lines = await problemLines(t, withApi({ rateLimit: { key: 'sk_live_123' } }, { redis: { url: 'redis://:sk_redis@h' } }))
    t.notMatch(lines.join('\n'), /sk_/)
  })
})

t.test('auth settings are checked by type, and keys and secrets are never echoed', async (t) => {
  const lines = await problemLines(t, {
    apis: [
      { ...minimalApi, auth: { type: 'apiKey', header: 'x api key', keys: [{ id: 'a' }, { id: 'b', key: 'sk live 123' }] } },
      { ...minimalApi, name: 'B', prefix: '/b', auth: { type: 'jwt', algorithms: ['none'], secret: 's3cret-value', extra: 1 } },
      { ...minimalApi, name: 'C', prefix: '/c', auth: { type: 'mtls', allowedFingerprints: ['ab'] } },
      { ...minimalApi, name: 'D', prefix: '/d', auth: { type: 'magic' } }
    ]
  })
  t.same(lines.sort(), [
    'apis[0].auth.header: must be a header name (got "x api key")',
    'apis[0].auth.keys[0]: needs "key" or "keyHash" (got "a")',
    'apis[0].auth.keys[1].key: must be 1 to 512 printable characters without spaces (got <redacted>)',
    'apis[1].auth.algorithms[0]: must be one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA (got "none")',
    'apis[1].auth.extra: unknown key (allowed: type, secret, publicKey, algorithms, issuer, audience, requiredClaims, requiredScopes, clockTolerance, claimHeaders, forwardToken)',
    'apis[2].auth.allowedFingerprints[0]: must be a sha256 fingerprint (64 hex digits, colons allowed) (got "ab")',
    'apis[2].auth.type: mtls needs server.tls with requestCert: true (the gateway must ask clients for a certificate) (got "mtls")',
    'apis[3].auth.type: must be one of apiKey, jwt, external, mtls (got "magic")'
  ])
  t.notMatch(lines.join('\n'), /sk live|s3cret/)
})

t.test('a file access-log destination is relative to the config file', async (t) => {
  const dir = t.testdir({ 'gateway.json': JSON.stringify({ accessLog: { destination: 'logs/access.log' }, apis: [minimalApi] }) })
  const config = await loadConfig(join(dir, 'gateway.json'), {})
  t.equal(config.accessLog.destination, join(dir, 'logs', 'access.log'))
})

t.test('validateConfig checks a config object and returns a copy with the defaults', async (t) => {
  const input = { apis: [minimalApi] }
  const config = validateConfig(input)
  t.equal(config.server.port, 8080)
  t.equal(config.accessLog.destination, 'stdout')
  t.same(input, { apis: [minimalApi] }, 'the input is not mutated')
  t.throws(() => validateConfig({ apis: [{ ...minimalApi, prefix: 'x' }] }), ConfigError)
})
