/**
 * A loopback port that was free a moment ago: for a server a test starts later (redis-server,
 * Prometheus), or as a port nothing listens on (a refused upstream).
 */
import net, { type AddressInfo } from 'node:net'

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/**
 * A loopback port nothing listens on, for a refused upstream. Taken below Linux's ephemeral range
 * (32768 and up by default): a port freed by `freePort` may be handed out again by the next
 * `listen(0)` in the same test (a gateway, a metrics server), which then answers in its place.
 */
export async function closedPort (): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000)
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer()
      server.once('error', () => resolve(false))
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
    })
    if (free) return port
  }
  throw new Error('no free loopback port found between 20000 and 32000')
}
