// startFaultLab(): binds every fault-lab server to its own loopback port, counts what
// each receives, and releases everything on close().
import net from 'node:net'
import { createPki, type Pki } from './pki.js'
import { labServerSpecs, LISTENING_SERVER_NAMES, TLS_SERVER_NAMES, type ListeningServerName, type TlsServerName } from './lab-servers.js'
import { ResourceTracker } from './resource-tracker.js'
import { createUpstreamHandler } from './upstream-handler.js'

export type FaultLabServerName = ListeningServerName | 'refused'

export interface StartFaultLabOptions {
  /** Only loopback is supported: the lab must never be reachable from elsewhere. */
  host?: '127.0.0.1'
}

export interface FaultLab {
  /** `http(s)://127.0.0.1:PORT` for every server. Certificates carry IP SAN 127.0.0.1, so hostname checks pass on these. */
  urls: Record<FaultLabServerName, string>
  /** `https://localhost:PORT` for the TLS servers, for clients that should verify (and send SNI for) a DNS name. */
  localhostUrls: Record<TlsServerName, string>
  pki: Pki
  /** Requests received per server (accepted connections for plaintextOnTlsPort and tlsHang; always 0 for refused). */
  hits: Record<FaultLabServerName, number>
  /** Accepted TCP connections per server (always 0 for refused). */
  connections: Record<FaultLabServerName, number>
  /** Stops every server, destroys open sockets, clears pending timers. */
  close: () => Promise<void>
}

const HOST = '127.0.0.1'
const ALL_SERVER_NAMES: readonly FaultLabServerName[] = [...LISTENING_SERVER_NAMES, 'refused']

export async function startFaultLab (opts: StartFaultLabOptions = {}): Promise<FaultLab> {
  const host = opts.host ?? HOST
  if (host !== HOST) throw new Error(`fault-lab only listens on ${HOST}, not ${String(host)}`)

  const pki = createPki()
  const tracker = new ResourceTracker()
  const specs = labServerSpecs(pki, createUpstreamHandler(tracker))
  const hits = zeroPerServer()
  const connections = zeroPerServer()
  const ports = {} as Record<FaultLabServerName, number>
  const servers: net.Server[] = []

  const close = async (): Promise<void> => {
    const closed = servers.map(stopListening)
    tracker.releaseAll()
    await Promise.all(closed)
  }

  try {
    for (const name of LISTENING_SERVER_NAMES) {
      const spec = specs[name]
      const server = spec.create()
      servers.push(server)
      tracker.trackConnections(server)
      server.on('connection', () => { connections[name]++ })
      server.on(spec.counts === 'requests' ? 'request' : 'connection', () => { hits[name]++ })
      ports[name] = await listen(server)
    }
    ports.refused = await reserveClosedPort()
  } catch (err) {
    await close()
    throw err
  }

  const urls = {} as Record<FaultLabServerName, string>
  for (const name of ALL_SERVER_NAMES) {
    const scheme = name === 'refused' ? 'http' : specs[name].scheme
    urls[name] = `${scheme}://${HOST}:${ports[name]}`
  }
  const localhostUrls = {} as Record<TlsServerName, string>
  for (const name of TLS_SERVER_NAMES) localhostUrls[name] = `https://localhost:${ports[name]}`

  return { urls, localhostUrls, pki, hits, connections, close }
}

function zeroPerServer (): Record<FaultLabServerName, number> {
  return Object.fromEntries(ALL_SERVER_NAMES.map((name) => [name, 0])) as Record<FaultLabServerName, number>
}

async function listen (server: net.Server): Promise<number> {
  return await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: 0, host: HOST }, () => {
      server.off('error', reject)
      resolve((server.address() as net.AddressInfo).port)
    })
  })
}

/** Resolves once the server no longer listens and all its connections are gone. */
async function stopListening (server: net.Server): Promise<void> {
  if (!server.listening) return
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

/** A port the OS just handed out and that nothing listens on any more: connecting to it is refused. */
async function reserveClosedPort (): Promise<number> {
  const server = net.createServer()
  const port = await listen(server)
  await stopListening(server)
  return port
}
