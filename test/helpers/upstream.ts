/**
 * A loopback upstream that answers every request with `{"ok":true}` and records what reached it:
 * how many requests, their headers and their URLs (what a gateway forwarded, or kept back), and
 * the connections it accepted (a gateway reusing kept-alive connections opens few).
 */
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Test } from 'tap'

export interface RecordingUpstream {
  url: string
  hits: number
  headers: http.IncomingHttpHeaders[]
  urls: string[]
  sockets: Set<Socket>
}

export async function recordingUpstream (t: Test): Promise<RecordingUpstream> {
  const state: RecordingUpstream = { url: '', hits: 0, headers: [], urls: [], sockets: new Set() }
  const server = http.createServer((req, res) => {
    state.hits++
    state.headers.push(req.headers)
    state.urls.push(req.url ?? '')
    req.resume()
    res.setHeader('content-type', 'application/json')
    res.end('{"ok":true}')
  })
  server.on('connection', (socket: Socket) => state.sockets.add(socket))
  // Longer than any test: the gateway, not this server, decides when a connection is idle too long.
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return state
}
