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
