/**
 * The upstream every configuration proxies to: a bare node:http server answering every request
 * with the same small JSON body. Measured on its own, it is the ceiling ("direct").
 */
import http from 'node:http'
import { listenLoopback, serveChild } from './child.mjs'

const body = Buffer.from(JSON.stringify({ id: 42, name: 'widget', price: 9.99, tags: ['a', 'b'], ok: true }))
const headers = { 'content-type': 'application/json', 'content-length': String(body.length) }

serveChild(async () => {
  const server = http.createServer((req, res) => {
    req.resume()
    res.writeHead(200, headers)
    res.end(body)
  })
  // Proxies keep their upstream connections; the server should not be the one dropping them.
  server.keepAliveTimeout = 65_000
  server.maxHeadersCount = 100
  return await listenLoopback(server)
})
