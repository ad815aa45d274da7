// What an API's config holds must not outlive its registration: the plugins keep what they
// compiled from it (a million API keys become a compact table), never the config itself.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import Fastify from 'fastify'
import core from '@faultline/core'
import { buildGateway, registerApi } from '@faultline/gateway'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

async function collected (ref: WeakRef<object>): Promise<boolean> {
  for (let i = 0; i < 5 && ref.deref() !== undefined; i++) {
    // A WeakRef's target lives at least until the current job ends.
    await new Promise((resolve) => setImmediate(resolve))
    gc()
  }
  return ref.deref() === undefined
}

function keyList (): Array<{ id: string, key: string }> {
  return Array.from({ length: 1000 }, (_, i) => ({ id: `consumer-${i}`, key: `sk_retention_${i}_0123456789` }))
}

// Every per-API feature, so that any of them keeping the config is caught.
const features = {
  upstream: { targets: ['http://127.0.0.1:9'], healthCheck: { path: '/health', interval: 60_000 } },
  rateLimit: { max: 100, timeWindow: '1 minute' },
  quota: { max: 1000, period: 'day' as const },
  circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 10, resetTimeout: 30_000 }
}

t.test('registerApi keeps nothing of the API config: its key list can be collected', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(core)
  let keys: object | undefined = keyList()
  const ref = new WeakRef(keys)
  await app.register(async (scope) => {
    await registerApi(scope, { name: 'Payments', prefix: '/pay', ...features, auth: { type: 'apiKey', keys: keys as never } })
  })
  keys = undefined
  await app.ready()
  t.ok(await collected(ref), 'the key list is garbage once the API is registered')
  const res = await app.inject({ url: '/pay/x', headers: { 'x-api-key': 'sk_retention_7_0123456789' } })
  t.equal(res.statusCode, 502, 'and the keys still work: the refused upstream answers, not the auth')
})

t.test('buildGateway keeps nothing of the config it was given', async (t) => {
  let keys: object | undefined = keyList()
  const ref = new WeakRef(keys)
  const app = await buildGateway({ server: { port: 0 }, accessLog: { enabled: false }, apis: [{ name: 'Payments', prefix: '/pay', ...features, auth: { type: 'apiKey', keys: keys as never } }] })
  t.teardown(() => app.close())
  keys = undefined
  t.ok(await collected(ref), 'the key list is garbage once the gateway is built')
  const res = await app.inject({ url: '/pay/x', headers: { 'x-api-key': 'sk_retention_7_0123456789' } })
  t.equal(res.statusCode, 502)
})
