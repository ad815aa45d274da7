/**
 * Cardinality is bounded by construction: paths, ids, query strings, user agents and unusual
 * methods never become label values, so 10,000 distinct requests add no series.
 */
import { randomUUID } from 'node:crypto'
import t from 'tap'
import Fastify from 'fastify'
import { Pool } from 'undici'
import core, { FaultlineError } from '@faultline/core'
import metrics from '@faultline/metrics'
import { startMetricsGateway, upstream } from './fixtures/metrics-gateway.js'
import { parseExposition, total } from './fixtures/exposition.js'

interface Kind { method: string, path: (id: string) => string }

// Every kind of request the run repeats with a fresh path, query, id and user agent each time.
const kinds: Kind[] = [
  { method: 'GET', path: (id) => `/ok/items/${id}?q=${id}` },
  { method: 'POST', path: (id) => `/ok/orders/${id}` },
  { method: 'PROPFIND', path: (id) => `/ok/dav/${id}` },
  { method: 'MKCOL', path: (id) => `/ok/${id}/${id}` },
  { method: 'GET', path: (id) => `/unknown-${id}` },
  { method: 'LOCK', path: (id) => `/${id}` }
]

t.test('10,000 distinct paths, ids and agents leave the series count unchanged', async (t) => {
  const ok = await upstream(t)
  const gw = await startMetricsGateway(t, [
    { prefix: '/ok', proxy: { name: 'Ok', methods: ['GET', 'POST'], upstream: { targets: [ok.url] } } }
  ])
  const pool = new Pool(gw.url, { connections: 8 })
  t.teardown(() => pool.close())

  const ids: string[] = []
  async function run (count: number): Promise<void> {
    let next = 0
    async function worker (): Promise<void> {
      while (next < count) {
        const i = next++
        const id = randomUUID()
        ids.push(id)
        const kind = kinds[i % kinds.length]
        const res = await pool.request({
          method: kind.method,
          path: kind.path(id),
          headers: { 'x-request-id': id, 'user-agent': `agent/${id}` },
          body: kind.method === 'POST' ? `{"id":"${id}"}` : undefined
        })
        await res.body.dump()
      }
    }
    await Promise.all(Array.from({ length: 16 }, worker))
  }

  await run(kinds.length * 2)
  const before = parseExposition(await gw.scrapeText())
  const seriesBefore = before.length
  t.ok(seriesBefore > 0)

  await run(10_000)
  const text = await gw.scrapeText()
  const after = parseExposition(text)
  t.equal(after.length, seriesBefore, `still ${seriesBefore} series after 10,000 distinct requests`)
  t.same(after.map((s) => `${s.name}${JSON.stringify(s.labels)}`), before.map((s) => `${s.name}${JSON.stringify(s.labels)}`), 'the same series')
  t.equal(total(after, 'faultline_requests_total'), 10_000 + kinds.length * 2, 'every request was counted')
  t.notOk(ids.some((id) => text.includes(id)), 'no id, path or agent appears in the exposition')
  const methodValues = new Set(after.filter((s) => s.name === 'faultline_requests_total').map((s) => s.labels.method))
  t.same([...methodValues].sort(), ['GET', 'OTHER', 'POST'], 'PROPFIND, MKCOL and LOCK are OTHER')
})

t.test('an error source outside the catalogue is counted as "other"', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(core)
  await app.register(metrics)
  app.get('/boom/:id', { config: { apiName: 'Boom' } }, async (request) => {
    throw new FaultlineError('GIE', { source: `plugin-${(request.params as { id: string }).id}` })
  })
  for (let i = 0; i < 20; i++) t.equal((await app.inject(`/boom/${i}`)).statusCode, 500)
  const samples = parseExposition(await app.faultlineMetrics.metrics())
  const gie = samples.filter((s) => s.name === 'faultline_requests_total' && s.labels.response_flag === 'GIE')
  t.same(gie, [{
    name: 'faultline_requests_total',
    labels: { api: 'Boom', method: 'GET', status_class: '5xx', response_flag: 'GIE', error_category: 'gateway', error_source: 'other', response_source: 'gateway' },
    value: 20
  }])
})
