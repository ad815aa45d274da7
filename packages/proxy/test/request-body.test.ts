/**
 * Request bodies on their way to the upstream: the API's bodyLimit also for streamed (chunked)
 * bodies, a required Content-Length, accepted content types and a JSON Schema.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { startGateway, type TestApi, type TestGateway } from '../../../test/helpers/gateway.js'

interface Upstream { url: string, bodies: string[] }

async function upstream (t: Test): Promise<Upstream> {
  const state: Upstream = { url: '', bodies: [] }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      state.bodies.push(Buffer.concat(chunks).toString())
      res.end('stored')
    })
    req.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return state
}

async function gateway (t: Test, api: Partial<TestApi>, up: Upstream): Promise<TestGateway> {
  const gw = await startGateway([{ name: 'Body', prefix: '/body', upstream: { targets: [up.url] }, ...api }])
  t.teardown(() => gw.app.close())
  return gw
}

/** POSTs `parts` (chunked when `declare` is false) and resolves with the status and the access line. */
async function post (gw: TestGateway, parts: string[], headers: Record<string, string>, declare: boolean): Promise<{ status: number, line: Record<string, unknown> }> {
  const before = gw.log.lines.length
  const { port } = new URL(gw.url)
  const body = parts.join('')
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/body/items', method: 'POST', agent: false, headers: declare ? { ...headers, 'content-length': String(Buffer.byteLength(body)) } : headers }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    for (const part of parts) req.write(part)
    req.end()
  })
  const lines = await gw.log.waitFor(before + 1)
  return { status, line: lines[before] }
}

t.test('a chunked body within the limit streams through whole', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, { bodyLimit: 1000 }, up)
  const res = await post(gw, ['a'.repeat(400), 'b'.repeat(400)], { 'content-type': 'text/plain' }, false)
  t.equal(res.status, 200)
  t.same(up.bodies, ['a'.repeat(400) + 'b'.repeat(400)])
})

t.test('a chunked body that grows past the limit is BTL 413, not an upstream failure', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, { bodyLimit: 1000 }, up)
  const res = await post(gw, ['a'.repeat(600), 'b'.repeat(600)], { 'content-type': 'text/plain' }, false)
  t.equal(res.status, 413)
  t.match(res.line, { status: 413, response_flag: 'BTL', response_code_details: 'body_too_large', error_source: 'RequestValidation', error_category: 'client' })
  t.notOk(up.bodies.some((b) => b.length > 1000), 'the upstream never received more than the limit')
  t.notOk(gw.appLog.some((l) => l.msg === 'faultline: unexpected error'))
})

t.test('requireContentLength: a chunked body is CLM 411; a declared one passes', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, { requireContentLength: true }, up)
  const chunked = await post(gw, ['{"a":1}'], { 'content-type': 'application/json' }, false)
  t.equal(chunked.status, 411)
  t.match(chunked.line, { response_flag: 'CLM', response_code_details: 'content_length_missing', error_source: 'RequestValidation' })
  t.equal((await post(gw, ['{"a":1}'], { 'content-type': 'application/json' }, true)).status, 200)
  t.same(up.bodies, ['{"a":1}'])
})

t.test('contentTypes: another media type is UMT 415; parameters and wildcards are understood', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, { contentTypes: ['application/json', 'text/*'] }, up)
  const xml = await post(gw, ['<a/>'], { 'content-type': 'application/xml' }, true)
  t.equal(xml.status, 415)
  t.match(xml.line, { response_flag: 'UMT', response_code_details: 'unsupported_media_type' })
  t.equal((await post(gw, ['{}'], { 'content-type': 'application/json; charset=utf-8' }, true)).status, 200)
  t.equal((await post(gw, ['hi'], { 'content-type': 'text/csv' }, true)).status, 200)
  t.equal(up.bodies.length, 2, 'the refused body never reached the upstream')
})

t.test('schema: JSON bodies are validated without coercion and forwarded byte for byte', async (t) => {
  const up = await upstream(t)
  const schema = { type: 'object', required: ['name'], properties: { name: { type: 'string' } } }
  const gw = await gateway(t, { schema }, up)
  const broken = await post(gw, ['{"name":'], { 'content-type': 'application/json' }, true)
  t.equal(broken.status, 400)
  t.match(broken.line, { response_flag: 'BIV', response_code_details: 'body_invalid', error_source: 'RequestValidation' })
  const coerced = await post(gw, ['{"name":123}'], { 'content-type': 'application/json' }, true)
  t.equal(coerced.status, 400, '123 is not a string: no coercion')
  t.match(coerced.line, { response_flag: 'BIV', response_code_details: 'schema_validation_failed' })
  const original = '{ "name" : "ok",\n  "extra": [1, 2] }'
  t.equal((await post(gw, [original], { 'content-type': 'application/json' }, true)).status, 200)
  t.same(up.bodies, [original], 'the original bytes, not a re-serialisation')
})

t.test('bad body options fail at registration', async (t) => {
  await t.rejects(startGateway([{ name: 'x', prefix: '/x', contentTypes: ['json'], upstream: { targets: ['http://127.0.0.1:1'] } }]), /contentTypes\[0\]" must be a media type/)
  await t.rejects(startGateway([{ name: 'x', prefix: '/x', schema: [] as unknown as object, upstream: { targets: ['http://127.0.0.1:1'] } }]), /"schema" must be a JSON Schema object/)
})
