import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import { createApiKeyAuthenticator, hashApiKey, type ApiKeyAuthOptions } from '@faultline/auth'
import { startGateway, type TestGateway } from '../../../test/helpers/gateway.js'
import { httpRequest, type HttpAnswer } from '../../../test/helpers/http-client.js'
import { recordingUpstream as upstream, type RecordingUpstream as Upstream } from '../../../test/helpers/upstream.js'

const KEY = 'sk_live_4f9a0c2b7e'
const OTHER_KEY = 'sk_live_other_api_only'
const OLD_KEY = 'sk_live_expired_one'

async function gateway (t: Test, up: Upstream, auth: Partial<ApiKeyAuthOptions> = {}): Promise<TestGateway> {
  const gw = await startGateway([{
    name: 'Payments',
    prefix: '/pay',
    upstream: { targets: [up.url] },
    auth: {
      type: 'apiKey',
      keys: [
        { id: 'acme', key: KEY },
        { id: 'globex', keyHash: hashApiKey(OTHER_KEY), apis: ['Orders'] },
        { id: 'initech', key: OLD_KEY, expiresAt: '2020-01-01T00:00:00Z' },
        { id: 'umbrella', key: 'sk_revoked_key', revoked: true }
      ],
      ...auth
    }
  }])
  t.teardown(() => gw.app.close())
  return gw
}

async function call (gw: TestGateway, path: string, headers: Record<string, string> = {}): Promise<HttpAnswer & { line: Record<string, unknown> }> {
  const before = gw.log.lines.length
  const res = await httpRequest(gw.url, { path, headers })
  const lines = await gw.log.waitFor(before + 1)
  return { ...res, line: lines[before] }
}

function assertDenied (t: Test, res: HttpAnswer & { line: Record<string, unknown> }, up: Upstream, flag: string, status: number, details: string, category = 'auth'): void {
  t.equal(res.status, status)
  t.match(res.line, { status, response_flag: flag, response_code_details: details, error_source: 'ApiKeyAuth', error_category: category, api_name: 'Payments' })
  t.equal(up.hits, 0, 'a denied request never reaches the upstream')
  t.notMatch(JSON.stringify(res.line) + res.body, /sk_/, 'no key text in the line or the body')
}

t.test('a known key passes; consumer is its id; the key never reaches the upstream', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const res = await call(gw, '/pay/charges?limit=1', { 'x-api-key': KEY })
  t.equal(res.status, 200)
  t.match(res.line, { status: 200, consumer: 'acme', response_source: 'upstream' })
  t.equal(res.line.response_flag, undefined)
  t.equal(up.headers[0]['x-api-key'], undefined)
  t.notMatch(JSON.stringify(gw.log.lines), /sk_live/)
})

t.test('no key is AMF 401', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const res = await call(gw, '/pay/')
  assertDenied(t, res, up, 'AMF', 401, 'auth_field_missing')
  t.equal(JSON.parse(res.body).message, 'Authorization field missing')
  t.equal(res.headers['www-authenticate'], 'ApiKey header="x-api-key"', 'the 401 names where the key goes')
})

t.test('a client cannot choose its consumer id: the upstream gets the one the key belongs to', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const res = await call(gw, '/pay/charges', { 'x-api-key': KEY, 'x-consumer-id': 'admin' })
  t.equal(res.status, 200)
  t.equal(up.headers[0]['x-consumer-id'], 'acme')
})

t.test('a malformed key is IHD 400 (category client)', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  assertDenied(t, await call(gw, '/pay/', { 'x-api-key': 'has spaces in it' }), up, 'IHD', 400, 'invalid_header', 'client')
  assertDenied(t, await call(gw, '/pay/', { 'x-api-key': 'x'.repeat(600) }), up, 'IHD', 400, 'invalid_header', 'client')
})

t.test('an unknown or revoked key is AKI 401, with no consumer', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const unknown = await call(gw, '/pay/', { 'x-api-key': 'sk_live_guess' })
  assertDenied(t, unknown, up, 'AKI', 401, 'api_key_invalid')
  t.equal(unknown.line.consumer, undefined)
  assertDenied(t, await call(gw, '/pay/', { 'x-api-key': 'sk_revoked_key' }), up, 'AKI', 401, 'api_key_invalid')
})

t.test('an expired key is AKE 401 and names its consumer', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const res = await call(gw, '/pay/', { 'x-api-key': OLD_KEY })
  assertDenied(t, res, up, 'AKE', 401, 'api_key_expired')
  t.equal(res.line.consumer, 'initech')
})

t.test('a key whose apis list lacks this API is ACD 403 (stored as a hash)', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const res = await call(gw, '/pay/', { 'x-api-key': OTHER_KEY })
  assertDenied(t, res, up, 'ACD', 403, 'access_denied')
  t.equal(res.line.consumer, 'globex')
})

