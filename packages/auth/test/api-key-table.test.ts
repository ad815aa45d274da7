// The static `keys` table behind apiKey auth: many keys, index collisions, per-key fields, duplicates.
import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { createApiKeyAuthenticator, hashApiKey, type ApiKeyEntry, type Authenticator } from '@faultline/auth'

interface Outcome { flag?: string, consumer?: string }

/** Runs one request through the authenticator (`apiName` null: a route without one): the flag it refused with, if any, and the consumer set. */
async function present (auth: Authenticator, key: string, apiName: string | null = 'Payments'): Promise<Outcome> {
  const reply = { faultline: { consumer: undefined as string | undefined, api_name: apiName ?? undefined } }
  try {
    await auth.authenticate({ headers: { 'x-api-key': key }, raw: { url: '/' } } as never, reply as never)
    return { consumer: reply.faultline.consumer }
  } catch (err) {
    return { flag: (err as { flag: string }).flag, consumer: reply.faultline.consumer }
  }
}

function digestOf (key: string): Buffer {
  return createHash('sha256').update(key).digest()
}

/** A made-up digest that starts with the same `prefix` bytes as `digest` and differs after them. */
function sharingPrefix (digest: Buffer, prefix: number): string {
  const fake = Buffer.concat([digest.subarray(0, prefix), randomBytes(32 - prefix)])
  if (fake.equals(digest)) fake[31] ^= 1
  return fake.toString('hex')
}

t.test('50,000 keys: every 997th is found with its own id, unknown keys are AKI', async (t) => {
  // Ids of varied lengths and scripts, so ids are cut from their shared strings at the right places.
  const idOf = (i: number): string => i % 3 === 0 ? `cønsumer-${i}-✓` : `c${i}`
  const keys: ApiKeyEntry[] = []
  for (let i = 0; i < 50_000; i++) keys.push(i % 2 === 0 ? { id: idOf(i), key: `fl-key-${i}` } : { id: idOf(i), keyHash: hashApiKey(`fl-key-${i}`) })
  const auth = createApiKeyAuthenticator({ type: 'apiKey', keys })
  const picked = [0, 1, 4095, 4096, 4097, 8191, 8192, 49_999]
  for (let i = 0; i < 50_000; i += 997) picked.push(i)
  const wrong: string[] = []
  for (const i of picked) {
    const got = await present(auth, `fl-key-${i}`)
    if (got.flag !== undefined || got.consumer !== idOf(i)) wrong.push(`${i}: ${JSON.stringify(got)}`)
  }
  t.same(wrong, [], `${picked.length} keys each found with their id`)
  for (const key of ['fl-key-50000', 'fl-key--1', 'fl-key-00', 'FL-KEY-1', 'x']) {
    t.same(await present(auth, key), { flag: 'AKI', consumer: undefined }, `${JSON.stringify(key)} is unknown`)
  }
})

t.test('keys whose digests share their first bytes (same index slot) are told apart', async (t) => {
  const real = digestOf('sk_real')
  const absent = digestOf('sk_absent')
  const keys: ApiKeyEntry[] = []
  // Registered first, so the real key ends a long probe chain; one differs from it in the last byte only.
  for (let i = 0; i < 40; i++) keys.push({ id: `same-slot-${i}`, keyHash: sharingPrefix(real, 4) })
  keys.push({ id: 'impostor', keyHash: sharingPrefix(real, 31) })
  for (let i = 0; i < 40; i++) keys.push({ id: `absent-slot-${i}`, keyHash: sharingPrefix(absent, 4) })
  keys.push({ id: 'real', key: 'sk_real' })
  for (let i = 0; i < 100; i++) keys.push({ id: `other-${i}`, key: `sk_other_${i}` })
  const auth = createApiKeyAuthenticator({ type: 'apiKey', keys })
  t.same(await present(auth, 'sk_real'), { consumer: 'real' }, 'found at the end of its chain')
  t.same(await present(auth, 'sk_absent'), { flag: 'AKI', consumer: undefined }, 'a full chain without the key is a miss')
  t.same(await present(auth, 'sk_other_99'), { consumer: 'other-99' })

  const alone = createApiKeyAuthenticator({ type: 'apiKey', keys: [{ id: 'impostor', keyHash: sharingPrefix(real, 31) }] })
  t.same(await present(alone, 'sk_real'), { flag: 'AKI', consumer: undefined }, '31 equal bytes out of 32 are not a match')
})

t.test('a probe chain that runs past the end of the index wraps to its start', async (t) => {
  // 8 keys: an index of 16 slots. Find a key whose slot is the last one and queue it behind 3 others.
  const slots = 16
  let key = ''
  for (let i = 0; key === '' && i < 10_000; i++) {
    if ((digestOf(`sk_wrap_${i}`).readUInt32LE(0) & (slots - 1)) === slots - 1) key = `sk_wrap_${i}`
  }
  t.not(key, '', 'a key for the last slot exists')
  const digest = digestOf(key)
  const keys: ApiKeyEntry[] = [0, 1, 2].map((i) => ({ id: `ahead-${i}`, keyHash: sharingPrefix(digest, 4) }))
  keys.push({ id: 'wrapped', key })
  for (let i = 0; i < 4; i++) keys.push({ id: `filler-${i}`, key: `sk_filler_${i}` })
  const auth = createApiKeyAuthenticator({ type: 'apiKey', keys })
  t.same(await present(auth, key), { consumer: 'wrapped' })
  for (let i = 0; i < 4; i++) t.same(await present(auth, `sk_filler_${i}`), { consumer: `filler-${i}` })
  t.same(await present(auth, 'sk_not_there'), { flag: 'AKI', consumer: undefined })
})

