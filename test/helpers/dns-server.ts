import dgram from 'node:dgram'
import { Resolver } from 'node:dns'
import type { LookupFunction } from 'node:net'

/** DNS response codes the test server can answer with. */
export const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const

export interface TestDnsServer {
  port: number
  /** A `lookup` for net.connect that asks only this server (loopback). */
  lookup: LookupFunction
  close: () => Promise<void>
}

/**
 * A loopback DNS server that answers every query with `rcode(name)` and no records,
 * except names in `answers`, which get an A record.
 */
export async function startDnsServer (rcode: (name: string) => number, answers: Record<string, string> = {}): Promise<TestDnsServer> {
  const socket = dgram.createSocket('udp4')
  socket.on('message', (query, peer) => {
    // Header (12 bytes), then the question: labels up to a zero byte, then QTYPE and QCLASS.
    let offset = 12
    const labels: string[] = []
    while (offset < query.length && query[offset] !== 0) {
      const len = query[offset]
      labels.push(query.subarray(offset + 1, offset + 1 + len).toString('latin1'))
      offset += len + 1
    }
    const questionEnd = offset + 5
    const name = labels.join('.')
    const qtype = query.readUInt16BE(offset + 1)
    const address = answers[name]
    const answer = address !== undefined && qtype === 1
    const header = Buffer.alloc(12)
    query.copy(header, 0, 0, 2) // id
    header[2] = 0x81 // QR, RD
    header[3] = 0x80 | (answer || address !== undefined ? 0 : rcode(name)) // RA + RCODE
    header.writeUInt16BE(1, 4) // QDCOUNT
    header.writeUInt16BE(answer ? 1 : 0, 6) // ANCOUNT
    const parts = [header, query.subarray(12, questionEnd)]
    if (answer) {
      const rr = Buffer.alloc(16)
      rr.writeUInt16BE(0xc00c, 0) // name: pointer to the question
      rr.writeUInt16BE(1, 2) // A
      rr.writeUInt16BE(1, 4) // IN
      rr.writeUInt32BE(5, 6) // TTL
      rr.writeUInt16BE(4, 10)
      address.split('.').forEach((octet, i) => { rr[12 + i] = Number(octet) })
      parts.push(rr)
    }
    socket.send(Buffer.concat(parts), peer.port, peer.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const port = socket.address().port
  const resolver = new Resolver({ timeout: 500, tries: 1 })
  resolver.setServers([`127.0.0.1:${port}`])

  const lookup = ((hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    resolver.resolve4(hostname, (err, addresses) => {
      if (err !== null) return callback(err)
      if (options.all === true) return callback(null, addresses.map((address) => ({ address, family: 4 })))
      callback(null, addresses[0], 4)
    })
  }) as unknown as LookupFunction

  return {
    port,
    lookup,
    close: async () => { await new Promise<void>((resolve) => socket.close(() => resolve())) }
  }
}