t.test('a key in the query parameter works and is removed before proxying and logging', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up, { queryParam: 'api_key' })
  const res = await call(gw, `/pay/charges?limit=2&api_key=${KEY}&sort=asc`)
  t.equal(res.status, 200)
  t.equal(up.urls[0], '/charges?limit=2&sort=asc')
  t.equal(res.line.path, '/pay/charges')
  t.notMatch(JSON.stringify(gw.log.lines), /sk_live/)
  // The other parameters keep their exact bytes (a signed URL stays valid); an encoded name is found.
  const signed = await call(gw, `/pay/charges?q=a%20b&flag&api%5Fkey=${KEY}&sig=x%2By+z`)
  t.equal(signed.status, 200)
  t.equal(up.urls[1], '/charges?q=a%20b&flag&sig=x%2By+z')
})

t.test('a lookup function finds keys by hash and its answers are cached', async (t) => {
  const up = await upstream(t)
  const asked: string[] = []
  const gw = await gateway(t, up, {
    keys: undefined,
    lookup: async (keyHash) => {
      asked.push(keyHash)
      return keyHash === hashApiKey('sk_db_key_1') ? { id: 'from-db', keyHash } : null
    }
  })
  t.equal((await call(gw, '/pay/', { 'x-api-key': 'sk_db_key_1' })).status, 200)
  t.equal((await call(gw, '/pay/', { 'x-api-key': 'sk_db_key_1' })).status, 200)
  t.equal((await call(gw, '/pay/', { 'x-api-key': 'sk_db_nope' })).line.response_flag, 'AKI')
  t.equal((await call(gw, '/pay/', { 'x-api-key': 'sk_db_nope' })).line.response_flag, 'AKI')
  t.same(asked, [hashApiKey('sk_db_key_1'), hashApiKey('sk_db_nope')], 'one lookup per key, hits and misses cached')
  t.notOk(asked.includes('sk_db_key_1'), 'the lookup never sees the key itself')
  t.equal(gw.log.lines[0].consumer, 'from-db')
})

t.test('requests waiting on the lookup at the same time each keep their own key', async (t) => {
  const up = await upstream(t)
  const consumers = ['one', 'two', 'three', 'four']
  const byHash = new Map(consumers.map((id) => [hashApiKey(`sk_db_${id}`), id]))
  const gw = await gateway(t, up, {
    keys: undefined,
    lookup: async (keyHash) => {
      // Every answer waits, so all four requests are between hashing and comparing at once.
      await new Promise((resolve) => setTimeout(resolve, 30))
      const id = byHash.get(keyHash)
      return id === undefined ? null : { id, keyHash }
    }
  })
  const answers = await Promise.all(consumers.map(async (id) => await httpRequest(gw.url, { path: '/pay/', headers: { 'x-api-key': `sk_db_${id}` } })))
  t.same(answers.map((a) => a.status), [200, 200, 200, 200])
  await gw.log.waitFor(4)
  t.same(gw.log.lines.map((line) => line.consumer).sort(), [...consumers].sort())
})

t.test('keys are compared with a timing-safe comparison on their sha256', async (t) => {
  const crypto = await import('node:crypto')
  const compared: Array<[string, string]> = []
  const { createApiKeyAuthenticator: mocked } = await t.mockImport<typeof import('@faultline/auth')>('@faultline/auth', {
    'node:crypto': {
      ...crypto,
      timingSafeEqual: (a: Buffer, b: Buffer) => {
        compared.push([a.toString('hex'), b.toString('hex')])
        return crypto.timingSafeEqual(a, b)
      }
    }
  })
  const auth = mocked({ type: 'apiKey', keys: [{ id: 'acme', key: KEY }] })
  const reply = { faultline: { consumer: undefined as string | undefined, api_name: 'Payments' } }
  const headers = { 'x-api-key': KEY }
  await auth.authenticate({ headers, raw: { url: '/', headers } } as never, reply as never)
  t.equal(reply.faultline.consumer, 'acme')
  t.same(compared, [[hashApiKey(KEY), hashApiKey(KEY)]], 'the digests, never the keys, are compared with timingSafeEqual')
})

