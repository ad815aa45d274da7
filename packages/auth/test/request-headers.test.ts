/**
 * The credential's header leaves the request without `delete`: the headers object handlers, the
 * proxy and undici read afterwards keeps V8's fast properties (a `delete` of a property other than
 * the last one turned it into a dictionary that every later reader paid for; BENCHMARKS.md).
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// Run in a process of its own: %HasFastProperties needs --allow-natives-syntax.
const script = `
import Fastify from 'fastify'
import core from '@faultline/core'
import auth from '@faultline/auth'
const app = Fastify()
await app.register(core)
await app.register(async (scope) => {
  await scope.register(auth, { type: 'apiKey', keys: [{ id: 'acme', key: 'sk_test_0123456789' }] })
  scope.get('/', async (request) => ({ names: Object.keys(request.headers), fast: %HasFastProperties(request.headers) }))
})
const res = await app.inject({ url: '/', headers: { 'x-api-key': 'sk_test_0123456789', 'x-consumer-id': 'admin', accept: 'application/json', 'x-trace': 't1' } })
process.stdout.write(res.body)
await app.close()
`

t.test('after auth the headers hold neither the key nor the client\'s consumer id, and keep fast properties', async (t) => {
  const root = fileURLToPath(new URL('../../..', import.meta.url))
  const run = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 30_000 })
  t.equal(run.status, 0, run.stderr)
  const seen = JSON.parse(run.stdout) as { names: string[], fast: boolean }
  t.notOk(seen.names.includes('x-api-key'), 'the key is gone')
  t.ok(seen.names.includes('accept') && seen.names.includes('x-trace'), 'the other headers stay')
  t.equal(seen.names.filter((n) => n === 'x-consumer-id').length, 1, 'one consumer header, the gateway\'s')
  t.equal(seen.fast, true, 'the headers object is not a dictionary')
})
