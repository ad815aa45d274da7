/**
 * APIs of one gateway with the same upstream settings share its connections; different settings,
 * or another gateway, do not; the last API to close closes the pool.
 */
import t, { type Test } from 'tap'
import { poolSettingsKey } from '@faultline/proxy'
import { startGateway, type TestApi, type TestGateway } from '../../../test/helpers/gateway.js'
import { httpRequest } from '../../../test/helpers/http-client.js'
import { recordingUpstream as upstream } from '../../../test/helpers/upstream.js'

async function gateway (t: Test, apis: TestApi[]): Promise<TestGateway> {
  const gw = await startGateway(apis)
  t.teardown(() => gw.app.close())
  return gw
}

/** One request at a time, alternating over the prefixes: an idle kept-alive connection is always there to reuse. */
async function alternate (gw: TestGateway, prefixes: string[], rounds: number): Promise<number[]> {
  const statuses: number[] = []
  for (let i = 0; i < rounds; i++) {
    for (const prefix of prefixes) statuses.push((await httpRequest(gw.url, { path: `${prefix}/x` })).status)
  }
  return statuses
}

t.test('APIs with the same upstream and settings share its connections', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, [
    { name: 'one', prefix: '/one', upstream: { targets: [up.url] } },
    { name: 'two', prefix: '/two', upstream: { targets: [up.url + '/base'] } },
    { name: 'three', prefix: '/three', upstream: { targets: [up.url], connectTimeout: 5000 } }
  ])
  const statuses = await alternate(gw, ['/one', '/two', '/three'], 5)
  t.same(new Set(statuses), new Set([200]))
  t.equal(up.hits, 15)
  t.equal(up.sockets.size, 1, 'one kept-alive connection served all three APIs (a base path and a default spelled out do not matter)')
})

t.test('different connection settings get pools of their own', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, [
    { name: 'fast', prefix: '/fast', upstream: { targets: [up.url], responseTimeout: 1000 } },
    { name: 'slow', prefix: '/slow', upstream: { targets: [up.url], responseTimeout: 60_000 } }
  ])
  await alternate(gw, ['/fast', '/slow'], 3)
  t.equal(up.hits, 6)
  t.equal(up.sockets.size, 2, 'a response timeout is a property of the pool: not shared')
})

t.test('two gateways in one process do not share, and closing one leaves the other working', async (t) => {
  const up = await upstream(t)
  const first = await startGateway([{ name: 'a', prefix: '/a', upstream: { targets: [up.url] } }])
  const second = await gateway(t, [{ name: 'a', prefix: '/a', upstream: { targets: [up.url] } }])
  t.equal((await httpRequest(first.url, { path: '/a/x' })).status, 200)
  t.equal((await httpRequest(second.url, { path: '/a/x' })).status, 200)
  t.equal(up.sockets.size, 2)
  await first.app.close()
  // The first gateway's pool was destroyed with it: its connection goes, the other stays.
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal([...up.sockets].filter((s) => !s.destroyed).length, 1, 'one connection left')
  t.equal((await httpRequest(second.url, { path: '/a/x' })).status, 200)
  t.equal(up.sockets.size, 2, 'the second gateway still uses its own connection')
})

t.test('the settings key: what changes it and what does not', async (t) => {
  const base = { connectTimeout: 5000, responseTimeout: 30_000 }
  t.equal(poolSettingsKey(base), poolSettingsKey({ ...base }))
  t.not(poolSettingsKey(base), poolSettingsKey({ ...base, connectTimeout: 1000 }))
  t.not(poolSettingsKey(base), poolSettingsKey({ ...base, tls: { ca: 'PEM A' } }))
  t.not(poolSettingsKey({ ...base, tls: { ca: 'PEM A' } }), poolSettingsKey({ ...base, tls: { ca: 'PEM B' } }))
  t.equal(poolSettingsKey({ ...base, tls: { ca: ['PEM A'] } }), poolSettingsKey({ ...base, tls: { ca: ['PEM A'] } }))
  t.not(poolSettingsKey(base), poolSettingsKey({ ...base, tls: { rejectUnauthorized: false } }))
  const lookupA = (): void => {}
  const lookupB = (): void => {}
  t.equal(poolSettingsKey({ ...base, lookup: lookupA }), poolSettingsKey({ ...base, lookup: lookupA }))
  t.not(poolSettingsKey({ ...base, lookup: lookupA }), poolSettingsKey({ ...base, lookup: lookupB }))
  t.notMatch(poolSettingsKey({ ...base, tls: { key: 'SECRET-KEY-PEM' } }), /SECRET/, 'a private key is compared by digest, never kept as text')
})