t.test('expiry, revocation and apis lists hold for each key of a large table', async (t) => {
  const keys: ApiKeyEntry[] = []
  for (let i = 0; i < 5000; i++) keys.push({ id: `c${i}`, key: `k${i}` })
  keys[10] = { id: 'expired', key: 'k10', expiresAt: '2020-01-01T00:00:00Z' }
  keys[11] = { id: 'later', key: 'k11', expiresAt: new Date(Date.now() + 3_600_000) }
  keys[12] = { id: 'revoked', key: 'k12', revoked: true }
  keys[4999] = { id: 'orders-only', keyHash: hashApiKey('k4999').toUpperCase(), apis: ['Orders'] }
  keys[4998] = { id: 'two-apis', key: 'k4998', apis: ['Orders', 'Payments'], revoked: false }
  const auth = createApiKeyAuthenticator({ type: 'apiKey', keys })
  t.same(await present(auth, 'k10'), { flag: 'AKE', consumer: 'expired' })
  t.same(await present(auth, 'k11'), { consumer: 'later' })
  t.same(await present(auth, 'k12'), { flag: 'AKI', consumer: undefined })
  t.same(await present(auth, 'k4999'), { flag: 'ACD', consumer: 'orders-only' })
  t.same(await present(auth, 'k4999', 'Orders'), { consumer: 'orders-only' })
  t.same(await present(auth, 'k4998'), { consumer: 'two-apis' })
  t.same(await present(auth, 'k4998', null), { flag: 'ACD', consumer: 'two-apis' }, 'a route without an API name')
  t.same(await present(auth, 'k13', null), { consumer: 'c13' }, 'no apis list: every route')
})

t.test('a key listed twice is refused, naming both entries and never the key', async (t) => {
  const message = (keys: ApiKeyEntry[]): string => {
    try {
      createApiKeyAuthenticator({ type: 'apiKey', keys })
    } catch (err) {
      t.type(err, TypeError)
      return (err as Error).message
    }
    return ''
  }
  const twice = message([{ id: 'a', key: 'sk_dup_secret' }, { id: 'b', key: 'sk_other' }, { id: 'c', key: 'sk_dup_secret' }])
  t.equal(twice, '@faultline/auth: option "keys[2]" has the same key as "keys[0]"')
  const asHash = message([{ id: 'a', key: 'sk_dup_secret' }, { id: 'a', keyHash: hashApiKey('sk_dup_secret').toUpperCase() }])
  t.equal(asHash, '@faultline/auth: option "keys[1]" has the same key as "keys[0]"', 'a key and its digest are the same key')
  t.notMatch(twice + asHash, /sk_dup|[0-9a-f]{64}/i, 'neither the key nor its digest is echoed')
})

t.test('the table keeps nothing of the caller\'s keys: later changes to them change nothing', async (t) => {
  const keys: ApiKeyEntry[] = [{ id: 'acme', key: 'sk_acme', apis: ['Payments'] }, { id: 'globex', key: 'sk_globex' }]
  const auth = createApiKeyAuthenticator({ type: 'apiKey', keys })
  keys[0].id = 'changed'
  keys[0].apis?.push('Orders')
  keys[1].revoked = true
  keys.length = 0
  t.same(await present(auth, 'sk_acme'), { consumer: 'acme' })
  t.same(await present(auth, 'sk_acme', 'Orders'), { flag: 'ACD', consumer: 'acme' })
  t.same(await present(auth, 'sk_globex'), { consumer: 'globex' })
})

t.test('with keys and a lookup, the lookup is asked only about keys the table lacks', async (t) => {
  const asked: string[] = []
  const auth = createApiKeyAuthenticator({
    type: 'apiKey',
    keys: [{ id: 'static', key: 'sk_static' }, { id: 'static-revoked', key: 'sk_static_revoked', revoked: true }],
    lookup: async (keyHash) => {
      asked.push(keyHash)
      return keyHash === hashApiKey('sk_db') ? { id: 'from-db', keyHash } : null
    }
  })
  t.same(await present(auth, 'sk_static'), { consumer: 'static' })
  t.same(await present(auth, 'sk_static_revoked'), { flag: 'AKI', consumer: undefined })
  t.same(await present(auth, 'sk_db'), { consumer: 'from-db' })
  t.same(await present(auth, 'sk_nobody'), { flag: 'AKI', consumer: undefined })
  t.same(asked, [hashApiKey('sk_db'), hashApiKey('sk_nobody')])
})