t.test('a key that matched is not hashed again; every other check still runs on each request', async (t) => {
  const crypto = await import('node:crypto')
  let hashed = 0
  const { createApiKeyAuthenticator: mocked } = await t.mockImport<typeof import('@faultline/auth')>('@faultline/auth', {
    'node:crypto': {
      ...crypto,
      hash: (...args: Parameters<typeof crypto.hash>) => {
        hashed++
        return crypto.hash(...args)
      }
    }
  })
  const auth = mocked({
    type: 'apiKey',
    keys: [
      { id: 'acme', key: KEY },
      { id: 'old', key: 'sk_old_0123456789', expiresAt: '2020-01-01T00:00:00Z' },
      { id: 'gone', key: 'sk_gone_0123456789', revoked: true },
      { id: 'ops', key: 'sk_ops_0123456789', apis: ['Ops'] }
    ]
  })
  async function present (key: string): Promise<string> {
    const reply = { faultline: { consumer: undefined as string | undefined, api_name: 'Payments' } }
    const headers = { 'x-api-key': key }
    try {
      await auth.authenticate({ headers, raw: { url: '/', headers } } as never, reply as never)
      return `ok ${reply.faultline.consumer ?? ''}`
    } catch (err) {
      return (err as { flag?: string }).flag ?? String(err)
    }
  }
  const before = hashed
  t.same([await present(KEY), await present(KEY), await present(KEY)], ['ok acme', 'ok acme', 'ok acme'])
  t.equal(hashed - before, 1, 'hashed once for three requests')
  const wrong = [KEY + 'x', KEY.slice(0, -1), KEY.slice(0, -1) + 'f']
  for (const key of wrong) t.same([await present(key), await present(key)], ['AKI', 'AKI'], 'a near miss is unknown, every time')
  t.equal(hashed - before, 1 + wrong.length * 2, 'an unknown key is hashed each time it comes (it is never kept)')
  t.same([await present('sk_old_0123456789'), await present('sk_old_0123456789')], ['AKE', 'AKE'], 'an expired key stays expired')
  t.same([await present('sk_gone_0123456789'), await present('sk_gone_0123456789')], ['AKI', 'AKI'], 'a revoked key stays refused')
  t.same([await present('sk_ops_0123456789'), await present('sk_ops_0123456789')], ['ACD', 'ACD'], 'a key for other APIs stays refused here')
  t.same(await present(KEY), 'ok acme', 'the right key still passes')
})

t.test('a key that matched is admitted from what was remembered of it, without reading the table again', async (t) => {
  // The table slices a new id string per read; a remembered key hands the same one each time.
  const { KeyTable } = await import('../dist/key-table.js')
  const read = KeyTable.prototype.id
  let reads = 0
  KeyTable.prototype.id = function (this: InstanceType<typeof KeyTable>, index: number) {
    reads++
    return read.call(this, index)
  }
  t.teardown(() => { KeyTable.prototype.id = read })
  const keys = Array.from({ length: 5000 }, (_, i) => ({ id: `consumer-${i}`, key: `sk_live_${i}_0123456789` }))
  const auth = createApiKeyAuthenticator({ type: 'apiKey', keys })
  async function consumerOf (key: string): Promise<string | undefined> {
    const reply = { faultline: { consumer: undefined as string | undefined, api_name: 'Payments' } }
    const headers = { 'x-api-key': key }
    await auth.authenticate({ headers, raw: { url: '/', headers } } as never, reply as never)
    return reply.faultline.consumer
  }
  const seen = []
  for (let round = 0; round < 3; round++) {
    for (const i of [0, 4242, 4999]) seen.push(await consumerOf(`sk_live_${i}_0123456789`))
  }
  t.same(seen, Array.from({ length: 3 }, () => ['consumer-0', 'consumer-4242', 'consumer-4999']).flat(), 'each request is named after its own key')
  t.equal(reads, 3, 'the table is read once per key, on its first request')
})

t.test('a million keys: the last one is found', async (t) => {
  const keys = []
  for (let i = 0; i < 1_000_000; i++) keys.push({ id: `c${i}`, keyHash: createHash('sha256').update(`k${i}`).digest('hex') })
  const auth = createApiKeyAuthenticator({ type: 'apiKey', keys })
  const reply = { faultline: { consumer: undefined as string | undefined, api_name: 'X' } }
  const headers = { 'x-api-key': 'k999999' }
  await auth.authenticate({ headers, raw: { url: '/', headers } } as never, reply as never)
  t.equal(reply.faultline.consumer, 'c999999', 'the last of a million keys is found (cost is measured by the bench harness)')
})

t.test('bad options are refused at registration, never echoing a key', async (t) => {
  t.throws(() => createApiKeyAuthenticator({ type: 'apiKey' }), /needs "keys" or a "lookup" function/)
  t.throws(() => createApiKeyAuthenticator({ type: 'apiKey', keys: [{ id: '', key: 'k' }] }), /keys\[0\].id" must be a non-empty string/)
  t.throws(() => createApiKeyAuthenticator({ type: 'apiKey', keys: [{ id: 'a', keyHash: 'abc' }] }), /keys\[0\].keyHash" must be a sha256 digest/)
  const badKey = (() => {
    try {
      createApiKeyAuthenticator({ type: 'apiKey', keys: [{ id: 'a', key: 'bad key secret' }] })
    } catch (err) {
      return (err as Error).message
    }
    return ''
  })()
  t.match(badKey, /keys\[0\].key" must be/)
  t.notMatch(badKey, /bad key secret/, 'the key is not echoed')
  t.throws(() => createApiKeyAuthenticator({ type: 'apiKey', keys: [{ id: 'a', key: 'k', expiresAt: 'soon' }] }), /expiresAt" must be an ISO 8601 date/)
})
